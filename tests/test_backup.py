"""`rapidresponse backup FILE`: a consistent copy while the daemon runs, verified, 0600, no overwrite."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from conftest import MINOR, run_cli
from processes import DaemonProcess, query, wait_for
from rapidresponse import audit
from rapidresponse.cli import cli
from rapidresponse.store import Store


def register(home: Path, n: int) -> None:
    for i in range(n):
        result = run_cli("register", "--alias", f"{MINOR['alias']}-{i}", "--birth-date", MINOR["birth_date"],
                         "--missing-since", "1h ago", "--last-seen", MINOR["last_seen"],
                         "--indicator", "hotel", "--json", home=home)
        assert result.returncode == 0, result.stderr


def verified(path: Path) -> audit.Verification:
    store = Store(path, migrate=False)
    try:
        assert [r[0] for r in store.conn.execute("PRAGMA integrity_check")] == ["ok"]
        return audit.verify(store)
    finally:
        store.close()


def test_a_verified_private_copy_while_the_daemon_runs(home: Path, tmp_path: Path) -> None:
    err = tmp_path / "daemon.err"
    with open(err, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rapidresponse", "run"],
                                env={**os.environ, "RAPIDRESPONSE_HOME": str(home)},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out)
    daemon = DaemonProcess(proc, err)
    try:
        wait_for(lambda: query(home, "SELECT 1 FROM daemon WHERE pid = ? AND stopped_at IS NULL",
                               [proc.pid]), "the daemon's first heartbeat")
        register(home, 3)
        target = tmp_path / "backups" / "rr.db"
        target.parent.mkdir()
        result = run_cli("backup", str(target), "--json", home=home)
        assert result.returncode == 0, result.stderr
        assert proc.poll() is None  # the daemon kept running
    finally:
        assert daemon.stop() == 0
    report = json.loads(result.stdout)
    assert report["verified"] and report["cases"] == 3
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["rr.db"]  # one file, nothing beside it
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    check = verified(target)
    assert check.ok and check.count == report["events"] and check.head == report["head"]


def test_an_existing_file_is_kept_unless_forced(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    target = tmp_path / "rr.db"
    target.write_bytes(b"yesterday's backup")
    refused = runner.invoke(cli, ["--home", str(home), "backup", str(target)])
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert target.read_bytes() == b"yesterday's backup"
    forced = runner.invoke(cli, ["--home", str(home), "backup", "--force", str(target)])
    assert forced.exit_code == 0, forced.stderr
    assert verified(target).ok and "verified" in forced.stdout


def test_a_copy_that_does_not_verify_is_not_written(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    register(home, 1)
    conn = sqlite3.connect(home / "rapidresponse.db")
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET actor = 'someone else' WHERE seq = 2")
    conn.commit()
    conn.close()
    target = tmp_path / "rr.db"
    result = runner.invoke(cli, ["--home", str(home), "backup", str(target)])
    assert result.exit_code == 1 and "does not verify at event 2" in result.stderr
    assert list(tmp_path.glob("*rr.db*")) == []  # neither FILE nor a partial copy


def test_a_folder_or_a_missing_folder_is_bad_input(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    for target in (tmp_path, tmp_path / "nowhere" / "rr.db"):
        result = runner.invoke(cli, ["--home", str(home), "backup", str(target)])
        assert result.exit_code == 2, result.output
