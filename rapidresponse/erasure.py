"""Finishing an erasure: no copy of purged data left in the database file or its WAL.

Deleting rows (with `secure_delete`) overwrites them in new pages, but the old pages live on in
the write-ahead log, and in the database file until the log is folded in. Only a checkpoint that
empties the log (TRUNCATE) removes them, and it can only do that when no other connection is
reading an older snapshot (a backup, a `sqlite3` shell). Waiting for such a reader while holding
the write lock made officers' registrations fail; so the checkpoint never waits: when a reader
is in the way the erasure stays *pending* — `status` says so — and the daemon (or the next
purge, or `run --once`) finishes it once the reader has gone.

Pending is derived from the log itself: a purge event later than the last `store.erased`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rapidresponse.store import Store, busy_timeout_ms

#: Events after which personal data may linger in the WAL until the next full checkpoint.
PURGE_EVENTS = ("case.purged", "profile.purged")
ERASED = "store.erased"


def _last_purge(store: Store) -> int | None:
    marks = ",".join("?" * len(PURGE_EVENTS))
    return store.scalar(f"SELECT MAX(seq) FROM events WHERE kind IN ({marks})", PURGE_EVENTS)


def pending(store: Store) -> bool:
    """Is there a purge whose old copies may still be in the WAL or the database file?"""
    last_purge = _last_purge(store)
    if last_purge is None:
        return False
    erased = store.scalar("SELECT MAX(json_extract(detail, '$.through')) FROM events WHERE kind = ?",
                          [ERASED])
    return erased is None or int(erased) < last_purge


def checkpoint_without_waiting(store: Store) -> bool:
    """Fold the WAL into the database and empty it, if nobody is in the way right now.

    True only when SQLite reports the checkpoint complete *and* the WAL file is empty: the
    result is checked, never assumed. Never waits for a reader or a writer (busy timeout 0).
    """
    conn = store.conn
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        busy, _frames, _moved = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
    wal = Path(f"{store.path}-wal")
    return busy == 0 and (not wal.exists() or wal.stat().st_size == 0)


def finish(store: Store, now: datetime, actor: str) -> bool:
    """Try to finish every pending erasure; True when none is pending any more.

    The event names the last purge the emptied log covered (`through`): a purge committed by
    another process during the checkpoint stays pending.
    """
    from rapidresponse import audit  # only here: `cases` reads `pending` and needs no log code

    if not pending(store):
        return True
    through = _last_purge(store)
    if not checkpoint_without_waiting(store):
        return False
    with store.transaction():  # new frames in an empty WAL: only this event, nothing personal
        audit.append(store, at=now, kind=ERASED, actor=actor, detail={"through": through})
    return not pending(store)
