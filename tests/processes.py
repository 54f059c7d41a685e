"""Real processes for tests: poll the database from outside, run and stop the daemon.

Shared by the daemon tests and the fault suite (`tests/reliability/`): the tests watch the
database with short polls and a deadline (never a bare sleep), and every daemon is stopped.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

POLL = 0.05
SMS_PREFIX = "[sms console]"

T = TypeVar("T")


def wait_for(probe: Callable[[], T], what: str, timeout: float = 15.0) -> T:
    """Poll until `probe()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL)


def query(home: Path, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    """Read the home's database from outside, as any other process would."""
    conn = sqlite3.connect(home / "rapidresponse.db", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def events(home: Path, kind: str | None = None, case: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM events WHERE 1"
    params: list[Any] = []
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    if case is not None:
        sql += " AND case_ref = ?"
        params.append(case)
    rows = query(home, sql + " ORDER BY seq", params)
    for row in rows:
        row["detail"] = json.loads(row["detail"])
    return rows



@dataclass
class DaemonProcess:
    """A `rapidresponse run` subprocess; its stderr goes to a file, read at will."""

    proc: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def event_lines(self) -> list[str]:
        return [line for line in self.stderr().splitlines() if not line.startswith((SMS_PREFIX, "#"))]

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as systemd stops it; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


