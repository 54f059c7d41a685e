"""Parsing and formatting of times and durations, UTC inside, local at the edges."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rapidresponse.errors import InputError

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_AGO = re.compile(r"^(?P<span>[0-9dhms]+)\s+ago$")
#: The longest duration accepted anywhere (offsets, report periods, retention, "… ago").
MAX_DURATION_DAYS = 3650
_WHEN_FORMS = "use 'now', '3h ago', 'YYYY-MM-DD HH:MM' or ISO 8601"


class DurationTooLong(ValueError):
    """A well-formed duration beyond MAX_DURATION_DAYS."""


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '1h30m', '2d' → timedelta; raises ValueError on anything else.

    Nothing in a case spans more than MAX_DURATION_DAYS: a longer duration is a typing mistake,
    and refusing it here keeps every later date calculation inside the calendar.
    """
    text = text.strip().replace(" ", "")
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"'{_short(text)}' is not a duration (use s, m, h, d: e.g. 90s, 15m, 1h30m)")
    too_long = DurationTooLong(f"'{_short(text)}' is longer than {MAX_DURATION_DAYS} days")
    if any(len(g or "") > 12 for g in match.groups()):
        raise too_long  # and int() is spared a number of thousands of digits
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    if days * 86400 + hours * 3600 + minutes * 60 + seconds > MAX_DURATION_DAYS * 86400:
        raise too_long
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _short(text: str) -> str:
    return text if len(text) <= 24 else text[:20] + "…"


def format_duration(delta: timedelta) -> str:
    """Compact Dutch-neutral form for messages and tables: 3u20m is avoided; 3h20m."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds and not days and not hours:
        parts.append(f"{seconds}s")
    return sign + ("".join(parts) or "0m")


def to_iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order inside SQLite."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _local_moment(naive: datetime, tz: ZoneInfo, name: str) -> datetime:
    """A wall-clock time in `tz`, refusing the hour that happens twice or never at a DST change:
    guessing would shift every step counted from the disappearance by an hour."""
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    try:
        offsets = (first.utcoffset(), second.utcoffset())
    except OverflowError:
        return first  # out of range: the caller reports it
    if offsets[0] == offsets[1]:
        return first
    round_trip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if round_trip != naive:
        raise InputError(f"{name} falls in the hour skipped when the clocks go forward in {tz.key};"
                         " check the time, or give it with its offset (e.g. +01:00)")
    raise InputError(f"{name} falls in the hour that happens twice when the clocks go back in {tz.key};"
                     " give it with its offset: +02:00 for the first time, +01:00 for the second")


def parse_when(text: str, *, now: datetime, tz: ZoneInfo, name: str = "the time") -> datetime:
    """A moment as a duty officer types it: 'now', '3h ago', '2026-11-28 14:05' (local), ISO.

    Errors name the field (`name`) but never quote the text: an officer may have typed
    something personal into the wrong field.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    ago = _AGO.match(value.lower())
    if ago:
        try:
            return now - parse_duration(ago.group("span"))
        except DurationTooLong as exc:
            raise InputError(f"{name} is too far back: {exc}") from None
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name} is not a time: {_WHEN_FORMS}") from None
    if moment.tzinfo is None:
        moment = _local_moment(moment, tz, name)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{name} is outside the calendar (years 1 to 9999)") from None
    if moment < now - timedelta(days=MAX_DURATION_DAYS):
        raise InputError(f"{name} is too far back: more than {MAX_DURATION_DAYS} days ago")
    return moment
