"""How long `rapidresponse playbooks simulate` of the shipped worrying playbook over 72 h takes
(target < 0.5 s).

Usage: python benchmarks/simulate.py [--runs N] [--quick]

The replay nobody answers, found after 30 minutes, so the after-return steps run to 72 h 30 m:
every step of the shipped `worrying-situation` playbook fires, times out, escalates, repeats,
exhausts or is cancelled, and the stand-down goes out. It reports the median and worst wall time
of the whole command as a subprocess (interpreter start and imports included, as a coordinator
runs it) with its CPU time, and of the replay itself in-process (`simulate.simulate`).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from quick import parse_args

from rapidresponse.app import App, init_home
from rapidresponse.simulate import Action, simulate

TARGET_S = 0.5
ARGS = ["playbooks", "simulate", "worrying-situation", "--start", "2026-11-29 23:00",
        "--resolve", "found@30m"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    options = parse_args(parser, runs=1)
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        init_home(home)
        env = {**os.environ, "RAPIDRESPONSE_HOME": str(home)}
        command = [sys.executable, "-m", "rapidresponse", *ARGS]
        subprocess.run(command, env=env, check=True, capture_output=True)  # warm the bytecode
        walls, cpus = [], []
        for _ in range(options.runs):
            used = _children_cpu()
            began = time.perf_counter()
            done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            walls.append(time.perf_counter() - began)
            cpus.append(_children_cpu() - used)
        last = done.stdout.splitlines()
        app = App(home, "benchmark")
        playbook, contacts = app.playbook("worrying-situation"), app.contacts
        start = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
        inner = []
        for _ in range(options.runs):
            began = time.perf_counter()
            result = simulate(playbook, contacts, start=start,
                              resolve=Action("found", timedelta(minutes=30)))
            inner.append(time.perf_counter() - began)
        app.close()
    span = result.events[-1].offset
    print(f"replayed {span} of case time: {len(result.events)} events, {len(last)} lines of output")
    print(f"command (subprocess): median {statistics.median(walls):.3f} s, worst {max(walls):.3f} s"
          f" wall; CPU median {statistics.median(cpus):.3f} s (what a busy machine cannot inflate)")
    print(f"replay in-process:    median {statistics.median(inner):.3f} s, worst {max(inner):.3f} s")
    verdict = "PASS" if statistics.median(walls) < TARGET_S else "MISS"
    print(f"{verdict}: target < {TARGET_S} s for the whole command")


if __name__ == "__main__":
    main()
