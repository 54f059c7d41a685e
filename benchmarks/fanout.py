"""Fan-out: 30 contacts alerted at once over Twilio, against a stand-in that answers in 300 ms.

Target: all 30 accepted within 1.5 s (sending one after the other would take 9 s). The real
`twilio` client and the real dispatch run; only Twilio itself is replaced by the local stub in
tests/twilio_stub.py. The twilio package is imported before timing, as in a running daemon.

    python benchmarks/fanout.py [--contacts 30] [--latency 0.3] [--target 1.5] [--quick]

It exits 1 only when not every text was accepted (the benchmark or the dispatch is broken); a
time over the target is a MISS, as in the other benchmarks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from quick import parse_args  # noqa: E402
from twilio_stub import TwilioStub  # noqa: E402

from rapidresponse.app import App, init_home  # noqa: E402
from rapidresponse.config import load_settings  # noqa: E402
from rapidresponse.dispatch import run_pass  # noqa: E402
from rapidresponse.engine import Person, register  # noqa: E402
from rapidresponse.sms.twilio import TwilioTransport  # noqa: E402

PLAYBOOK = """\
name = "fanout"
title = "Fan-out"

[[steps]]
id = "everyone"
at = "0m"
role = "team"
notify = "all"
message = "{case}: oefening. Bel {callback}."
"""


def contacts_file(count: int) -> str:
    lines = ['timezone = "Europe/Brussels"', 'callback = "+32 470 00 00 99"', "",
             "[roles.team]", 'title = "Team"', "contacts = ["]
    lines += [f'  {{ name = "Member {i}", phone = "+32 470 00 {i // 100 + 1:02d} {i % 100:02d}" }},'
              for i in range(count)]
    return "\n".join([*lines, "]", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--target", type=float, default=1.5)
    args = parse_args(parser, contacts=3, latency=0.05)

    import twilio.rest  # noqa: F401  (a running daemon has it loaded after its first send)

    with tempfile.TemporaryDirectory() as tmp, TwilioStub(latency=args.latency) as stub:
        home = Path(tmp) / "home"
        init_home(home)
        (home / "contacts.toml").write_text(contacts_file(args.contacts), encoding="utf-8")
        # Only this playbook: a contacts file is in force only if it serves every role in use.
        for shipped in (home / "playbooks").glob("*.toml"):
            shipped.unlink()
        (home / "playbooks" / "fanout.toml").write_text(PLAYBOOK, encoding="utf-8")
        app = App(home, "benchmark")
        try:
            ctx = app.context()
            transport = TwilioTransport(stub.env())
            transport.check()
            register(ctx, person=Person("bench", date(2011, 1, 1), "bench"),
                     missing_since=app.clock.now(), playbook=app.playbook("fanout"))
            started = time.perf_counter()
            report = run_pass(ctx, transport, load_settings(home))
            elapsed = time.perf_counter() - started
        finally:
            app.close()
        accepted = len(stub.accepted())
    sequential = args.contacts * args.latency
    all_sent = accepted == args.contacts == len(report.sent)
    verdict = "PASS" if all_sent and elapsed < args.target else "MISS"
    print(f"fanout: {accepted}/{args.contacts} texts accepted in {elapsed:.2f} s against a"
          f" {args.latency * 1000:.0f} ms stand-in (target < {args.target:g} s; sequential"
          f" ≈ {sequential:.3g} s): {verdict}")
    return 0 if all_sent else 1


if __name__ == "__main__":
    sys.exit(main())
