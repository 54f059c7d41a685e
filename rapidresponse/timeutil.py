"""Parsing and formatting of times and durations, UTC inside, local at the edges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rapidresponse.errors import InputError

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_AGO = re.compile(r"^(?P<span>[0-9dhms]+)\s+ago$")
#: The longest duration accepted anywhere (offsets, report periods, retention, "… ago").
MAX_DURATION_DAYS = 3650


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


def local_stamp(moment: datetime, tz: ZoneInfo) -> str:
    """A log line's time, local to `tz` (the zone is named once elsewhere), to the millisecond."""
    here = moment.astimezone(tz)
    return here.strftime("%Y-%m-%d %H:%M:%S.") + f"{here.microsecond // 1000:03d}"


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


@dataclass(frozen=True)
class Reading:
    """A moment read from what a person typed, and how a left-out part was filled in."""

    moment: datetime
    #: Set when the day was not typed ('14:05'): which day it was taken to be, to say back.
    note: str | None = None


#: Words for a day, in English and in Dutch, as days back from today.
DAY_WORDS = {"today": 0, "vandaag": 0, "yesterday": 1, "gisteren": 1, "eergisteren": 2}
_CLOCK = r"(?P<hour>\d{1,2})(?:[:u](?P<minute>\d{2})(?::(?P<second>\d{2}))?|u)"
_TIME_ONLY = re.compile(rf"^{_CLOCK}$")
_DAY_WORD_TIME = re.compile(rf"^(?P<day>[a-z]+)\s+{_CLOCK}$")
_DAY_FIRST = r"(?P<d>\d{1,2})(?P<sep>[/.-])(?P<m>\d{1,2})(?P=sep)(?P<y>\d{2,4})"
_DAY_FIRST_DATE = re.compile(rf"^{_DAY_FIRST}$")
_DAY_FIRST_TIME = re.compile(rf"^{_DAY_FIRST}\s+{_CLOCK}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AGO_NL = re.compile(r"^(?P<span>[0-9dhums]+)\s+geleden$")
_WHEN_EXAMPLES = "'gisteren 22:00', 'vandaag 14u05', '28/11/2026 14:05', '14:05' or '3h ago'"


def _clock(match: re.Match[str], name: str) -> tuple[int, int, int]:
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    second = int(match["second"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise InputError(f"{name} has no such time of day: use 00:00 to 23:59")
    return hour, minute, second


def parse_date(text: str, name: str) -> date:
    """A calendar date as people in Flanders write it: day first ('02/03/2011', '2-3-2011',
    '2.3.2011') or ISO ('2011-03-02'). A two-digit year is refused rather than given a century."""
    value = text.strip()
    match = _DAY_FIRST_DATE.match(value)
    try:
        if match:
            if len(match["y"]) != 4:
                raise InputError(f"{name} needs the year in four digits, day first: e.g. 02/03/2011")
            return date(int(match["y"]), int(match["m"]), int(match["d"]))
        if _ISO_DATE.match(value):
            return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name} is not a date in the calendar (day first: DD/MM/YYYY)") from None
    raise InputError(f"{name} is not a date: use DD/MM/YYYY (day first) or YYYY-MM-DD")


def read_when(text: str, *, now: datetime, tz: ZoneInfo, name: str = "the time") -> Reading:
    """A moment as a duty officer types it, in Dutch or English, never guessed.

    'now', '3h ago' / '3u geleden', 'gisteren 22:00', 'today 14u05', '28/11/2026 14:05' (day
    first), '14:05' (today, or yesterday when today's would be in the future: the reading says
    which), 'YYYY-MM-DD HH:MM' and ISO 8601 with an offset. Local times are in `tz`; one that a
    DST change skips or repeats is refused. A date without a time is refused, not read as
    midnight. Errors name the field (`name`) but never quote the text: an officer may have typed
    something personal into the wrong field.
    """
    value = " ".join(text.split()).lower()
    if value in ("now", "nu"):
        return Reading(now)
    ago = _AGO.match(value) or _AGO_NL.match(value)
    if ago:
        try:
            return Reading(now - parse_duration(ago["span"].replace("u", "h")))
        except DurationTooLong as exc:
            raise InputError(f"{name} is too far back: {exc}") from None
        except ValueError:
            pass
    today = now.astimezone(tz).date()
    if value in DAY_WORDS or _DAY_FIRST_DATE.match(value) or _ISO_DATE.match(value):
        raise InputError(f"{name} has a date but no time: add the time, e.g. 'gisteren 22:00' or"
                         " '28/11/2026 14:05' (00:00 if you really mean midnight)")
    if match := _TIME_ONLY.match(value):
        hour, minute, second = _clock(match, name)
        moment = _local_moment(datetime.combine(today, time(hour, minute, second)), tz, name)
        day = "today"
        if moment > now:
            day = "yesterday"
            moment = _local_moment(datetime.combine(today - timedelta(days=1), time(hour, minute, second)),
                                   tz, name)
        shown = moment.astimezone(tz)
        return Reading(moment.astimezone(UTC),
                       f"{name} {shown:%H:%M} read as {day}, {shown:%a %d %b %Y %H:%M} ({tz.key})")
    if (match := _DAY_WORD_TIME.match(value)) and match["day"] in DAY_WORDS:
        day = today - timedelta(days=DAY_WORDS[match["day"]])
        return _checked(datetime.combine(day, time(*_clock(match, name))), now=now, tz=tz, name=name)
    if match := _DAY_FIRST_TIME.match(value):
        day = parse_date(f"{match['d']}/{match['m']}/{match['y']}", name)
        return _checked(datetime.combine(day, time(*_clock(match, name))), now=now, tz=tz, name=name)
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        raise InputError(f"{name} is not a time: use {_WHEN_EXAMPLES}") from None
    return _checked(moment, now=now, tz=tz, name=name)


def _checked(moment: datetime, *, now: datetime, tz: ZoneInfo, name: str) -> Reading:
    if moment.tzinfo is None:
        moment = _local_moment(moment, tz, name)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{name} is outside the calendar (years 1 to 9999)") from None
    if moment < now - timedelta(days=MAX_DURATION_DAYS):
        raise InputError(f"{name} is too far back: more than {MAX_DURATION_DAYS} days ago")
    return Reading(moment)


def parse_when(text: str, *, now: datetime, tz: ZoneInfo, name: str = "the time") -> datetime:
    """`read_when`'s moment, for callers with nothing to say back."""
    return read_when(text, now=now, tz=tz, name=name).moment
