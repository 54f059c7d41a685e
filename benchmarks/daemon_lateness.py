"""How late the daemon fires steps (target: every step within one second of its due time).

Usage: python benchmarks/daemon_lateness.py [--cases 10] [--steps 12] [--every 2] [--ack-within 3]
       [--tick SECONDS] [--quick]

Starts `rapidresponse run` as a subprocess on a temporary home, registers CASES cases from
separate `rapidresponse register` processes (a quarter second apart, as officers would), each with
a playbook of STEPS steps EVERY seconds apart (by default 2 s, 4 s, ... 24 s after registration;
every third step waits ACK_WITHIN seconds for an acknowledgement that never comes, so time-outs
and escalations load the daemon too). When every step has fired it stops the daemon with SIGTERM
and reads `late_seconds` from the `step.due` events: median, 90th percentile and worst. It also
reports how late the first acknowledgement time-out of each waiting step was acted on. Without
--tick the daemon runs with its default tick.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from quick import parse_args

from rapidresponse.app import init_home
from rapidresponse.config import Settings
from rapidresponse.timeutil import from_iso

TARGET_SECONDS = 1.0
#: The same fictitious minor for every case: each registration is a new episode of hers.
MINOR = ("--alias", "Benchmarkina", "--birth-date", "2011-03-02", "--last-seen", "nergens", "--new-episode")


def playbook_text(steps: int, every: int, ack_within: int) -> str:
    """STEPS steps EVERY seconds apart; police gets all, others the first contact, then escalation."""
    parts = ['name = "lateness"', 'title = "Benchmark: steps seconds apart"', ""]
    for n in range(1, steps + 1):
        parts += ["[[steps]]", f'id = "step-{n:02d}"', f'at = "{every * n}s"']
        if n % 3 == 0:
            parts += ['role = "child_focus"', f'message = "{{case}}: stap {n}. Antwoord ACK {{ack}}"',
                      f'ack_within = "{ack_within}s"', 'escalate_to = "coordinator"']
        elif n % 3 == 1:
            parts += ['role = "police"', 'notify = "all"', f'message = "{{case}}: stap {n}."']
        else:
            parts += ['role = "coordinator"', f'message = "{{case}}: stap {n}."']
        parts.append("")
    return "\n".join(parts)


def query(db: Path, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def wait_for(probe: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_daemon(env: dict[str, str], db: Path, *, stderr: Any = subprocess.DEVNULL,
                 home: Path | None = None) -> subprocess.Popen[bytes]:
    """`rapidresponse run` as a subprocess, returned once its heartbeat is in the database (or
    stopped again, if it never beats: a benchmark must not leave a daemon behind)."""
    where = ["--home", str(home)] if home is not None else []
    daemon = subprocess.Popen([sys.executable, "-m", "rapidresponse", *where, "run"], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for(lambda: query(db, "SELECT 1 FROM daemon WHERE stopped_at IS NULL"),
                 "the daemon's heartbeat", 30)
    except BaseException:
        daemon.kill()
        daemon.wait()
        raise
    return daemon


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(values: list[float]) -> str:
    return (f"median {statistics.median(values):.3f} s   p90 {quantile(values, 0.9):.3f} s"
            f"   worst {max(values):.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--every", type=int, default=2, help="whole seconds between steps")
    parser.add_argument("--ack-within", type=int, default=3, help="whole seconds every third step waits")
    parser.add_argument("--tick", type=float, default=None, help="RAPIDRESPONSE_TICK_SECONDS")
    # Quick: step 3's time-out falls 2 s before the last step, so it is acted on before the end.
    args = parse_args(parser, cases=2, steps=6, every=1, ack_within=1)

    root = Path(tempfile.mkdtemp(prefix="rr-bench-lateness-"))
    home = root / "home"
    init_home(home)
    (home / "playbooks" / "lateness.toml").write_text(playbook_text(args.steps, args.every, args.ack_within),
                                                      encoding="utf-8")
    db = home / "rapidresponse.db"
    env = {**os.environ, "RAPIDRESPONSE_HOME": str(home), "RAPIDRESPONSE_OPERATOR": "benchmark"}
    if args.tick is not None:
        env["RAPIDRESPONSE_TICK_SECONDS"] = str(args.tick)
    tick = args.tick if args.tick is not None else Settings().tick_seconds

    with open(root / "daemon.err", "wb") as err:
        daemon = start_daemon(env, db, stderr=err)
    try:
        total = args.cases * args.steps
        print(f"{args.cases} cases x {args.steps} steps = {total} steps, tick {tick} s,"
              f" {os.cpu_count()} cores; registering ...", flush=True)
        started = time.monotonic()
        registrations = []
        for _ in range(args.cases):
            registrations.append(subprocess.Popen(
                [sys.executable, "-m", "rapidresponse", "register", *MINOR, "--missing-since", "now",
                 "--playbook", "lateness", "--json"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))
            time.sleep(0.25)
        for proc in registrations:
            out, errors = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise SystemExit(f"register failed: {errors.strip()}")
            json.loads(out)
        wait_for(lambda: not query(db, "SELECT 1 FROM steps WHERE state = 'pending'"),
                 "every step to fire", args.every * args.steps + 60)
        elapsed = time.monotonic() - started
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()

    events = query(db, "SELECT at, case_ref, kind, detail FROM events"
                       " WHERE kind IN ('step.due', 'step.next_contact', 'step.escalated') ORDER BY seq")
    for event in events:
        event["detail"] = json.loads(event["detail"])
    due = [e for e in events if e["kind"] == "step.due"]
    late = [e["detail"]["late_seconds"] for e in due]
    fired_at = {(e["case_ref"], e["detail"]["step"]): from_iso(e["at"]) for e in due}
    timeouts: list[float] = []
    seen: set[tuple[str, str]] = set()
    for event in events:
        key = (event["case_ref"], event["detail"]["step"])
        if event["kind"] != "step.due" and key not in seen:
            seen.add(key)
            deadline = fired_at[key] + timedelta(seconds=args.ack_within)
            timeouts.append((from_iso(event["at"]) - deadline).total_seconds())
    stderr = (root / "daemon.err").read_text(encoding="utf-8", errors="replace")
    failures = [line for line in stderr.splitlines()
                if line.split(" ")[1:2] in (["tick.failed"], ["heartbeat.failed"])]

    verdict = "PASS" if late and max(late) < TARGET_SECONDS else "MISS"
    print(f"\nstep lateness over {len(late)} steps fired in {elapsed:.1f} s (daemon exit {code}):")
    print(f"  {describe(late)}   target < {TARGET_SECONDS:.0f} s: {verdict}")
    if timeouts:
        print(f"ack time-outs acted on after the deadline ({len(timeouts)} steps):")
        print(f"  {describe(timeouts)}")
    if failures:
        print(f"daemon reported {len(failures)} failures, e.g.: {failures[0]}")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
