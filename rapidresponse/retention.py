"""Retention: personal data of a closed case is kept no longer than needed.

Purging deletes the person, the notes, the case contacts (the message rows keep only a masked
number) and the follow-ups; the case row stays as a non-identifying tombstone, so the audit chain
and the figures remain whole (the log never held personal data to begin with). A case whose
follow-ups are still open is kept unless forced: the care after the return is not finished.

The retention period (config.toml `[retention] retention_days`, 90 by default) counts from the
case's last follow-up, or from its resolution when it had none. Profiles that no episode used and
nobody changed for as long can go too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from rapidresponse import audit, casecontacts, engine, erasure
from rapidresponse.engine import Context, get_case
from rapidresponse.errors import InputError
from rapidresponse.states import CaseState
from rapidresponse.store import Store
from rapidresponse.timeutil import to_iso

#: When a resolved case last moved: its last answered follow-up, or its resolution.
LAST_ACTIVITY_SQL = (
    "MAX(c.resolved_at, COALESCE((SELECT MAX(f.answered_at) FROM followups f"
    " WHERE f.case_id = c.id), ''))"
)


@dataclass(frozen=True)
class Drop:
    """What purging one case removes (counts only: this is shown and logged)."""

    ref: str
    person: bool
    notes: int
    case_contacts: int
    followups: int
    open_followups: int
    last_activity: str | None

    @property
    def refused(self) -> str | None:
        if self.open_followups:
            return (f"{self.open_followups} follow-up(s) still open: record them"
                    " ('rapidresponse followup'), or purge with --force")
        return None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "refused": self.refused}


@dataclass(frozen=True)
class Purged:
    ref: str
    notes_removed: int
    steps_cancelled: int
    case_contacts_removed: int = 0
    followups_removed: int = 0
    #: Old copies may remain in the WAL while another process reads; the daemon finishes it.
    erasure_pending: bool = False


def drop_of(store: Store, case: dict[str, Any]) -> Drop:
    cid = case["id"]

    def count(sql: str, *params: Any) -> int:
        return int(store.scalar(sql, [cid, *params]) or 0)

    last = store.scalar(f"SELECT {LAST_ACTIVITY_SQL} FROM cases c WHERE c.id = ?", [cid])
    return Drop(
        ref=case["ref"],
        person=bool(count("SELECT COUNT(*) FROM persons WHERE case_id = ?")),
        notes=count("SELECT COUNT(*) FROM notes WHERE case_id = ?"),
        case_contacts=count("SELECT COUNT(*) FROM case_contacts WHERE case_id = ?"),
        followups=count("SELECT COUNT(*) FROM followups WHERE case_id = ?"),
        open_followups=count("SELECT COUNT(*) FROM followups WHERE case_id = ? AND state = 'open'"),
        last_activity=last or None,
    )


def plan_case(store: Store, ref: str) -> Drop:
    """What purging CASE would drop; InputError when it cannot be purged at all."""
    case = get_case(store, ref)
    if case["state"] == CaseState.OPEN:
        raise InputError(f"case {case['ref']} is still open: resolve it before purging")
    if case["state"] == CaseState.PURGED:
        raise InputError(f"case {case['ref']} has already been purged")
    return drop_of(store, case)


def resolved_before(store: Store, cutoff: datetime) -> list[Drop]:
    """Every resolved case resolved before `cutoff`."""
    rows = store.all("SELECT * FROM cases WHERE state = ? AND resolved_at < ? ORDER BY id",
                     [CaseState.RESOLVED, to_iso(cutoff)])
    return [drop_of(store, row) for row in rows]


def past_retention(store: Store, now: datetime, days: int) -> list[Drop]:
    """Every resolved case whose last follow-up (or resolution) is more than `days` ago."""
    rows = store.all(
        f"SELECT c.* FROM cases c WHERE c.state = ? AND {LAST_ACTIVITY_SQL} < ? ORDER BY c.id",
        [CaseState.RESOLVED, to_iso(now - timedelta(days=days))],
    )
    return [drop_of(store, row) for row in rows]


def purge(ctx: Context, ref: str, *, force: bool = False) -> Purged:
    """Remove the minor's data from a resolved case; open cases are refused, and so are cases
    with open follow-ups unless `force`."""
    now = ctx.clock.now()
    with ctx.store.transaction():
        case = get_case(ctx.store, ref)
        drop = plan_case(ctx.store, case["ref"])
        if drop.refused and not force:
            raise InputError(f"case {case['ref']} is kept: {drop.refused}")
        conn = ctx.store.conn
        cancelled = len(engine.stop_chain(ctx, case["id"]))
        notes = conn.execute("DELETE FROM notes WHERE case_id = ?", [case["id"]]).rowcount
        contacts = casecontacts.forget_case(ctx.store, case["id"])
        followups = conn.execute("DELETE FROM followups WHERE case_id = ?", [case["id"]]).rowcount
        conn.execute("DELETE FROM persons WHERE case_id = ?", [case["id"]])
        conn.execute(
            "UPDATE cases SET state = ?, purged_at = ? WHERE id = ?",
            [CaseState.PURGED, to_iso(now), case["id"]],
        )
        detail: dict[str, Any] = {"notes_removed": notes, "steps_cancelled": cancelled,
                                  "case_contacts_removed": contacts, "followups_removed": followups}
        if drop.refused:
            detail["forced"] = f"{drop.open_followups} follow-up(s) were still open"
        audit.append(ctx.store, at=now, kind="case.purged", actor=ctx.actor, case=case["ref"],
                     detail=detail)
    # secure_delete overwrote the rows; old copies stay in the WAL until it is emptied, which
    # never waits for a reader: if one is in the way, the erasure is pending (see `erasure`).
    erased = erasure.finish(ctx.store, ctx.clock.now(), ctx.actor)
    return Purged(case["ref"], notes, cancelled, contacts, followups, erasure_pending=not erased)


def purge_due(ctx: Context, older_than: timedelta) -> list[Purged]:
    """Purge every case resolved longer ago than `older_than` (open follow-ups: kept)."""
    drops = resolved_before(ctx.store, ctx.clock.now() - older_than)
    return [purge(ctx, d.ref) for d in drops if not d.refused]


# ---------------------------------------------------------------- profiles


def unused_profiles(store: Store, cutoff: datetime) -> list[dict[str, Any]]:
    """Profiles nobody changed or registered an episode from since `cutoff`, and that no case
    still holding personal data is linked to."""
    stamp = to_iso(cutoff)
    return store.all(
        "SELECT p.id, p.key, p.changed_at, p.used_at FROM profiles p"
        " WHERE p.changed_at < ? AND COALESCE(p.used_at, '') < ?"
        " AND NOT EXISTS (SELECT 1 FROM persons x WHERE x.profile_id = p.id) ORDER BY p.id",
        [stamp, stamp],
    )


def purge_profiles(ctx: Context, cutoff: datetime) -> list[str]:
    """Delete the unused profiles (and their case contacts); the log names each by its key."""
    from rapidresponse.profiles import delete

    removed = []
    with ctx.store.transaction():
        for row in unused_profiles(ctx.store, cutoff):
            delete(ctx.store, row["id"])
            audit.append(ctx.store, at=ctx.clock.now(), kind="profile.purged", actor=ctx.actor,
                         detail={"profile": row["key"], "unused_since": to_iso(cutoff)})
            removed.append(row["key"])
    erasure.finish(ctx.store, ctx.clock.now(), ctx.actor)  # pending shows in `status` if not
    return removed
