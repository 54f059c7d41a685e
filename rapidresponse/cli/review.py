"""The supervisor's commands: a case's timeline, the report, the HTML export."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from rapidresponse.cli.common import TEXT, Env, console, emit_json, json_option, pass_env, styled, when
from rapidresponse.timeutil import format_duration


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return format_duration(timedelta(seconds=seconds))


@click.command("timeline")
@click.argument("case", type=TEXT)
@json_option
@pass_env
def timeline_cmd(env: Env, case: str, as_json: bool) -> None:
    """The story of CASE in order: judgements, texts and their delivery, acknowledgements and how
    fast, escalations, decisions, resolution, follow-ups. Times are local, with the time elapsed
    since the minor went missing and since registration."""
    from rapidresponse.timeline import timeline

    story = timeline(env.app.store, case)
    if as_json:
        emit_json(story.as_dict())
        return
    _render_timeline(story, env.tz())


def _render_timeline(story: Any, tz: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    out.print(f"[bold]{story.case}[/]  {styled(story.state)}  missing since {when(story.missing_since, tz)},"
              f" registered {when(story.registered_at, tz)}")
    table = Table(title_justify="left")
    for column, justify in (("time", "left"), ("since missing", "right"), ("since reg.", "right"),
                            ("what", "left"), ("state", "left"), ("delay", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for e in story.entries:
        state = ""
        if e.state:
            state = styled(e.state)
            if e.state_at and e.state_at != e.at:
                state += f" {when(e.state_at, tz)[-8:]}"
        what = escape(e.what)
        if e.contact and e.kind.startswith("message."):
            what += f" ({escape(e.contact)})"
        if e.kind == "step.exhausted":
            what = f"[bold red]{what}[/]"
        table.add_row(when(e.at, tz), f"+{_elapsed(e.since_missing_seconds)}",
                      f"+{_elapsed(e.since_registration_seconds)}", what, state,
                      _elapsed(e.delay_seconds) if e.delay_seconds is not None else "")
    out.print(table)


COMMANDS = [timeline_cmd]
