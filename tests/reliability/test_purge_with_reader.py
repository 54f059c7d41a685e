"""`purge` with another reader open tells the truth and blocks nobody (issue 7, failure 4).

A backup or a `sqlite3` shell holding a read transaction kept the WAL checkpoint from emptying
the log: `purge` exited 0 while the alias, name, place and notes were still in
`rapidresponse.db-wal`, and its checkpoint waited 30 s holding the write lock, so officers'
`register`s failed. Now the purge says "erasure pending" (exit 1), `status` shows it, nobody
waits, and the daemon's next pass finishes the erasure once the reader has gone.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import MINOR

CLI = Callable[..., subprocess.CompletedProcess[str]]
#: The minor whose data is purged: distinct from MINOR, whom the other officers register.
PURGED = {"alias": "Quorvelinde", "name": "Quorvelinde Brakkenhof", "place": "Mispelhoekstraat"}


def on_disk(home: Path, text: str) -> bool:
    """Is `text` anywhere in the database file or its write-ahead log?"""
    data = b"".join(p.read_bytes() for p in home.glob("rapidresponse.db*") if p.is_file())
    return text.encode() in data


def registering(env: dict[str, str], alias: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rapidresponse", "register", "--alias", alias, "--birth-date",
         MINOR["birth_date"], "--last-seen", MINOR["last_seen"], "--missing-since", "now", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_purge_with_a_reader_open_reports_pending_blocks_no_officer_and_finishes_later(
    home: Path, cli: CLI, env: dict[str, str]
) -> None:
    env = {**env, "RAPIDRESPONSE_BUSY_TIMEOUT": "5"}  # bounds the test if a lock were held
    registered = cli("register", "--alias", PURGED["alias"], "--name", PURGED["name"],
                     "--birth-date", MINOR["birth_date"], "--last-seen", PURGED["place"],
                     "--missing-since", "now", "--json", extra=env)
    assert registered.returncode == 0, registered.stderr
    ref = json.loads(registered.stdout)["case"]
    assert cli("resolve", ref, "--outcome", "found", extra=env).returncode == 0

    reader = sqlite3.connect(home / "rapidresponse.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM persons").fetchone()  # a backup's long read
    officers = [registering(env, f"Officer{i}case") for i in range(3)]
    purge = cli("purge", ref, "--yes", "--force", extra=env)
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in officers]

    assert purge.returncode == 1, purge.stdout + purge.stderr
    assert "erasure pending" in purge.stderr and PURGED["alias"] not in purge.stderr
    assert all(code == 0 for code, _ in results), results
    assert on_disk(home, PURGED["alias"]), "then the pending state was true"
    status = cli("status", "--json", extra=env)
    assert json.loads(status.stdout)["erasure_pending"] is True and status.returncode == 1

    reader.execute("COMMIT")
    reader.close()
    assert cli("run", "--once", extra=env).returncode == 0  # the daemon's pass finishes it
    for secret in PURGED.values():
        assert not on_disk(home, secret), f"{secret!r} is still on disk"
    assert json.loads(cli("status", "--json", extra=env).stdout)["erasure_pending"] is False


def test_purge_without_a_reader_erases_at_once(home: Path, cli: CLI, register: Callable[..., str]) -> None:
    ref = register()
    assert cli("resolve", ref, "--outcome", "found").returncode == 0
    purge = cli("purge", ref, "--yes", "--force")
    assert purge.returncode == 0, purge.stderr
    assert "no copy left" in purge.stdout
    for secret in (MINOR["alias"], MINOR["last_seen"]):
        assert not on_disk(home, secret)
