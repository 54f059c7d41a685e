"""`rapidresponse backup FILE`: a consistent copy of the database while the daemon runs.

SQLite's online backup API copies the pages of one snapshot while others keep writing; the copy
is then verified as a restore would use it (`PRAGMA integrity_check` and the audit log's hash
chain) before it takes the place of FILE. It holds the minors' data: it is written 0600.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from rapidresponse import audit
from rapidresponse.errors import InputError, OperationalFailure
from rapidresponse.store import Store


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    cases: int
    events: int
    head: str


def backup(source: Store, target: Path, *, force: bool = False) -> Backup:
    """Copy `source` to `target` (0600), verify the copy, and only then put it in place.

    An existing `target` is refused unless `force`; a copy that does not verify is removed and
    `target` is left as it was.
    """
    if target.is_dir():
        raise InputError("FILE is a folder: give the backup's file name")
    if target.exists() and not force:
        raise InputError("FILE exists already: choose another name, or pass --force to overwrite it")
    if not target.parent.is_dir():
        raise InputError("FILE's folder does not exist")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise OperationalFailure(f"cannot write next to FILE: {exc.strerror}") from None
    os.close(fd)
    try:
        _copy(source, partial)
        result = _verify(partial)
        _single_file(partial)
        with open(partial, "rb") as done:
            os.fsync(done.fileno())
        os.replace(partial, target)
    finally:
        for leftover in (partial, *(partial.with_name(partial.name + s) for s in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    return Backup(target, target.stat().st_size, result[0], result[1], result[2])


def _copy(source: Store, partial: Path) -> None:
    copy = sqlite3.connect(partial)
    try:
        # One step, one read snapshot: in WAL mode the daemon keeps writing meanwhile, whereas a
        # step-by-step copy restarts at every write of another connection (the heartbeat's).
        source.conn.backup(copy)
    except sqlite3.Error as exc:
        raise OperationalFailure(f"the backup failed: {exc}") from None
    finally:
        copy.close()


def _verify(partial: Path) -> tuple[int, int, str]:
    """Integrity and the log chain of the copy; (cases, events, head hash)."""
    copy = Store(partial, migrate=False)
    try:
        problems = [row[0] for row in copy.conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise OperationalFailure(f"the copy failed its integrity check ({problems[0]}); nothing written")
        chain = audit.verify(copy)
        if not chain.ok:
            raise OperationalFailure(f"the copy's audit log does not verify at event {chain.bad_seq}"
                                     f" ({chain.problem}); nothing written: run 'rapidresponse log --verify'")
        cases = copy.scalar("SELECT COUNT(*) FROM cases")
        return cases, chain.count, chain.head
    finally:
        copy.close()


def _single_file(partial: Path) -> None:
    """One self-contained file (no -wal beside it), as one copies or restores a backup."""
    conn = sqlite3.connect(partial)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()
