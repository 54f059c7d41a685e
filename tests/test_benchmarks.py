"""Every benchmark script still runs: each one as a real subprocess at its `--quick` size.

Nobody runs the benchmarks between changes, so a change in the code can break one silently (three
were, once). Each test checks that its script exits 0 and prints its figure lines: what it
measured, numbers with their units, the target and a verdict. Never the figures' values: how fast
anything is belongs to the benchmarks, not to the suite.

The scripts mostly wait (for a daemon to start, for steps to fall due), so every selected script
is started at once and each test collects its own: together they take about as long as the
longest one alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
N = r"-?\d+(?:\.\d+)?"  # a figure; its value is not the test's business
VERDICT = r"(?:PASS|MISS)"

#: Each script and the lines its quick run must print (regular expressions, one line each).
EXPECTED: dict[str, list[str]] = {
    "call_lateness": [
        rf"^2 calls placed 1 s after an unacknowledged text; lateness median {N} s, worst {N} s"
        rf" \(target < 1 s\): {VERDICT}$",
    ],
    "daemon_lateness": [
        r"^step lateness over 12 steps fired in \S+ s \(daemon exit 0\):$",
        rf"^  median {N} s   p90 {N} s   worst {N} s   target < 1 s: {VERDICT}$",
        r"^ack time-outs acted on after the deadline \(\d+ steps\):$",
    ],
    "daemon_memory": [
        rf"^  VmRSS {N} MB   VmHWM \(peak\) {N} MB   target < 150 MB: {VERDICT}$",
        rf"^  20 messages sent in {N} s; VmRSS after {N} MB   VmHWM \(peak\) {N} MB: {VERDICT}$",
        rf"^  oldest heartbeat seen during the catch-up: {N} s$",
    ],
    "fanout": [
        rf"^fanout: 3/3 texts accepted in {N} s against a 50 ms stand-in"
        rf" \(target < 1.5 s; sequential ≈ {N} s\): {VERDICT}$",
    ],
    "run_once": [
        r"^run --once with 20 open cases, nothing due \(1 runs",
        rf"^  bytecode cached +median +{N} ms +best +{N} +worst +{N} +target < 200 ms: {VERDICT}$",
        rf"^  project uncompiled +median +{N} ms",
        rf"^  the pass in-process +median +{N} ms",
    ],
    "simulate": [
        r"^replayed .+ of case time: \d+ events, \d+ lines of output$",
        rf"^command \(subprocess\): median {N} s, worst {N} s wall; CPU median {N} s",
        rf"^replay in-process: +median {N} s, worst {N} s$",
        rf"^{VERDICT}: target < 0.5 s for the whole command$",
    ],
    "slow_number": [
        r"^\d+ sends to the slow number, 0.5 s each \(daemon exit 0\)$",  # a timed-out send is retried
        rf"^other cases' steps \(2\): median {N} s   p90 {N} s   worst {N} s   target < 1 s: {VERDICT}$",
        rf"^police steps, texting the slow number \(1\): median {N} s",
    ],
    "startup": [
        rf"^  {re.escape(name)} +median {N}× +best {N}× +worst {N}× +target ≤ {N}×: {VERDICT}$"
        for name in ("--help", "cases", "show CASE", "timeline CASE")
    ],
    "supervisor": [
        r"^built 20 cases, \d+ events in ",
        r"^\d+ events, 20 cases; timeline of RR-\d{4}-\d{4}$",
        *(rf"^{re.escape(name)} +{where} +wall median +{N} ms"
          for name in ("log --verify", "timeline", "report (a year)") for where in ("in-process", "subprocess")),
    ],
    "webhook_idle_clients": [
        rf"^2 idle clients: signed ACK answered in median {N} ms, worst {N} ms over 2 requests"
        rf" \(Twilio gives up after 15 s\): {VERDICT}; SIGTERM to exit {N} ms$",
    ],
}


def test_every_script_in_benchmarks_is_exercised() -> None:
    helpers = {"quick", "supervisor_data"}  # imported by the scripts, not run on their own
    scripts = {path.stem for path in BENCHMARKS.glob("*.py")} - helpers
    assert scripts == set(EXPECTED)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], Path]]]:
    """The selected scripts, all started at once with `--quick`; each writes to its own file."""
    selected = sorted({item.callspec.params["script"] for item in request.session.items
                       if item.module is request.module and hasattr(item, "callspec")})
    folder = tmp_path_factory.mktemp("benchmarks")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("RAPIDRESPONSE_", "TWILIO_"))}
    env["TMPDIR"] = str(folder)  # whatever a failing script leaves behind stays with the test run
    started: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for script in selected:
            output = folder / f"{script}.out"
            with open(output, "wb") as out:
                started[script] = (subprocess.Popen(
                    [sys.executable, str(BENCHMARKS / f"{script}.py"), "--quick"], cwd=ROOT, env=env,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT), output)
        yield started
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_benchmark_runs_at_its_quick_size_and_prints_its_figures(
        script: str, runs: dict[str, tuple[subprocess.Popen[bytes], Path]]) -> None:
    process, output = runs[script]
    try:
        code = process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    text = output.read_text(encoding="utf-8", errors="replace")
    assert code == 0, f"{script}.py --quick exited {code}:\n{text}"
    assert "Traceback" not in text, text
    assert re.search(r"^quick run \(", text, re.MULTILINE), text  # it ran at the tiny size
    missing = [line for line in EXPECTED[script] if not re.search(line, text, re.MULTILINE)]
    assert not missing, f"{script}.py --quick did not print lines matching {missing}:\n{text}"
