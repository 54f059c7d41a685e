"""Start-up of the commands a person types, as ratios to `python -c "import click"` in the same run.

Usage: python benchmarks/startup.py [--cases N] [--runs N] [--keep] [--quick]

Targets: `--help` ≤ 1.5×, `cases` ≤ 2.5× (with 10,000 open cases), `show CASE` and `timeline CASE`
≤ 3×. Each command
runs as a subprocess with a warm bytecode cache (as after `pip install`), paired run by run with
the yardstick so that a busy moment of the shared machine hits both; the figure is the median of
the pairs' ratios. The home is filled through the library (see run_once.py), and `cases` lists the
most urgent 20 of them, as an officer would see it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from quick import parse_args
from run_once import fresh_home, populate, timed

from rapidresponse.app import App

TARGETS = {"--help": 1.5, "cases": 2.5, "show CASE": 3.0, "timeline CASE": 3.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary home and say where.")
    args = parse_args(parser, cases=20, runs=1)

    home = fresh_home("rr-bench-start-")
    print(f"populating {args.cases} open cases ...", flush=True)
    seconds = populate(home, args.cases)
    app = App(home, "benchmark")
    ref = app.store.scalar("SELECT ref FROM cases ORDER BY id DESC LIMIT 1")
    app.close()
    print(f"  done in {seconds:.1f} s")

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["RAPIDRESPONSE_HOME"] = str(home)
    pycache = Path(tempfile.mkdtemp(prefix="rr-bench-pyc-"))
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    rr = [sys.executable, "-m", "rapidresponse"]
    yardstick = [sys.executable, "-c", "import click"]
    commands = {"--help": [*rr, "--help"], "cases": [*rr, "cases"], "show CASE": [*rr, "show", ref],
                "timeline CASE": [*rr, "timeline", ref]}

    for command in [yardstick, *commands.values()]:
        timed(command, env)  # warm the page cache and the bytecode cache
    ratios: dict[str, list[float]] = {name: [] for name in commands}
    base: list[float] = []
    for _ in range(args.runs):
        for name, command in commands.items():
            click_ms = timed(yardstick, env)
            ratios[name].append(timed(command, env) / click_ms)
            base.append(click_ms)

    print(f"\nstart-up, {args.runs} pairs each, {os.cpu_count()} cores;"
          f" python -c 'import click': median {statistics.median(base):.1f} ms")
    for name, values in ratios.items():
        median = statistics.median(values)
        verdict = "PASS" if median <= TARGETS[name] else "MISS"
        print(f"  {name:<14} median {median:4.2f}×   best {min(values):4.2f}×   worst {max(values):4.2f}×"
              f"   target ≤ {TARGETS[name]}×: {verdict}")
    shutil.rmtree(pycache, ignore_errors=True)
    if args.keep:
        print(f"home kept: {home}")
    else:
        shutil.rmtree(home.parent, ignore_errors=True)
    return 0  # a MISS is a figure, not a failure of the script (as in the other benchmarks)


if __name__ == "__main__":
    sys.exit(main())
