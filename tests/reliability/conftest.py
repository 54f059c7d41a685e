"""Fixtures of the fault suite: a home, the Twilio stand-in, the CLI and the daemon as processes.

Every test here is marked `reliability` (`pytest -m reliability` runs only these; CI runs them
with the rest). Faults are injected from outside, as they happen in production: a signal, a
scripted provider answer, a lock held by another connection, a full or read-only disk. Time
is short configured time-outs and polls with deadlines, never long sleeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import MINOR, assert_no_secrets
from processes import DaemonProcess, query, wait_for

#: The daemon's tick in the fault suite: fast, so the tests are.
TICK_SECONDS = "0.1"
#: The Twilio client's time-out against the stand-in; a stand-in slower than this is "down".
TWILIO_TIMEOUT = "3"
#: The claim lease: longer than any send can take with TWILIO_TIMEOUT (connect + read).
CLAIM_SECONDS = 10


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def stub() -> Iterator[Any]:
    """The local Twilio stand-in; at the end, nothing it received names the minor."""
    from twilio_stub import TwilioStub

    server = TwilioStub().start()
    yield server
    server.stop()
    for rec in server.received():
        assert_no_secrets(f"{rec.body} {rec.status_callback}")


@pytest.fixture
def env(home: Path, stub: Any) -> dict[str, str]:
    """The environment of every process of a test: the home, the stand-in, short time-outs."""
    return {
        **os.environ,
        **stub.env(RAPIDRESPONSE_TWILIO_TIMEOUT=TWILIO_TIMEOUT),
        "RAPIDRESPONSE_HOME": str(home),
        "RAPIDRESPONSE_TICK_SECONDS": TICK_SECONDS,
        "RAPIDRESPONSE_CLAIM_SECONDS": str(CLAIM_SECONDS),
    }


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`rapidresponse ARGS` as a real process with the test's environment (plus `extra`)."""

    def run(*args: str, extra: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rapidresponse", *args], capture_output=True, text=True,
            env={**env, **(extra or {})}, timeout=timeout,
        )

    return run


@pytest.fixture
def register(cli: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., str]:
    """Register the fictitious minor through the CLI (`args` added, `extra` environment);
    returns the case reference. Each call is a new episode: a test may register several."""

    def run(*args: str, extra: dict[str, str] | None = None) -> str:
        result = cli("register", "--alias", MINOR["alias"], "--name", MINOR["full_name"],
                     "--birth-date", MINOR["birth_date"], "--last-seen", MINOR["last_seen"],
                     "--missing-since", "now", "--indicator", "older-partner", "--json",
                     "--new-episode", *args, extra=extra)
        assert result.returncode == 0, result.stderr
        assert_no_secrets(result.stderr)
        return str(json.loads(result.stdout)["case"])

    return run


@pytest.fixture
def daemon(home: Path, env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start `rapidresponse run` (waiting for its first heartbeat); all are killed at teardown."""
    started: list[DaemonProcess] = []

    def start(extra: dict[str, str] | None = None, ready: bool = True) -> DaemonProcess:
        stderr_path = tmp_path / f"daemon-{len(started)}.err"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rapidresponse", "run"], env={**env, **(extra or {})},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )
        process = DaemonProcess(proc, stderr_path)
        started.append(process)
        if ready:
            wait_for(
                lambda: proc.poll() is not None or query(
                    home, "SELECT 1 FROM daemon WHERE pid = ? AND stopped_at IS NULL", [proc.pid]
                ),
                "the daemon's first heartbeat",
            )
            assert proc.poll() is None, f"the daemon exited early: {process.stderr()}"
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()
        assert_no_secrets(process.stderr())
