"""Shifts of a duty roster as an iCalendar file, which a magistrate's calendar can subscribe to."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rapidresponse.rosters import Shift

PRODID = "-//rapidresponse//duty roster//NL"


def roster_calendar(role: Any, found: list[Shift], now: datetime) -> bytes:
    """One event per shift; stable UIDs (role and start), so a re-export updates, not duplicates."""
    from icalendar import Calendar, Event

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"Wachtdienst {role.title}")
    for shift in found:
        event = Event()
        event.add("uid", f"{role.key}-{shift.start.astimezone(UTC):%Y%m%dT%H%M%SZ}@rapidresponse")
        event.add("dtstamp", now.astimezone(UTC))
        event.add("dtstart", shift.start.astimezone(UTC))
        event.add("dtend", shift.end.astimezone(UTC))
        event.add("summary", f"Wachtdienst {role.title}: {shift.contact}")
        if shift.override:
            event.add("description", "Vervanging (override) in contacts.toml")
        calendar.add_component(event)
    return bytes(calendar.to_ical())


def write_ics(path: Path, role: Any, found: list[Shift], now: datetime) -> None:
    """Written whole or not at all (a calendar may be polling the file)."""
    data = roster_calendar(role, found, now)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)
