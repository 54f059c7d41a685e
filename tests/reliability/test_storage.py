"""The database under pressure: a lock held past the busy timeout, a full disk, a read-only home.

Each fault must end in one sentence and exit 1, nothing half written, and the work carried on
as soon as the fault is gone.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import MINOR, RecordingTransport, assert_no_secrets, register_minor, tick
from processes import DaemonProcess, query, wait_for
from rapidresponse import store as store_module
from rapidresponse.app import App
from rapidresponse.audit import verify
from rapidresponse.clock import FakeClock
from rapidresponse.config import Settings
from rapidresponse.engine import Context

SHORT_BUSY = {"RAPIDRESPONSE_BUSY_TIMEOUT": "0.3"}
REGISTER = ("register", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
            "--last-seen", MINOR["last_seen"], "--missing-since", "now", "--indicator", "hotel")


@contextmanager
def write_lock(home: Path) -> Iterator[None]:
    """Another process's open write transaction (a stuck tool, a backup that writes)."""
    conn = sqlite3.connect(home / "rapidresponse.db", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def one_sentence(stderr: str) -> str:
    assert "Traceback" not in stderr
    assert_no_secrets(stderr)
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def cases(home: Path) -> int:
    return int(query(home, "SELECT COUNT(*) AS n FROM cases")[0]["n"])


# ---------------------------------------------------------------- a lock held too long


def test_a_lock_held_past_the_busy_timeout_is_a_sentence_and_nothing_half_written(
    home: Path, cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    with write_lock(home):
        result = cli(*REGISTER, extra=SHORT_BUSY)
    assert result.returncode == 1
    assert "the database is busy" in one_sentence(result.stderr)
    assert cases(home) == 0
    assert cli(*REGISTER, extra=SHORT_BUSY).returncode == 0  # the lock gone, it works
    assert cases(home) == 1


def test_the_daemon_outlives_a_lock_held_past_its_busy_timeout(
    home: Path, daemon: Callable[..., DaemonProcess], register: Callable[..., str],
) -> None:
    process = daemon(SHORT_BUSY)
    with write_lock(home):
        wait_for(lambda: "tick.failed" in process.stderr(), "a failed tick while the lock is held")
        ref = None
    ref = register(extra=SHORT_BUSY)
    wait_for(lambda: query(home, "SELECT 1 FROM messages m JOIN cases c ON c.id = m.case_id"
                                 " WHERE c.ref = ? AND m.state = 'sent'", [ref]), "the alerts sent")
    assert process.proc.poll() is None
    failed = [line for line in process.stderr().splitlines() if "tick.failed" in line]
    assert all("the database is busy" in line for line in failed), failed


# ---------------------------------------------------------------- a full disk


def fill_disk(conn: sqlite3.Connection) -> None:
    """No room for one more page (`PRAGMA max_page_count`), and none left in the pages there are."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    conn.execute("CREATE TABLE IF NOT EXISTS ballast (b BLOB)")
    for size in (4096, 512, 64, 8):
        try:
            while True:
                conn.execute("INSERT INTO ballast VALUES (zeroblob(?))", [size])
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)


def test_a_disk_that_fills_at_any_point_loses_no_alert(
    app: App, ctx: Context, clock: FakeClock, settings: Settings,
) -> None:
    """Cases keep coming until the disk is full, wherever that happens: a registration or the
    record of a send. Each case is whole or absent; once there is room, every alert goes out."""
    transport = RecordingTransport()
    register_minor(ctx, app)
    pages = app.store.conn.execute("PRAGMA page_count").fetchone()[0]
    app.store.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(sqlite3.OperationalError, match="full") as caught:
        for _ in range(500):
            tick(ctx, transport, settings)
            register_minor(ctx, app, new_episode=True)
            clock.advance(seconds=30)
    assert "disk holding the database is full" in str(store_module.explain(caught.value))
    assert ctx.store.scalar("SELECT COUNT(*) FROM persons") == ctx.store.scalar("SELECT COUNT(*) FROM cases")
    assert verify(ctx.store).ok
    app.store.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
    clock.advance(seconds=settings.claim_seconds + 1)
    tick(ctx, transport, settings)
    rows = ctx.store.all("SELECT state, possible_duplicate, to_number, body FROM messages")
    assert rows and all(r["state"] == "sent" for r in rows)
    sent = transport.sent
    for row in rows:  # every text arrived; one sent twice is flagged
        copies = sent.count((row["to_number"], row["body"]))
        assert copies >= 1
        assert copies == 1 or row["possible_duplicate"]


def test_the_cli_says_the_disk_is_full(
    home: Path, monkeypatch: pytest.MonkeyPatch, runner: Any,
) -> None:
    from rapidresponse.cli import cli

    connect = store_module._connect

    def full(path: Path) -> sqlite3.Connection:
        conn = connect(path)
        fill_disk(conn)
        return conn

    monkeypatch.setattr(store_module, "_connect", full)
    result = runner.invoke(cli, ["--home", str(home), *REGISTER])
    assert result.exit_code == 1
    assert "the disk holding the database is full" in one_sentence(result.stderr)
    monkeypatch.setattr(store_module, "_connect", connect)
    assert cases(home) == int(query(home, "SELECT COUNT(*) AS n FROM persons")[0]["n"])


# ---------------------------------------------------------------- a read-only home


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Files and folders nobody may write, root included (root writes through any mode bits)."""
    if os.getuid() == 0:
        if subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True).returncode:
            pytest.skip("running as root on a file system without immutable files")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
        return
    modes = {path: path.stat().st_mode for path in paths}
    for path in paths:
        path.chmod(0o500 if path.is_dir() else 0o400)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_a_read_only_home_is_a_sentence_and_nothing_changes(
    home: Path, cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    db = home / "rapidresponse.db"
    before = db.read_bytes()
    with read_only(db, home):
        result = cli(*REGISTER)
    assert result.returncode == 1, result.stderr
    assert "cannot" in one_sentence(result.stderr)
    assert db.read_bytes() == before
    assert not (home / "rapidresponse.db-wal").exists()
