"""The daemon's memory with 10,000 open cases (target: under 150 MB resident).

Usage: python benchmarks/daemon_memory.py [--cases N] [--seconds S] [--no-burst] [--quick]

Phase 1 (steady): a home with N open cases, each an hour in (first alert sent, waiting for an
acknowledgement; later steps days ahead). `rapidresponse run` ticks over it for S seconds from its
first heartbeat; its VmRSS and VmHWM are read from /proc/PID/status every half second.

Phase 2 (burst, unless --no-burst): a second home whose N first alerts all fell due while no daemon
ran. The daemon catches up on all of them at start (N steps fired, N messages sent on the console
transport), the worst moment for memory; the script reports the peak, how long the catch-up took,
and the oldest heartbeat seen meanwhile (a long pass delays the heartbeat).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from quick import parse_args
from run_once import fresh_home, populate

from rapidresponse.timeutil import from_iso

TARGET_MB = 150.0


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def scalar(db: Path, sql: str) -> object:
    conn = sqlite3.connect(db, timeout=30)
    try:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def start_daemon(home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAPIDRESPONSE_HOME": str(home), "RAPIDRESPONSE_OPERATOR": "benchmark"}
    with open(home / "daemon.err", "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "rapidresponse", "run"], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)


def stop(daemon: subprocess.Popen[bytes]) -> int:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.wait()


def wait_until_up(daemon: subprocess.Popen[bytes], db: Path, timeout: float = 60.0) -> None:
    """Until the daemon's first heartbeat: the ticks are measured, not the interpreter's start."""
    deadline = time.monotonic() + timeout
    while not scalar(db, "SELECT 1 FROM daemon WHERE stopped_at IS NULL"):
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not start (exit {daemon.poll()})")
        time.sleep(0.1)


def steady(cases: int, seconds: float) -> dict[str, float]:
    home = fresh_home("rr-bench-memory-")
    populate(home, cases)
    daemon = start_daemon(home)
    samples: list[dict[str, float]] = []
    try:
        wait_until_up(daemon, home / "rapidresponse.db")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.5)
            samples.append(proc_status(daemon.pid))
    finally:
        code = stop(daemon)
        shutil.rmtree(home.parent, ignore_errors=True)
    if not samples or code != 0:
        raise SystemExit(f"the daemon stopped early (exit {code})")
    return {"rss": samples[-1]["VmRSS"], "hwm": samples[-1]["VmHWM"],
            "max_rss": max(s["VmRSS"] for s in samples)}


def burst(cases: int, timeout: float) -> dict[str, float]:
    home = fresh_home("rr-bench-burst-")
    populate(home, cases, dispatch=False)
    db = home / "rapidresponse.db"
    daemon = start_daemon(home)
    started = time.monotonic()
    peak_rss = 0.0
    worst_beat = 0.0
    try:
        while daemon.poll() is None:
            peak_rss = max(peak_rss, proc_status(daemon.pid)["VmRSS"])
            beat = scalar(db, "SELECT heartbeat_at FROM daemon")
            if beat:
                age = (datetime.now(UTC) - from_iso(str(beat))).total_seconds()
                worst_beat = max(worst_beat, age)
            left = scalar(db, "SELECT COUNT(*) FROM messages WHERE state IN ('queued', 'sending')")
            pending = scalar(db, "SELECT COUNT(*) FROM steps WHERE state = 'pending' AND step_key = 'alert'")
            if beat and left == 0 and pending == 0:
                break
            if time.monotonic() - started > timeout:
                raise SystemExit(f"the catch-up did not finish in {timeout:.0f} s:"
                                 f" {pending} steps pending, {left} messages queued")
            if b" tick.failed " in (home / "daemon.err").read_bytes():
                raise SystemExit("the daemon reported tick.failed: see its stderr")
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        status = proc_status(daemon.pid)
        sent = scalar(db, "SELECT COUNT(*) FROM messages WHERE state = 'sent'")
    finally:
        code = stop(daemon)
        shutil.rmtree(home.parent, ignore_errors=True)
    if code != 0:
        raise SystemExit(f"the daemon exited {code} during the burst")
    return {"rss": status["VmRSS"], "hwm": status["VmHWM"], "max_rss": peak_rss,
            "seconds": elapsed, "sent": float(str(sent)), "worst_beat": worst_beat}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-burst", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0, help="Give up on the burst after this.")
    args = parse_args(parser, cases=20, seconds=1)

    print(f"steady: {args.cases} open cases, nothing due, {args.seconds:.0f} s of ticks ...", flush=True)
    result = steady(args.cases, args.seconds)
    verdict = "PASS" if result["hwm"] < TARGET_MB else "MISS"
    print(f"  VmRSS {result['rss']:.1f} MB   VmHWM (peak) {result['hwm']:.1f} MB"
          f"   target < {TARGET_MB:.0f} MB: {verdict}")
    if not args.no_burst:
        print(f"burst: {args.cases} overdue first alerts caught up at start ...", flush=True)
        hit = burst(args.cases, args.timeout)
        verdict = "PASS" if hit["hwm"] < TARGET_MB else "MISS"
        print(f"  {hit['sent']:.0f} messages sent in {hit['seconds']:.1f} s;"
              f" VmRSS after {hit['rss']:.1f} MB   VmHWM (peak) {hit['hwm']:.1f} MB: {verdict}")
        print(f"  oldest heartbeat seen during the catch-up: {hit['worst_beat']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
