"""How long `rapidresponse run --once` takes with 10,000 open cases and nothing due (target < 200 ms).

Usage: python benchmarks/run_once.py [--cases N] [--runs N] [--keep] [--quick]

Fills a temporary home through the library (engine.register, then one pass with a null transport,
so every case looks like a real one an hour in: its first alert sent and awaiting an
acknowledgement, later steps pending days ahead), then times the command as a subprocess, the way
cron or a systemd timer starts it. It reports the median and worst wall time of several runs with a
warm bytecode cache (as after `pip install`), the same with the project's own modules compiled at
every start (PYTHONDONTWRITEBYTECODE=1 on an editable install, as in some sandboxes), the import time of the CLI, and the pass itself in-process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from quick import parse_args

from rapidresponse.app import App, init_home
from rapidresponse.clock import FakeClock
from rapidresponse.daemon import Daemon
from rapidresponse.dispatch import run_pass
from rapidresponse.engine import Person, register
from rapidresponse.sms import Sent
from rapidresponse.timeutil import to_iso

TARGET_MS = 200.0

#: The first alert goes out at registration and waits 30 days for an acknowledgement; the other
#: steps fall due weeks later. Nothing is due while the benchmark runs.
FAR_PLAYBOOK = """
name = "far-future"
title = "Benchmark: every case open, nothing due"

[[steps]]
id = "alert"
at = "0m"
role = "child_focus"
message = "{case}: benchmark. Antwoord ACK {ack}"
ack_within = "30d"
escalate_to = "coordinator"

[[steps]]
id = "later-police"
at = "20d"
role = "police"
notify = "all"
message = "{case}: benchmark later."

[[steps]]
id = "later-coordinator"
at = "25d"
role = "coordinator"
message = "{case}: benchmark later. Antwoord ACK {ack}"
ack_within = "1h"
"""


class NullTransport:
    """Sends nothing, instantly: the population step measures nothing about SMS."""

    name = "null"

    def check(self) -> None:
        return None

    def send(self, to: str, body: str) -> Sent:
        return Sent(sid="null")


def populate(home: Path, cases: int, *, dispatch: bool = True, hours_ago: float = 1.0) -> float:
    """Register `cases` open cases over the last `hours_ago` hours; return the seconds it took.

    With `dispatch`, one pass sends their first alerts (nothing is then due); without it, every
    first alert is left overdue for a daemon to catch up on.
    """
    started = time.perf_counter()
    (home / "playbooks" / "far-future.toml").write_text(FAR_PLAYBOOK, encoding="utf-8")
    now = datetime.now(UTC)
    clock = FakeClock(now - timedelta(hours=hours_ago))
    step = timedelta(hours=hours_ago) / max(cases, 1)
    app = App(home, "benchmark", clock)
    try:
        app.store.conn.execute("PRAGMA synchronous = OFF")  # setup speed only; the runs use FULL
        playbook = app.playbook("far-future")
        ctx = app.context()
        for n in range(cases):
            person = Person(alias=f"bench-{n}", birth_date=date(2011, 3, 2), last_seen="benchmark")
            register(ctx, person=person, missing_since=clock.now(), playbook=playbook)
            clock.set(clock.now() + step)
        if dispatch:
            run_pass(ctx, NullTransport(), app.settings)
        app.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        app.close()
    return time.perf_counter() - started


def fresh_home(prefix: str) -> Path:
    home = Path(tempfile.mkdtemp(prefix=prefix)) / "home"
    init_home(home)
    return home


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall time of one subprocess in ms; it must exit 0."""
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    return elapsed


def interleaved(commands: dict[str, tuple[list[str], dict[str, str]]], runs: int) -> dict[str, list[float]]:
    """Run each command once per round, in turn, so a busy moment of the machine hits all alike."""
    for command, env in commands.values():
        timed(command, env)  # warm the page cache (and the bytecode cache, when one is written)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (command, env) in commands.items():
            times[name].append(timed(command, env))
    return times


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):6.1f} ms   best {min(values):6.1f}   worst {max(values):6.1f}"


def in_process_pass_ms(home: Path, runs: int) -> list[float]:
    """The pass alone, as the daemon's tick runs it: the queries, with imports already done."""
    app = App(home, "benchmark")
    with open(os.devnull, "w") as sink:
        daemon = Daemon(home=app.home, store=app.store, settings=app.settings,
                        transport=NullTransport(), clock=app.clock, out=sink)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            daemon.once()
            times.append((time.perf_counter() - started) * 1000)
    app.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary home and say where.")
    args = parse_args(parser, cases=20, runs=1)

    home = fresh_home("rr-bench-once-")
    print(f"populating {args.cases} open cases ...", flush=True)
    seconds = populate(home, args.cases)
    app = App(home, "benchmark")
    counts = {
        table: app.store.scalar(f"SELECT COUNT(*) FROM {table}")
        for table in ("cases", "steps", "messages", "events")
    }
    due = app.store.scalar("SELECT COUNT(*) FROM steps WHERE state = 'pending' AND due_at <= ?",
                           [to_iso(datetime.now(UTC))])
    app.close()
    print(f"  done in {seconds:.1f} s: " + ", ".join(f"{n} {t}" for t, n in counts.items())
          + f"; steps due now: {due}")

    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base["RAPIDRESPONSE_HOME"] = str(home)
    pycache = Path(tempfile.mkdtemp(prefix="rr-bench-pyc-"))
    cached = {**base, "PYTHONPYCACHEPREFIX": str(pycache)}
    uncached = {**base, "PYTHONDONTWRITEBYTECODE": "1"}
    once = [sys.executable, "-m", "rapidresponse", "run", "--once"]
    bare = [sys.executable, "-c", "pass"]
    imports = [sys.executable, "-c", "import rapidresponse.cli"]

    times = interleaved(
        {
            "cached": (once, cached),
            "uncached": (once, uncached),
            "python": (bare, cached),
            "imports": (imports, cached),
        },
        args.runs,
    )
    with_cache, without_cache = times["cached"], times["uncached"]
    python_ms, import_ms = times["python"], times["imports"]
    pass_ms = in_process_pass_ms(home, args.runs)

    verdict = "PASS" if statistics.median(with_cache) < TARGET_MS else "MISS"
    print(f"\nrun --once with {args.cases} open cases, nothing due ({args.runs} runs, {os.cpu_count()} cores)")
    print(f"  bytecode cached     {summary(with_cache)}   target < {TARGET_MS:.0f} ms: {verdict}")
    print(f"  project uncompiled  {summary(without_cache)}   (PYTHONDONTWRITEBYTECODE=1, editable install)")
    print("breakdown (bytecode cached):")
    print(f"  python -c pass              {summary(python_ms)}")
    print(f"  python -c 'import the CLI'  {summary(import_ms)}")
    print(f"  the pass in-process         {summary(pass_ms)}   (queries + heartbeat write)")
    print("  see 'python -X importtime -m rapidresponse run --once' for the import tree")

    shutil.rmtree(pycache, ignore_errors=True)
    if args.keep:
        print(f"\nhome kept: {home}")
    else:
        shutil.rmtree(home.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
