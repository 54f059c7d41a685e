"""The hash-chained, append-only audit log that supervisors review and verify.

Each event's hash is SHA-256 over the previous hash and the canonical JSON of the event, so
changing, inserting or deleting a row breaks the chain from that row on. The detail never holds
personal data of the minor: only references, roles, contacts and message bodies (which are
themselves checked to identify nobody).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rapidresponse.store import Store, dumps
from rapidresponse.timeutil import to_iso

GENESIS = "0" * 64

Listener = Callable[[dict[str, Any]], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """The daemon prints each event it writes; listeners see exactly what the log holds."""
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    canonical = dumps(
        {
            "seq": event["seq"],
            "at": event["at"],
            "case": event["case"],
            "actor": event["actor"],
            "kind": event["kind"],
            "detail": event["detail"],
        }
    )
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def append(
    store: Store,
    *,
    at: datetime,
    kind: str,
    actor: str,
    case: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one event. Call inside `store.transaction()`; the write lock orders the chain."""
    if not store.conn.in_transaction:
        raise RuntimeError("audit.append must run inside a transaction")
    last = store.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    prev_seq, prev_hash = (last[0], last[1]) if last else (0, GENESIS)
    event = {
        "seq": prev_seq + 1,
        "at": to_iso(at),
        "case": case,
        "actor": actor,
        "kind": kind,
        "detail": detail or {},
    }
    digest = event_hash(prev_hash, event)
    store.conn.execute(
        "INSERT INTO events (seq, at, case_ref, actor, kind, detail, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [event["seq"], event["at"], case, actor, kind, dumps(event["detail"]), prev_hash, digest],
    )
    event["prev_hash"], event["hash"] = prev_hash, digest
    for listener in list(_listeners):
        store.after_commit(lambda listener=listener: listener(event))
    return event


def _row_to_event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "at": row["at"],
        "case": row["case_ref"],
        "actor": row["actor"],
        "kind": row["kind"],
        "detail": json.loads(row["detail"]),
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


def events(store: Store, case: str | None = None) -> Iterator[dict[str, Any]]:
    if case is None:
        rows = store.db.query("SELECT * FROM events ORDER BY seq")
    else:
        rows = store.db.query("SELECT * FROM events WHERE case_ref = ? ORDER BY seq", [case])
    for row in rows:
        yield _row_to_event(row)


@dataclass(frozen=True)
class Verification:
    ok: bool
    count: int
    head: str
    bad_seq: int | None = None
    problem: str | None = None


def verify(store: Store) -> Verification:
    """Recompute the whole chain; name the first event that does not hold."""
    prev_hash = GENESIS
    expected_seq = 1
    count = 0
    for row in store.db.query("SELECT * FROM events ORDER BY seq"):
        try:
            event = _row_to_event(row)
        except (TypeError, ValueError):
            return Verification(False, count, prev_hash, row["seq"], "detail is not valid JSON")
        if event["seq"] != expected_seq:
            return Verification(
                False, count, prev_hash, event["seq"], f"event {expected_seq} is missing"
            )
        if event["prev_hash"] != prev_hash:
            return Verification(
                False, count, prev_hash, event["seq"], "it does not follow the event before it"
            )
        if event_hash(prev_hash, event) != event["hash"]:
            return Verification(
                False, count, prev_hash, event["seq"], "its content does not match its hash"
            )
        prev_hash = event["hash"]
        expected_seq += 1
        count += 1
    return Verification(True, count, prev_hash)
