"""The hash-chained, append-only audit log that supervisors review and verify.

Each event's hash is SHA-256 over the previous hash and the canonical JSON of the event, so
changing, inserting or deleting a row breaks the chain from that row on. The detail never holds
personal data of the minor: only references, roles, contacts and message bodies (which are
themselves checked to identify nobody).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rapidresponse.store import REPORT_KINDS, Store, dumps, report_copy_of, report_copy_wanted
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
        rows = store.rows("SELECT * FROM events ORDER BY seq")
    else:
        rows = store.rows("SELECT * FROM events WHERE case_ref = ? ORDER BY seq", [case])
    for row in rows:
        yield _row_to_event(row)


def canonical_text(seq: int, at: str, case: str | None, actor: str, kind: str, detail: str) -> str:
    """The exact text `event_hash` hashes, built from the stored columns without parsing JSON.

    `dumps` sorts keys (actor, at, case, detail, kind, seq) and writes strings as
    `encode_basestring` does; the stored detail is already `dumps(detail)`. So the text is
    joined, not re-serialised — the same hash as always, in a fraction of the time. A detail
    stored in any other spelling than the canonical one no longer matches its hash: the text
    that was hashed is the text that must be there.
    """
    return (
        f'{{"actor":{_string(actor)},"at":{_string(at)},'
        f'"case":{"null" if case is None else _string(case)},'
        f'"detail":{detail},"kind":{_string(kind)},"seq":{seq}}}'
    )


_string = json.encoder.encode_basestring  # type: ignore[attr-defined]

#: The same text built by SQLite, which is faster than joining it in Python. SQLite's
#: `json_quote` escapes as `encode_basestring` does for every character we know of; where it
#: does not, `_matches_exactly` decides with Python's own text before anything is called broken.
_SQL_CANONICAL = (
    """'{"actor":' || json_quote(actor) || ',"at":' || json_quote(at) || ',"case":' ||"""
    """ json_quote(case_ref) || ',"detail":' || detail || ',"kind":' || json_quote(kind) ||"""
    """ ',"seq":' || seq || '}'"""
)


def _matches_exactly(conn: Any, seq: int, prev_hash: str, stored_hash: str) -> bool:
    row = conn.execute(
        "SELECT seq, at, case_ref, actor, kind, detail FROM events WHERE seq = ?", [seq]
    ).fetchone()
    try:
        text = canonical_text(*row)
    except TypeError:  # a column of the wrong type was written behind the log's back
        return False
    return hashlib.sha256((prev_hash + text).encode("utf-8")).hexdigest() == stored_hash


@dataclass(frozen=True)
class Head:
    """The newest event: what an anchor records, so a later rewrite of the whole chain shows."""

    seq: int
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}


def head(store: Store) -> Head:
    row = store.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return Head(row[0], row[1]) if row else Head(0, GENESIS)


@dataclass(frozen=True)
class Anchor:
    """A head written down elsewhere (anchor file, syslog, a supervisor's notebook).

    `seq` is None for a hash given alone: it must then be the hash of some event.
    """

    hash: str
    seq: int | None = None
    at: str | None = None
    source: str = "--anchor"

    def label(self) -> str:
        where = f"event {self.seq}" if self.seq is not None else "a hash"
        when = f" written {self.at}" if self.at else ""
        return f"the anchor of {where}{when} ({self.source})"


@dataclass(frozen=True)
class Verification:
    ok: bool
    count: int
    head: str
    bad_seq: int | None = None
    problem: str | None = None
    anchors_checked: int = 0
    mismatches: tuple[str, ...] = ()
    report_rows: int = 0  # rows of report_events proved to be the log's

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.count, "head": self.head, "bad_event": self.bad_seq,
                "problem": self.problem, "anchors_checked": self.anchors_checked,
                "table_mismatches": list(self.mismatches), "report_rows_checked": self.report_rows}


#: The events that open and close a case, for the cross-check against the `cases` table.
CASE_STATE_EVENTS = {"case.registered": "open", "case.resolved": "resolved", "case.purged": "purged"}


#: Below this many events the chain is checked in this process; above, in parallel.
PARALLEL_FROM = 100_000


def verify(store: Store, anchors: tuple[Anchor, ...] | list[Anchor] = ()) -> Verification:
    """Recompute the whole chain, compare it with every anchor, and cross-check the tables.

    Names the first event that does not hold. A chain that is consistent in itself can still
    have been rewritten whole (triggers dropped, every hash recomputed): only an anchor kept
    outside the database shows that, and the first anchored event that differs is named.
    Deleting the newest events leaves a valid chain too: an anchor beyond the head shows it.

    The report reads `report_events`, the log's narrow copy (m017): it must hold exactly what
    its trigger would have written from the log, or the report's figures are not the log's.

    Each event's check needs only its own row (its stored previous hash, its content, its hash,
    its copy), so a long log is checked in slices by several processes; the slices' seams, and
    that the copy has no rows beyond the log's, are checked here.
    """
    last = store.scalar("SELECT MAX(seq) FROM events") or 0
    parts = _slices(last)
    if len(parts) == 1:
        results = [_check_slice(store.conn, *parts[0])]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(len(parts), mp_context=multiprocessing.get_context("fork")) as pool:
            lows, highs = zip(*parts, strict=True)
            results = list(pool.map(_check_slice_of, [str(store.path)] * len(parts), lows, highs))
    prev_hash, count = GENESIS, 0
    for (low, _high), result in zip(parts, results, strict=True):
        if result.first_prev is not None and result.first_prev != prev_hash:
            return Verification(False, count, prev_hash, low, "it does not follow the event before it")
        if result.bad_seq is not None:
            return Verification(False, count + result.count, result.prev_hash or prev_hash,
                                result.bad_seq, result.problem)
        count += result.count
        prev_hash = result.last_hash or prev_hash
    problem = _check_anchors(store, anchors, count)
    if problem is not None:
        bad_seq, text = problem
        return Verification(False, count, prev_hash, bad_seq, text)
    copied = sum(result.copied for result in results)
    problem = _check_copy(store, results, copied, last)
    if problem is not None:
        bad_seq, text = problem
        return Verification(False, count, prev_hash, bad_seq, text, len(anchors))
    mismatches = tuple(cross_check(store, log_states(store)))
    if mismatches:
        return Verification(False, count, prev_hash, None,
                            "the cases table does not match the log: " + "; ".join(mismatches[:5]),
                            len(anchors), mismatches)
    return Verification(True, count, prev_hash, anchors_checked=len(anchors), report_rows=copied)


def _slices(last: int) -> list[tuple[int, int]]:
    workers = min(os.cpu_count() or 1, 4)
    if last < PARALLEL_FROM or workers < 2:
        return [(1, last + 1)]
    size = -(-last // workers)
    return [(low, min(low + size, last + 1)) for low in range(1, last + 1, size)]


@dataclass(frozen=True)
class _Slice:
    count: int
    first_prev: str | None
    last_hash: str | None
    prev_hash: str | None = None
    bad_seq: int | None = None
    problem: str | None = None
    copied: int = 0  # events of the slice that report_events holds exactly
    copy_bad_seq: int | None = None
    copy_problem: str | None = None


def _check_slice_of(path: str, low: int, high: int) -> _Slice:
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _check_slice(conn, low, high)
    finally:
        conn.close()


def _check_slice(conn: Any, low: int, high: int) -> _Slice:
    """Events low..high-1: the chain's, then the report's copy of them."""
    chain = _check_chain(conn, low, high)
    if chain.bad_seq is not None:
        return chain
    return _check_copy_of_slice(conn, low, high, chain)


def _check_chain(conn: Any, low: int, high: int) -> _Slice:
    """Events low..high-1: each present, each following the one before, each matching its hash."""
    sha256 = hashlib.sha256
    expected, prev, first_prev, count = low, None, None, 0
    # One text per event, built by SQLite: the stored previous hash followed by the canonical
    # event; a stored prev_hash of any other length than a hash's cannot follow anything.
    rows = conn.execute(
        "SELECT seq, CASE WHEN length(prev_hash) = 64 THEN prev_hash ELSE '-' END ||"
        f" {_SQL_CANONICAL}, hash FROM events WHERE seq >= ? AND seq < ? ORDER BY seq", [low, high]
    )
    for seq, text, stored_hash in rows:
        if seq != expected:
            return _Slice(count, first_prev, prev, prev, seq, f"event {expected} is missing")
        if text is None:
            return _Slice(count, first_prev, prev, prev, seq, "its content does not match its hash")
        if prev is None:
            first_prev = text[:64]
            if low == 1 and first_prev != GENESIS:
                return _Slice(count, first_prev, prev, prev, seq, "it does not follow the event before it")
        elif not text.startswith(prev):
            return _Slice(count, first_prev, prev, prev, seq, "it does not follow the event before it")
        if sha256(text.encode("utf-8")).hexdigest() != stored_hash and (
            not _matches_exactly(conn, seq, text[:64], stored_hash)
        ):
            return _Slice(count, first_prev, prev, prev, seq, "its content does not match its hash")
        prev = stored_hash
        expected += 1
        count += 1
    return _Slice(count, first_prev, prev)


#: Per slice: how many events should have a row in `report_events`, the first that has none,
#: and the first whose row differs from what the trigger writes (m017's own expressions; `IS
#: NOT` compares NULLs and types too). The kinds are tested first, so that the trigger's
#: `json_valid` parses only the details of those (a quarter of the log), not every event's.
_COPY_OF_SLICE = (
    "SELECT COUNT(*), MIN(CASE WHEN r.seq IS NULL THEN e.seq END),"
    " MIN(CASE WHEN r.seq IS NOT NULL AND (r.kind, r.at, r.seq, r.case_ref, r.step, r.role, r.contact,"
    f" r.message, r.via, r.due_at, r.facts) IS NOT ({report_copy_of('e')}) THEN e.seq END)"
    " FROM events e LEFT JOIN report_events r ON r.kind = e.kind AND r.at = e.at AND r.seq = e.seq"
    f" WHERE e.seq >= ? AND e.seq < ? AND e.kind IN ({', '.join(repr(k) for k in REPORT_KINDS)})"
    f" AND {report_copy_wanted('e')}"
)


def _check_copy_of_slice(conn: Any, low: int, high: int, chain: _Slice) -> _Slice:
    """Every event of the slice the report reads has its row in `report_events`, with the values
    the trigger would have written (a row found only by its key would not prove them)."""
    wanted, lacking, differing = conn.execute(_COPY_OF_SLICE, [low, high]).fetchone()
    if lacking is None and differing is None:
        return replace(chain, copied=wanted)
    if differing is not None and (lacking is None or differing < lacking):
        return replace(chain, copy_bad_seq=differing, copy_problem=_COPY_DIFFERS.format(differing))
    # No row under the event's key (kind, time, seq): one under another kind or time is an edit.
    if conn.execute("SELECT 1 FROM report_events WHERE seq = ?", [lacking]).fetchone():
        return replace(chain, copy_bad_seq=lacking, copy_problem=_COPY_DIFFERS.format(lacking))
    return replace(chain, copy_bad_seq=lacking, copy_problem=f"{_COPY} lacks event {lacking}")


_COPY = "the report's copy of the log (report_events)"
_COPY_DIFFERS = _COPY + " differs from it at event {}"


def _check_copy(store: Store, slices: list[_Slice], copied: int, last: int) -> tuple[int, str] | None:
    """The first event whose copy in `report_events` is missing or wrong, else its first extra row.

    Each slice proved its events' rows up to the head `last` (distinct: the key holds the seq),
    so up to it any other row is extra; beyond it a row needs its event, which a daemon may have
    written since (one transaction writes both).
    """
    for result in slices:
        if result.copy_bad_seq is not None:
            return (result.copy_bad_seq, result.copy_problem or "")
    held, beyond = store.conn.execute(
        "SELECT COUNT(*) FILTER (WHERE r.seq <= :last),"
        f" MIN(r.seq) FILTER (WHERE r.seq > :last AND {_NO_EVENT}) FROM report_events r", {"last": last}
    ).fetchone()
    extra = beyond
    if held != copied:
        extra = store.scalar(f"SELECT MIN(r.seq) FROM report_events r WHERE r.seq <= ? AND {_NO_EVENT}",
                             [last])
    if extra is None:
        return None
    return (extra, f"{_COPY} has a row the log lacks (event {extra})")


#: A row of `report_events` (r) that no event of the log would have had written.
_NO_EVENT = ("NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = r.seq AND e.kind = r.kind AND e.at = r.at"
             f" AND {report_copy_wanted('e')})")


def _check_anchors(store: Store, anchors: Any, count: int) -> tuple[int | None, str] | None:
    """The first anchor the (intact) chain does not match, as (event, sentence)."""
    matched = 0  # the newest anchored event that matched its anchor
    for anchor in sorted((a for a in anchors if a.seq is not None), key=lambda a: a.seq):
        if anchor.seq > count:
            return (count + 1, f"it is missing, but {anchor.label()} shows the log reached event"
                    f" {anchor.seq}: the newest events were deleted")
        stored = store.scalar("SELECT hash FROM events WHERE seq = ?", [anchor.seq])
        if stored != anchor.hash:
            since = f" (after event {matched}, which matches its anchor)" if matched else ""
            return (anchor.seq, f"it differs from {anchor.label()}: the log was rewritten at or"
                    f" before this event{since}")
        matched = anchor.seq
    for anchor in anchors:
        if anchor.seq is None and not store.scalar("SELECT 1 FROM events WHERE hash = ?", [anchor.hash]):
            return (None, f"no event has the hash of {anchor.label()}: the log was rewritten")
    return None


def log_states(store: Store) -> dict[str, str]:
    """Each case's state as its opening and closing events give it (through the kind index)."""
    states: dict[str, str] = {}
    marks = ",".join("?" * len(CASE_STATE_EVENTS))
    for case, kind in store.conn.execute(
        f"SELECT case_ref, kind FROM events WHERE kind IN ({marks}) AND case_ref IS NOT NULL ORDER BY seq",
        list(CASE_STATE_EVENTS),
    ):
        states[case] = CASE_STATE_EVENTS[kind]
    return states


