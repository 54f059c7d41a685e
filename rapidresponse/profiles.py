"""Pre-registered profiles (the Philomena Protocol): what the carer knows before any episode.

When a known minor goes missing, `register --profile ALIAS` takes the alias, birth date, name,
placement, indicators and case contacts from here, so only the episode is left to type: that
saves the first, most valuable hour.

A profile is personal data: it lives in `profiles` (and `case_contacts`), never in the log.
The log records that a profile was created, changed, viewed or removed, by whom, naming it by
its key (`P-0001`) only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rapidresponse import audit, casecontacts
from rapidresponse.assessment import PLACEMENT_WORDS, age_on, check_indicators
from rapidresponse.engine import Context
from rapidresponse.errors import InputError
from rapidresponse.store import Store, dumps
from rapidresponse.timeutil import to_iso

#: Free-text fields of a profile, in the order the carer fills them in.
TEXT_FIELDS = ("description", "associates", "places", "phone", "social", "medical")


@dataclass(frozen=True)
class Episode:
    """What a registration takes from a profile."""

    profile_id: int
    key: str
    alias: str
    birth_date: date
    full_name: str | None
    placement: str
    indicators: tuple[str, ...]
    contacts: dict[str, str] = field(default_factory=dict)


def alias_key(alias: str) -> str:
    return " ".join(alias.split()).lower()


def _row(store: Store, alias: str) -> dict[str, Any]:
    row = store.one("SELECT * FROM profiles WHERE alias_key = ?", [alias_key(alias)])
    if row is None:
        # Never repeat what was typed: it is a name.
        raise InputError("no profile with that alias (see 'rapidresponse profiles list')")
    return row


def _check_birth_date(birth_date: date, today: date) -> None:
    if birth_date > today:
        raise InputError("--birth-date is in the future")
    if age_on(birth_date, today) >= 18:
        raise InputError("--birth-date makes the person an adult: profiles are for minors")


def _check_placement(placement: str) -> str:
    return PLACEMENT_WORDS.pick(placement)


def add(
    ctx: Context,
    *,
    alias: str,
    birth_date: date,
    full_name: str | None = None,
    placement: str = "home",
    texts: Mapping[str, str | None] | None = None,
    indicators: Iterable[str] = (),
    contacts: Mapping[str, str] | None = None,
) -> str:
    """Create a profile; returns its key (P-0001), the only name the log uses for it."""
    if not alias.strip():
        raise InputError("--alias is empty: give the name the team uses for the minor")
    now = ctx.clock.now()
    _check_birth_date(birth_date, now.astimezone(ctx.contacts.timezone).date())
    placement = _check_placement(placement)
    chosen = check_indicators(indicators)
    given = {k: v for k, v in (texts or {}).items() if v is not None and v.strip()}
    with ctx.store.transaction():
        if ctx.store.scalar("SELECT 1 FROM profiles WHERE alias_key = ?", [alias_key(alias)]):
            raise InputError("a profile with that alias exists already: edit it, or choose"
                             " another alias (see 'rapidresponse profiles list')")
        number = (ctx.store.scalar("SELECT MAX(id) FROM profiles") or 0) + 1
        key = f"P-{number:04d}"
        while ctx.store.scalar("SELECT 1 FROM profiles WHERE key = ?", [key]):
            number += 1
            key = f"P-{number:04d}"
        profile_id = ctx.store.db["profiles"].insert(
            {"key": key, "alias": alias.strip(), "alias_key": alias_key(alias),
             "full_name": full_name, "birth_date": birth_date.isoformat(), "placement": placement,
             **{name: given.get(name) for name in TEXT_FIELDS},
             "indicators": dumps(list(chosen)), "created_at": to_iso(now),
             "created_by": ctx.actor, "changed_at": to_iso(now), "used_at": None}
        ).last_pk
        casecontacts.save(ctx.store, contacts or {}, profile_id=int(profile_id))
        audit.append(
            ctx.store, at=now, kind="profile.created", actor=ctx.actor,
            detail={"profile": key, "fields": sorted(given), "indicators": list(chosen),
                    "case_contacts": sorted(contacts or {})},
        )
    return key


def view(row: dict[str, Any], contacts: Mapping[str, str]) -> dict[str, Any]:
    return {
        "profile": row["key"], "alias": row["alias"], "name": row["full_name"],
        "birth_date": row["birth_date"], "placement": row["placement"],
        **{name: row[name] for name in TEXT_FIELDS},
        "indicators": json.loads(row["indicators"]),
        "case_contacts": casecontacts.shown(contacts),
        "created_at": row["created_at"], "created_by": row["created_by"],
        "changed_at": row["changed_at"], "used_at": row["used_at"],
        "episodes": [],
    }


def show(ctx: Context, alias: str) -> dict[str, Any]:
    """The whole profile, with its episodes; the log records who looked."""
    with ctx.store.transaction():
        row = _row(ctx.store, alias)
        shown = view(row, casecontacts.of_profile(ctx.store, row["id"]))
        shown["episodes"] = [
            r["ref"] for r in ctx.store.all(
                "SELECT c.ref FROM cases c JOIN persons p ON p.case_id = c.id"
                " WHERE p.profile_id = ? ORDER BY c.missing_since", [row["id"]])
        ]
        audit.append(ctx.store, at=ctx.clock.now(), kind="profile.viewed", actor=ctx.actor,
                     detail={"profile": row["key"]})
    return shown


def list_all(ctx: Context) -> list[dict[str, Any]]:
    """Every profile (alias, age, placement, episodes); the log records that the list was seen."""
    with ctx.store.transaction():
        rows = ctx.store.all(
            "SELECT p.key, p.alias, p.birth_date, p.placement, p.changed_at, p.used_at,"
            " (SELECT COUNT(*) FROM persons x WHERE x.profile_id = p.id) AS episodes"
            " FROM profiles p ORDER BY p.alias_key"
        )
        audit.append(ctx.store, at=ctx.clock.now(), kind="profiles.listed", actor=ctx.actor,
                     detail={"count": len(rows)})
    return rows


def edit(
    ctx: Context,
    alias: str,
    *,
    new_alias: str | None = None,
    birth_date: date | None = None,
    full_name: str | None = None,
    placement: str | None = None,
    texts: Mapping[str, str | None] | None = None,
    add_indicators: Iterable[str] = (),
    drop_indicators: Iterable[str] = (),
    contacts: Mapping[str, str] | None = None,
) -> list[str]:
    """Change what is given (an empty text clears a field); returns the names of what changed."""
    now = ctx.clock.now()
    added, dropped = check_indicators(add_indicators), check_indicators(drop_indicators)
    changes: dict[str, Any] = {}
    if new_alias is not None:
        if not new_alias.strip():
            raise InputError("--new-alias is empty")
        changes["alias"], changes["alias_key"] = new_alias.strip(), alias_key(new_alias)
    if birth_date is not None:
        _check_birth_date(birth_date, now.astimezone(ctx.contacts.timezone).date())
        changes["birth_date"] = birth_date.isoformat()
    if full_name is not None:
        changes["full_name"] = full_name.strip() or None
    if placement is not None:
        changes["placement"] = _check_placement(placement)
    for name, value in (texts or {}).items():
        if value is not None:
            changes[name] = value.strip() or None
    with ctx.store.transaction():
        row = _row(ctx.store, alias)
        if "alias_key" in changes and changes["alias_key"] != row["alias_key"] and ctx.store.scalar(
            "SELECT 1 FROM profiles WHERE alias_key = ?", [changes["alias_key"]]
        ):
            raise InputError("another profile has that alias already")
        indicators = json.loads(row["indicators"])
        if added or dropped:
            kept = [i for i in (*indicators, *added) if i not in dropped]
            changes["indicators"] = dumps(list(check_indicators(kept)))
        changed = sorted(k for k in changes if k != "alias_key")
        if contacts:
            casecontacts.save(ctx.store, contacts, profile_id=row["id"])
            changed += [f"{kind}-phone" for kind in sorted(contacts)]
        if not changed:
            raise InputError("nothing to change: give at least one option (see --help)")
        if changes:
            changes["changed_at"] = to_iso(now)
            sets = ", ".join(f"{name} = ?" for name in changes)
            ctx.store.conn.execute(f"UPDATE profiles SET {sets} WHERE id = ?",
                                   [*changes.values(), row["id"]])
        else:
            ctx.store.conn.execute("UPDATE profiles SET changed_at = ? WHERE id = ?",
                                   [to_iso(now), row["id"]])
        audit.append(ctx.store, at=now, kind="profile.changed", actor=ctx.actor,
                     detail={"profile": row["key"], "fields": changed})
    return changed


def remove(ctx: Context, alias: str) -> str:
    """Delete a profile and its case contacts; its episodes keep their own copy of the data."""
    with ctx.store.transaction():
        row = _row(ctx.store, alias)
        delete(ctx.store, row["id"])
        audit.append(ctx.store, at=ctx.clock.now(), kind="profile.removed", actor=ctx.actor,
                     detail={"profile": row["key"]})
    return str(row["key"])


def delete(store: Store, profile_id: int) -> None:
    """The profile and its case contacts go; episodes keep their own copy."""
    store.conn.execute("UPDATE persons SET profile_id = NULL WHERE profile_id = ?", [profile_id])
    store.conn.execute("DELETE FROM case_contacts WHERE profile_id = ?", [profile_id])
    store.conn.execute("DELETE FROM profiles WHERE id = ?", [profile_id])


def for_episode(store: Store, alias: str) -> Episode:
    """What `register --profile ALIAS` takes from the profile."""
    row = _row(store, alias)
    return Episode(
        profile_id=row["id"], key=row["key"], alias=row["alias"],
        birth_date=date.fromisoformat(row["birth_date"]), full_name=row["full_name"],
        placement=row["placement"], indicators=tuple(json.loads(row["indicators"])),
        contacts=casecontacts.of_profile(store, row["id"]),
    )
