"""Duty rosters: who of a role is on duty when, by rotation and by override.

The youth prosecutor on duty, the OCJ permanence and the coordinator rotate weekly; a rotation
lists the members in order with a shift length and a first shift's start, so nobody edits numbers
every week. Shift boundaries are counted in local wall time: a shift that starts "Monday 08:00"
starts at 08:00 on both sides of a clock change (that week is an hour shorter or longer). An
override (a swap, a holiday) puts one contact first for a while. The member on duty is texted
first; the others follow in rotation order, as backups; contacts outside the rotation come last.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from rapidresponse.timeutil import format_duration, parse_duration

ROTATION_KEYS = {"members", "shift", "start"}
OVERRIDE_KEYS = {"role", "contact", "from", "until"}
LOCAL_FORM = "a local time like 2026-11-30 08:00"
#: Shorter shifts are a typing mistake (a roster is not a pager schedule by the minute).
MIN_SHIFT = timedelta(hours=1)


class Named(Protocol):
    @property
    def name(self) -> str: ...


C = TypeVar("C", bound=Named)


@dataclass(frozen=True)
class Rotation:
    members: tuple[str, ...]  # contact names, in rotation order
    shift: timedelta
    start: datetime  # naive: wall time in the contacts file's time zone

    def index_at(self, wall: datetime) -> int:
        """The number of the shift (from 0 at `start`; negative before) holding a wall time."""
        return (wall - self.start) // self.shift

    def boundary(self, index: int, tz: ZoneInfo) -> datetime:
        """When shift `index` starts: counted in wall time, then placed in the zone."""
        return local(self.start + index * self.shift, tz)

    def member(self, index: int) -> str:
        return self.members[index % len(self.members)]


@dataclass(frozen=True)
class Override:
    role: str
    contact: str
    start: datetime  # aware
    until: datetime  # aware

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.until


@dataclass(frozen=True)
class Shift:
    """A stretch of time with one contact first in the role's chain."""

    role: str
    contact: str
    start: datetime
    end: datetime
    override: bool


def local(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall time in `tz` (the first of a repeated hour), as UTC: aware datetimes of one
    zone compare and subtract by wall time in Python, so everything inside is UTC."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def wall_time(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def chain_order(
    role: str,
    contacts: Sequence[C],
    rotation: Rotation | None,
    overrides: Iterable[Override],
    moment: datetime,
    tz: ZoneInfo,
) -> tuple[C, ...]:
    """The role's contacts in the order a chain texts them at `moment`.

    An override in force comes first (the latest-starting one first); then the member on duty
    and the rest of the rotation after it; then everybody else in file order.
    """
    by_name = {c.name: c for c in contacts}
    names: list[str] = []
    for override in sorted((o for o in overrides if o.role == role and o.covers(moment)),
                           key=lambda o: o.start, reverse=True):
        names.append(override.contact)
    if rotation is not None:
        now = rotation.index_at(wall_time(moment, tz))
        names += [rotation.member(now + step) for step in range(len(rotation.members))]
    names += [c.name for c in contacts]
    ordered = [by_name[n] for n in dict.fromkeys(names) if n in by_name]
    return tuple(ordered)


def shifts(
    role: str,
    contacts: Sequence[Named],
    rotation: Rotation | None,
    overrides: Iterable[Override],
    tz: ZoneInfo,
    since: datetime,
    until: datetime,
) -> list[Shift]:
    """Who is first in the chain from `since` to `until`, as consecutive shifts (whole shifts
    of a rotation: from the start of the one in progress to the end of the last).

    Asks `chain_order` at every boundary (a shift change, an override's start or end), so the
    roster shows exactly what a chain would do.
    """
    wanted = [o for o in overrides if o.role == role]
    if rotation is None and not wanted:
        return []  # file order, always: nothing changes hands
    moments = {since, until}
    if rotation is not None:  # whole shifts: from the start of the one holding `since`
        index = rotation.index_at(wall_time(since, tz))
        since = rotation.boundary(index, tz)
        moments = {since}
        while True:
            index += 1
            boundary = rotation.boundary(index, tz)
            moments.add(boundary)
            if boundary >= until:
                until = boundary
                break
    moments |= {m for o in wanted for m in (o.start, o.until) if since < m < until}
    ordered = sorted(moments)
    found: list[Shift] = []
    for begin, end in itertools.pairwise(ordered):
        first = chain_order(role, contacts, rotation, wanted, begin, tz)
        if not first:
            continue
        name = first[0].name
        is_override = any(o.covers(begin) and o.contact == name for o in wanted)
        if found and found[-1].contact == name and found[-1].override == is_override \
                and found[-1].end == begin:
            found[-1] = Shift(role, name, found[-1].start, end, is_override)
        else:
            found.append(Shift(role, name, begin, end, is_override))
    return found


