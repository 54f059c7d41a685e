"""Calls on time: how long after `call_after` the real daemon places the call.

The daemon runs as a subprocess with the Twilio transport pointed at the local stand-in
(tests/twilio_stub.py, real `twilio` client); cases are registered from separate `register`
processes, each texting one prosecutor whose text is never acknowledged, so each case is called
`call_after` (3 s) after its text. Lateness = call placed (the provider took it) − step fired
(its text queued) − call_after, from the log.

Target: worst < 1 s (the tick is 0.5 s).

    python benchmarks/call_lateness.py [--cases 20] [--call-after 3] [--target 1.0] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# The daemon probes of the lateness benchmark beside this file (same folder on sys.path).
from daemon_lateness import start_daemon  # noqa: E402
from quick import parse_args  # noqa: E402
from twilio_stub import TwilioStub  # noqa: E402


def playbook(call_after: int) -> str:
    """One text to the prosecutor, called `call_after` seconds later if nobody acknowledges."""
    return f"""\
name = "calls"
title = "Bellen"

[[steps]]
id = "alert"
at = "0m"
role = "youth_prosecutor"
message = "{{case}}: risico {{grade}}. Bel {{callback}}. Antwoord ACK {{ack}}"
ack_within = "60s"
call_after = "{call_after}s"
"""


def cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rapidresponse", "--home", str(home), *args],
                          env=env, capture_output=True, text=True, timeout=120)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--call-after", type=int, default=3, help="whole seconds")
    parser.add_argument("--target", type=float, default=1.0)
    args = parse_args(parser, cases=2, call_after=1)

    with tempfile.TemporaryDirectory() as tmp, TwilioStub() as stub:
        home = Path(tmp) / "home"
        env = {**os.environ, **stub.env(), "RAPIDRESPONSE_OPERATOR": "benchmark"}
        env.pop("RAPIDRESPONSE_PUBLIC_URL", None)
        cli(home, env, "init")
        (home / "playbooks" / "calls.toml").write_text(playbook(args.call_after), encoding="utf-8")
        daemon = start_daemon(env, home / "rapidresponse.db", home=home)
        try:
            for i in range(args.cases):
                done = cli(home, env, "register", "--alias", f"Bench {i}", "--birth-date", "2011-03-02",
                           "--missing-since", "1h ago", "--last-seen", "bench",
                           "--indicator", "older-partner", "--playbook", "calls")
                if done.returncode not in (0,):
                    print(done.stderr, file=sys.stderr)
                    return 1
            stub.wait_for(lambda s: len(s.calls()) >= args.cases, timeout=args.call_after + 30)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        log = json.loads(cli(home, env, "log", "--json").stdout)
    events = log["events"] if isinstance(log, dict) else log
    texted: dict[str, datetime] = {}  # when the step fired: its stage (and call_after) starts
    called: dict[str, datetime] = {}
    for event in events:
        if event["kind"] == "step.due":
            texted.setdefault(event["case"], moment(event["at"]))
        elif event["kind"] == "call.placed":
            called.setdefault(event["case"], moment(event["at"]))
    late = sorted((called[c] - texted[c]).total_seconds() - args.call_after for c in called if c in texted)
    if len(late) < args.cases:  # not slow but broken: no lateness to report
        print(f"only {len(late)} of {args.cases} cases were called", file=sys.stderr)
        return 1
    median, worst = late[len(late) // 2], late[-1]
    verdict = "PASS" if worst < args.target else "MISS"
    print(f"{len(late)} calls placed {args.call_after} s after an unacknowledged text;"
          f" lateness median {median:.2f} s, worst {worst:.2f} s (target < {args.target:g} s): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
