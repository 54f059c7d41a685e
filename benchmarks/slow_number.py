"""Step lateness while one number's sends take 8 s (target: every other step within 1 s of due).

Usage: python benchmarks/slow_number.py [--cases 6] [--steps 10] [--slow 8] [--quick]

Starts `rapidresponse run` as a subprocess with the real Twilio transport pointed at the local
stand-in (tests/twilio_stub.py), which answers one police number only after SLOW seconds (within
the client's 10 s time-out: slow, not down) and every other number at once. Half the cases run a
playbook whose steps text the whole police role every 2 s (so the slow number is always being
sent to); the other half run steps every second to other roles. When every step has fired and
every text is settled it stops the daemon and reads `late_seconds` of the `step.due` events:
median, p90 and worst, for the steps of the other cases and for the police steps themselves.
Before the senders left the tick, every step falling due during a slow send fired that late.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# The same probes and summary as the lateness benchmark beside this file (same folder on sys.path).
from daemon_lateness import MINOR, describe, query, start_daemon, wait_for  # noqa: E402
from quick import parse_args  # noqa: E402
from twilio_stub import Reply, TwilioStub  # noqa: E402

from rapidresponse.app import init_home  # noqa: E402
from rapidresponse.contacts import normalise_number  # noqa: E402

TARGET_SECONDS = 1.0
SLOW_NUMBER = normalise_number("+32 470 00 00 31")  # police, dispatch


def playbook(name: str, steps: int, every: int, roles: tuple[str, ...]) -> str:
    parts = [f'name = "{name}"', f'title = "Benchmark {name}"', ""]
    for n in range(1, steps + 1):
        parts += ["[[steps]]", f'id = "step-{n:02d}"', f'at = "{2 + every * n}s"',
                  f'role = "{roles[n % len(roles)]}"', 'notify = "all"',
                  f'message = "{{case}}: stap {n}."', ""]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--slow", type=float, default=8.0, help="seconds the slow number takes")
    args = parse_args(parser, cases=2, steps=1, slow=0.5)

    root = Path(tempfile.mkdtemp(prefix="rr-bench-slow-"))
    home = root / "home"
    init_home(home)
    (home / "playbooks" / "police.toml").write_text(
        playbook("police", args.steps, 2, ("police",)), encoding="utf-8")
    (home / "playbooks" / "others.toml").write_text(
        playbook("others", args.steps * 2, 1, ("child_focus", "coordinator", "reference_centre")),
        encoding="utf-8")
    db = home / "rapidresponse.db"
    with TwilioStub() as stub:
        stub.script(SLOW_NUMBER, *(Reply(delay=args.slow) for _ in range(args.steps * args.cases)))
        env = {**os.environ, **stub.env(), "RAPIDRESPONSE_HOME": str(home),
               "RAPIDRESPONSE_OPERATOR": "benchmark"}
        with open(root / "daemon.err", "wb") as err:
            daemon = start_daemon(env, db, stderr=err)
        try:
            print(f"{args.cases} cases, one police number answering after {args.slow:g} s,"
                  f" {os.cpu_count()} cores; registering ...", flush=True)
            for n in range(args.cases):
                name = "police" if n % 2 == 0 else "others"
                done = subprocess.run(
                    [sys.executable, "-m", "rapidresponse", "register", *MINOR, "--missing-since",
                     "now", "--playbook", name, "--json"],
                    env=env, capture_output=True, text=True, timeout=120)
                if done.returncode != 0:
                    raise SystemExit(f"register failed: {done.stderr.strip()}")
            wait_for(lambda: not query(db, "SELECT 1 FROM steps WHERE state IN ('pending', 'active')")
                     and not query(db, "SELECT 1 FROM messages WHERE state IN ('queued', 'sending')"),
                     "every step to fire and every text to settle", 4 * args.steps + 4 * args.slow + 60)
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        slow_sends = len(stub.received(SLOW_NUMBER))

    due = query(db, "SELECT e.detail, c.playbook FROM events e JOIN cases c ON c.ref = e.case_ref"
                    " WHERE e.kind = 'step.due'")
    police = [json.loads(e["detail"])["late_seconds"] for e in due if e["playbook"] == "police"]
    others = [json.loads(e["detail"])["late_seconds"] for e in due if e["playbook"] == "others"]
    verdict = "PASS" if others and max(others + police) < TARGET_SECONDS else "MISS"
    print(f"\n{slow_sends} sends to the slow number, {args.slow:g} s each (daemon exit {code})")
    print(f"other cases' steps ({len(others)}): {describe(others)}   target < 1 s: {verdict}")
    print(f"police steps, texting the slow number ({len(police)}): {describe(police)}")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
