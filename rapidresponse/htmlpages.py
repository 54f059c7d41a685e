"""Self-contained HTML pages for the case-review meeting: one case's export, the report.

Rendered by Jinja2 with autoescaping on, from package templates. One file, no script, no
network: styles and the chart (inline SVG) are in the page, and it prints on A4. The pages are
built from the timeline and the figures, which hold no identifying data of the minor; nothing
reads the `persons` or `notes` tables here.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rapidresponse import __version__
from rapidresponse.errors import OperationalFailure
from rapidresponse.timeutil import format_duration, from_iso


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("rapidresponse", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    return env


def _filters(tz: ZoneInfo) -> dict[str, Any]:
    def local(value: str | None) -> str:
        return from_iso(value).astimezone(tz).strftime("%a %d %b %Y %H:%M:%S") if value else "—"

    def clock(value: str | None) -> str:
        return from_iso(value).astimezone(tz).strftime("%d %b %H:%M:%S") if value else "—"

    def elapsed(seconds: float | None) -> str:
        return "—" if seconds is None else "+" + format_duration(timedelta(seconds=seconds))

    def duration(seconds: float | None) -> str:
        return "" if seconds is None else format_duration(timedelta(seconds=seconds))

    def num(value: Any) -> str:
        return "—" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)

    return {"local": local, "clock": clock, "elapsed": elapsed, "duration": duration, "num": num}


def render(template: str, tz: ZoneInfo, now: datetime, **values: Any) -> str:
    env = _environment()
    env.filters.update(_filters(tz))
    return str(env.get_template(template).render(
        version=__version__, generated=now.astimezone(tz).strftime("%d %b %Y %H:%M"), tz=tz.key,
        **values))


def case_page(story: Any, tz: ZoneInfo, now: datetime) -> str:
    from rapidresponse.chart import build

    return render("case.html.j2", tz, now, story=story, chart=build(story))


def report_page(figures: dict[str, Any], policy: dict[str, Any], tz: ZoneInfo, now: datetime) -> str:
    return render("report.html.j2", tz, now, r=figures, policy=policy)


def write_page(path: Path, html: str) -> None:
    """Written 0600: a case's page is for the meeting, not for every user of the machine."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html)
    except OSError as exc:
        raise OperationalFailure(f"cannot write the page: {exc.strerror}") from None