# ---------------------------------------------------------------- reading the file


class RosterError(ValueError):
    """A mistake in a rotation or an override; the caller adds the file and line."""


def parse_local(value: Any, field: str, tz: ZoneInfo) -> datetime:
    """'2026-11-30 08:00' (wall time, naive); a time that never happens is refused."""
    if isinstance(value, datetime):
        wall = value
    elif isinstance(value, str):
        try:
            wall = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RosterError(f"'{field}' must be {LOCAL_FORM}") from None
    else:
        raise RosterError(f"'{field}' must be {LOCAL_FORM} (in quotes)")
    if wall.tzinfo is not None:
        raise RosterError(f"'{field}' is local time in the file's time zone: leave out the offset")
    if wall_time(local(wall, tz), tz) != wall:
        raise RosterError(f"'{field}' falls in the hour skipped when the clocks go forward")
    return wall


def parse_rotation(body: Any, members_of_role: Sequence[str], tz: ZoneInfo) -> Rotation:
    if not isinstance(body, Mapping):
        raise RosterError("must be a table with members, shift and start")
    unknown = sorted(set(body) - ROTATION_KEYS)
    if unknown:
        raise RosterError(f"unknown key '{unknown[0]}' (a rotation has members, shift and start)")
    members = body.get("members")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise RosterError("'members' must list the names of this role's contacts, in order")
    for name in members:
        if name not in members_of_role:
            raise RosterError(f"member '{name}' is not a contact of this role")
    if len(set(members)) != len(members):
        raise RosterError("a member is listed twice")
    shift_text = body.get("shift")
    if not isinstance(shift_text, str):
        raise RosterError("'shift' must be a duration such as \"7d\" or \"12h\"")
    try:
        shift = parse_duration(shift_text)
    except ValueError as exc:
        raise RosterError(f"'shift': {exc}") from None
    if shift < MIN_SHIFT:
        raise RosterError(f"'shift' is {format_duration(shift)}: a shift lasts at least an hour")
    if "start" not in body:
        raise RosterError(f"'start' (when the first member's shift begins, {LOCAL_FORM}) is missing")
    return Rotation(tuple(members), shift, parse_local(body["start"], "start", tz))


def parse_override(entry: Any, roles: Mapping[str, Sequence[str]], tz: ZoneInfo) -> Override:
    if not isinstance(entry, Mapping):
        raise RosterError("must be a table with role, contact, from and until")
    unknown = sorted(set(entry) - OVERRIDE_KEYS)
    if unknown:
        raise RosterError(f"unknown key '{unknown[0]}' (an override has role, contact, from, until)")
    for key in ("role", "contact", "from", "until"):
        if key not in entry:
            raise RosterError(f"'{key}' is missing")
    role = entry["role"]
    if role not in roles:
        raise RosterError(f"role '{role}' is not in this file")
    contact = entry["contact"]
    if contact not in roles[role]:
        raise RosterError(f"'{contact}' is not a contact of role '{role}'")
    start = local(parse_local(entry["from"], "from", tz), tz)
    until = local(parse_local(entry["until"], "until", tz), tz)
    if until <= start:
        raise RosterError("'until' must come after 'from'")
    return Override(role, contact, start, until)
