"""Retention: personal data of a closed case is kept no longer than needed.

Purging deletes the person and the notes; the case row stays as a non-identifying tombstone, so
the audit chain and the figures remain whole (the log never held personal data to begin with).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from rapidresponse import audit
from rapidresponse.engine import Context, get_case
from rapidresponse.errors import InputError
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
        if case["state"] == "open":
            raise InputError(f"case {case['ref']} is still open: resolve it before purging")
        if case["state"] == "purged":
            raise InputError(f"case {case['ref']} has already been purged")
        conn = ctx.store.conn
        cancelled = conn.execute(
            "UPDATE steps SET state = 'cancelled', finished_at = ?, ack_deadline = NULL"
            " WHERE case_id = ? AND state IN ('pending', 'active')",
            [to_iso(now), case["id"]],
        ).rowcount
        conn.execute(
            "UPDATE messages SET state = 'cancelled', final_at = ? WHERE case_id = ? AND state = 'queued'",
            [to_iso(now), case["id"]],
        )
        notes = conn.execute("DELETE FROM notes WHERE case_id = ?", [case["id"]]).rowcount
        conn.execute("DELETE FROM persons WHERE case_id = ?", [case["id"]])
        conn.execute(
            "UPDATE cases SET state = 'purged', purged_at = ? WHERE id = ?", [to_iso(now), case["id"]]
        )
        audit.append(
            ctx.store, at=now, kind="case.purged", actor=ctx.actor, case=case["ref"],
            detail={"notes_removed": notes, "steps_cancelled": cancelled},
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
            "SELECT ref FROM cases WHERE state = 'resolved' AND resolved_at <= ? ORDER BY id", [cutoff]
        )
    ]
    return [purge(ctx, ref) for ref in refs]