def cross_check(store: Store, log_states: dict[str, str]) -> list[str]:
    """Each case's state in `cases` against the state its log events give it.

    A case the log shows open must not be resolved in the table, a resolved one not open, and
    every case of either side must exist on the other.
    """
    problems = []
    table = dict(store.conn.execute("SELECT ref, state FROM cases").fetchall())
    for ref in sorted(set(table) | set(log_states)):
        in_log, in_table = log_states.get(ref), table.get(ref)
        if in_log is None:
            problems.append(f"{ref} is in the cases table ({in_table}) but was never registered in the log")
        elif in_table is None:
            problems.append(f"{ref} is registered in the log but missing from the cases table")
        elif in_log != in_table:
            problems.append(f"{ref} is {in_table} in the cases table but {in_log} in the log")
    return problems


def parse_anchor(text: str, source: str = "--anchor") -> Anchor:
    """`HASH`, `SEQ:HASH`, or an anchor-file line `AT SEQ HASH`; ValueError otherwise."""
    parts = text.strip().split()
    if len(parts) == 1 and ":" in parts[0]:
        parts = parts[0].split(":", 1)
    at = None
    if len(parts) == 3:
        at, parts = parts[0], parts[1:]
    seq: int | None = None
    if len(parts) == 2:
        if not parts[0].isdigit():
            raise ValueError("an anchor's sequence number is a whole number")
        seq = int(parts[0])
        parts = parts[1:]
    if len(parts) != 1 or not _HASH.match(parts[0]):
        raise ValueError("an anchor is a 64-character SHA-256 hash, optionally preceded by 'SEQ:'")
    return Anchor(parts[0].lower(), seq, at, source)


_HASH = re.compile(r"^[0-9a-fA-F]{64}$")
