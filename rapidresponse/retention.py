"""Retention: personal data of a closed case is kept no longer than needed.

Purging deletes the person and the notes; the case row stays as a non-identifying tombstone, so
the audit chain and the figures remain whole (the log never held personal data to begin with).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rapidresponse import audit, casecontacts, engine
from rapidresponse.engine import Context, get_case
from rapidresponse.errors import InputError
from rapidresponse.states import CaseState
from rapidresponse.timeutil import to_iso


@dataclass(frozen=True)
class Purged:
    ref: str
    notes_removed: int
    steps_cancelled: int


def purge(ctx: Context, ref: str) -> Purged:
    """Remove the minor's data from a resolved case; open cases are refused."""
    now = ctx.clock.now()
    with ctx.store.transaction():
        case = get_case(ctx.store, ref)
        if case["state"] == CaseState.OPEN:
            raise InputError(f"case {case['ref']} is still open: resolve it before purging")
        if case["state"] == CaseState.PURGED:
            raise InputError(f"case {case['ref']} has already been purged")
        conn = ctx.store.conn
        cancelled = len(engine.stop_chain(ctx, case["id"]))
        notes = conn.execute("DELETE FROM notes WHERE case_id = ?", [case["id"]]).rowcount
        contacts = casecontacts.forget_case(ctx.store, case["id"])
        conn.execute("DELETE FROM persons WHERE case_id = ?", [case["id"]])
        conn.execute(
            "UPDATE cases SET state = ?, purged_at = ? WHERE id = ?",
            [CaseState.PURGED, to_iso(now), case["id"]],
        )
        audit.append(
            ctx.store, at=now, kind="case.purged", actor=ctx.actor, case=case["ref"],
            detail={"notes_removed": notes, "steps_cancelled": cancelled,
                    "case_contacts_removed": contacts},
        )
    # secure_delete zeroed the freed pages; fold the WAL in so no old copy lingers there either.
    ctx.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Purged(case["ref"], notes, cancelled)


def purge_due(ctx: Context, older_than: timedelta) -> list[Purged]:
    """Purge every case resolved longer ago than `older_than`."""
    cutoff = to_iso(ctx.clock.now() - older_than)
    refs = [
        row["ref"]
        for row in ctx.store.all(
            "SELECT ref FROM cases WHERE state = ? AND resolved_at <= ? ORDER BY id",
            [CaseState.RESOLVED, cutoff],
        )
    ]
    return [purge(ctx, ref) for ref in refs]
