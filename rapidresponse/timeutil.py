"""Parsing and formatting of times and durations, UTC inside, local at the edges."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rapidresponse.errors import InputError

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_AGO = re.compile(r"^(?P<span>[0-9dhms]+)\s+ago$")


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '1h30m', '2d' → timedelta; raises ValueError on anything else."""
    text = text.strip().replace(" ", "")
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"'{text}' is not a duration (use s, m, h, d: e.g. 90s, 15m, 1h30m)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


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


def parse_when(text: str, *, now: datetime, tz: ZoneInfo) -> datetime:
    """A moment as a duty officer types it: 'now', '3h ago', '2026-11-28 14:05' (local), ISO."""
    value = text.strip()
    if value.lower() == "now":
        return now
    ago = _AGO.match(value.lower())
    if ago:
        try:
            return now - parse_duration(ago.group("span"))
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"'{text}' is not a time: use 'now', '3h ago', 'YYYY-MM-DD HH:MM' or ISO 8601"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")
