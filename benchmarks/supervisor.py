"""The supervisor's tools on 10,000 cases and a million events.

Usage: python benchmarks/supervisor.py [--cases N] [--events N] [--runs N] [--keep DIR] [--quick]

Targets: `log --verify` < 3 s, `timeline CASE` < 100 ms, `report` over a year < 1 s. Each is timed
in-process (the library call: what the index and the algorithm cost) and as a subprocess (what a
supervisor waits for, interpreter start included). Data: `supervisor_data.py`, direct inserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from quick import parse_args
from supervisor_data import END, build

from rapidresponse import audit
from rapidresponse.figures import Period, report
from rapidresponse.store import Store
from rapidresponse.timeline import timeline

TARGETS = {"log --verify": 3.0, "timeline": 0.1, "report (a year)": 1.0}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: what the work costs, whatever else
    the shared machine is doing (wall time there depends on the load)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(runs):
        began, cpu = time.perf_counter(), cpu_seconds()
        fn()
        walls.append(time.perf_counter() - began)
        cpus.append(cpu_seconds() - cpu)
    return walls, cpus


def cli(home: Path, *args: str) -> Callable[[], object]:
    env = {**os.environ, "RAPIDRESPONSE_HOME": str(home)}

    def run() -> object:
        done = subprocess.run([sys.executable, "-m", "rapidresponse", *args], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()}")
        return done

    return run


def line(name: str, where: str, measured: tuple[list[float], list[float]]) -> str:
    times, cpus = measured
    target = TARGETS.get(name)
    best = min(times)
    verdict = "" if target is None or where != "subprocess" else ("PASS" if best < target else "MISS")
    return (f"{name:<18} {where:<11} wall median {statistics.median(times) * 1000:8.1f} ms"
            f"  best {best * 1000:8.1f}  worst {max(times) * 1000:8.1f}"
            f"  | cpu median {statistics.median(cpus) * 1000:8.1f} ms  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="Build the home here and keep it (reused if it exists).")
    args = parse_args(parser, cases=20, events=2000, runs=1)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="rr-supervisor-"))
    home = folder / "home"
    try:
        if not (home / "rapidresponse.db").exists():
            began = time.perf_counter()
            written = build(home, args.cases, args.events)
            print(f"built {args.cases} cases, {written} events in {time.perf_counter() - began:.1f} s")
        store = Store(home / "rapidresponse.db")
        count = store.scalar("SELECT COUNT(*) FROM events")
        case = store.scalar("SELECT ref FROM cases ORDER BY id DESC LIMIT 1")
        print(f"{count} events, {store.scalar('SELECT COUNT(*) FROM cases')} cases; timeline of {case}")
        results = []
        result = audit.verify(store)
        if not result.ok:
            raise SystemExit(f"the benchmark's log does not verify: {result.problem}")
        results.append(line("log --verify", "in-process", timed(lambda: audit.verify(store), args.runs)))
        results.append(line("log --verify", "subprocess", timed(cli(home, "log", "--verify"), args.runs)))
        for extra in _extra_benchmarks(store, home, case):
            name, in_process, command = extra
            results.append(line(name, "in-process", timed(in_process, args.runs)))
            results.append(line(name, "subprocess", timed(cli(home, *command), args.runs)))
        store.close()
        print("\n".join(results))
        print(f"load average during the runs: {' '.join(f'{x:.1f}' for x in os.getloadavg())};"
              f" {os.cpu_count()} CPUs. Verdict on the best subprocess run (the machine is shared).")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def _extra_benchmarks(store: Store, home: Path, case: str) -> list[tuple[str, Callable[[], object], list[str]]]:
    """Timeline and report: each in-process call beside the command that does the same."""
    year = Period(END - timedelta(days=365), END)
    return [("timeline", lambda: timeline(store, case), ["timeline", case, "--json"]),
            ("report (a year)", lambda: report(store, year),
             ["report", "--since", f"{year.since:%Y-%m-%d}", "--until", f"{year.until:%Y-%m-%d}", "--json"])]

if __name__ == "__main__":
    main()
