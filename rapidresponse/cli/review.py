"""The supervisor's commands: a case's timeline, the report, the HTML export."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from rapidresponse.cli.common import (
    CASE,
    OUTPUT_FILE,
    TEXT,
    Env,
    console,
    emit_json,
    hanging,
    json_option,
    pass_env,
    when,
    zone_note,
)
from rapidresponse.timeutil import format_duration, from_iso


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return format_duration(timedelta(seconds=seconds))


@click.command("timeline")
@click.argument("case", type=CASE)
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
    """The case's story on one screen: one line per event (local time, elapsed since missing
    and since registration, what happened, its state and delay); only the description wraps,
    indented under itself, and the day is said once when it changes."""
    for line in hanging(f"{story.case}  {story.state}  ", f"missing since {when(story.missing_since, tz)},"
                        f" registered {when(story.registered_at, tz)}"):
        click.echo(line)
    missing = [f"+{_elapsed(e.since_missing_seconds)}" for e in story.entries]
    registered = [f"+{_elapsed(e.since_registration_seconds)}" for e in story.entries]
    wide_m = max([len("missing"), *map(len, missing)])
    wide_r = max([len("reg."), *map(len, registered)])
    click.echo(f"{'time':>8}  {'missing':>{wide_m}}  {'reg.':>{wide_r}}  what")
    day = None
    for e, since_missing, since_registered in zip(story.entries, missing, registered, strict=True):
        moment = from_iso(e.at).astimezone(tz)
        if moment.date() != day:
            day = moment.date()
            click.echo(when(e.at, tz)[: -len(" 00:00:00")])
        head = f"{moment:%H:%M:%S}  {since_missing:>{wide_m}}  {since_registered:>{wide_r}}  "
        lines = hanging(head, _story_text(e, tz))
        alarm = e.kind == "step.exhausted" or e.state in ("failed", "undelivered")
        for line in lines:
            click.echo(click.style(line, fg="red", bold=True) if alarm else line)
    click.echo(zone_note(tz))


def _story_text(e: Any, tz: Any) -> str:
    """What happened, with who it reached, its state (and when that was known) and its delay."""
    text = e.what
    if e.contact and e.kind.startswith("message."):
        text += f" ({e.contact})"
    if e.state:
        text += f": {e.state}"
        if e.state_at and e.state_at != e.at:
            text += f" at {from_iso(e.state_at).astimezone(tz):%H:%M:%S}"
    if e.delay_seconds is not None:
        text += f"; {_elapsed(e.delay_seconds)} after the alert"
    return text


@click.command("report")
@click.option("--since", type=TEXT, default="30d", show_default=True, metavar="WHEN",
              help="Cases registered from: '30d' (ago), a date (local midnight) or a time.")
@click.option("--until", type=TEXT, metavar="WHEN", help="Up to (not including); default: now.")
@click.option("--policy", is_flag=True, help="Monitoring counts by month (action 4.3), nothing per case.")
@click.option("--csv", "as_csv", is_flag=True,
              help="CSV output (one figure per row; --policy: one month per row).")
@click.option("--html", "html_file", type=OUTPUT_FILE, metavar="FILE",
              help="Write the report and the monthly figures as one self-contained HTML page.")
@json_option
@pass_env
def report_cmd(env: Env, since: str, until: str | None, policy: bool, as_csv: bool, html_file: Path | None,
               as_json: bool) -> None:
    """Figures for supervisors from the log, each by one written rule (--policy: by month)."""
    from rapidresponse import figures
    from rapidresponse.errors import InputError

    if sum((as_csv, as_json, html_file is not None)) > 1:
        raise InputError("choose one of --json, --csv and --html")
    app = env.app
    now, tz = app.clock.now(), env.tz()
    period = figures.Period(
        figures.period_bound(since, now=now, tz=tz, name="--since"),
        figures.period_bound(until, now=now, tz=tz, name="--until") if until else now,
    )
    if period.since >= period.until:
        raise InputError("--since must be before --until")
    if html_file is not None:
        from rapidresponse.htmlpages import report_page, write_page

        page = report_page(figures.report(app.store, period), figures.policy(app.store, period, tz), tz, now)
        write_page(html_file, page)
        click.echo(f"Report written to {html_file}.")
        return
    if policy:
        result = figures.policy(app.store, period, tz)
        if as_json:
            emit_json(result)
        elif as_csv:
            _echo_csv([["month", *result["columns"]],
                       *[[m["month"], *(m[c] for c in result["columns"])] for m in result["months"]]])
        else:
            _render_policy(result, tz)
        return
    result = figures.report(app.store, period)
    if as_json:
        emit_json(result)
    elif as_csv:
        _echo_csv([["section", "role", "contact", "figure", "value"], *report_rows(result)])
    else:
        _render_report(result, tz)


def report_rows(result: dict[str, Any]) -> list[list[Any]]:
    """The report flattened: one figure per row, its unit in the figure's name."""
    rows: list[list[Any]] = [["period", "", "", key, value] for key, value in result["period"].items()]
    for key, value in result["cases"].items():
        if isinstance(value, dict):
            rows.extend(["cases", "", "", f"{key}.{k}", v] for k, v in value.items())
        else:
            rows.append(["cases", "", "", key, value])
    rows.extend(["first_alert", "", "", k, _blank(v)] for k, v in result["first_alert"].items())
    rows.extend(["steps", "", "", k, v] for k, v in result["steps"].items())
    for role in result["roles"]:
        rows.extend(["roles", role["role"], "", k, _blank(v)] for k, v in role.items()
                    if k not in ("role", "by_channel"))
        for via, counts in role["by_channel"].items():
            rows.extend(["roles", role["role"], "", f"by_channel.{via}.{k}", _blank(v)]
                        for k, v in counts.items())
    for c in result["contacts"]:
        rows.extend(["contacts", c["role"], c["contact"], k, c[k]]
                    for k in ("texts", "failed", "undelivered"))
    for kind, counts in result["followups"].items():
        rows.extend(["followups", "", "", f"{kind}.{k}", v] for k, v in counts.items())
    return rows


def _blank(value: Any) -> Any:
    return "" if value is None else value


def _echo_csv(rows: list[list[Any]]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    click.echo(buffer.getvalue(), nl=False)


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def _render_report(r: dict[str, Any], tz: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    c = r["cases"]
    out.print(f"Cases registered {when(r['period']['since'], tz)} – {when(r['period']['until'], tz)}:"
              f" [bold]{c['registered']}[/]; open longer than 24 h: {c['open_longer_than_24h']};"
              f" repeat episodes: {c['repeat_episodes']}")
    for label, key in (("judgement", "by_judgement"), ("grade", "by_grade"), ("outcome", "by_outcome"),
                       ("societal necessity", "by_societal_necessity")):
        out.print(f"  by {label}: " + (", ".join(f"{k} {v}" for k, v in c[key].items()) or "—"))
    fa = r["first_alert"]
    out.print(f"Registration to first alert (min): median {_num(fa['median_minutes'])},"
              f" p90 {_num(fa['p90_minutes'])}, worst {_num(fa['worst_minutes'])}")
    out.print(f"Steps fired: {r['steps']['fired']}, more than a minute late: {r['steps']['fired_late']},"
              f" skipped (nobody to inform on the case): {r['steps']['skipped']}")
    roles = Table(title="By role (the role that acknowledged)", title_justify="left")
    for column in ("role", "acks", "median (min)", "p90 (min)", "worst (min)", "by channel: acks",
                   "escalations", "exhausted"):
        roles.add_column(column, justify="left" if column in ("role", "by channel: acks") else "right")
    for x in r["roles"]:
        channels = ", ".join(f"{via} {c['acknowledgements']}" for via, c in x["by_channel"].items())
        roles.add_row(x["role"], str(x["acknowledgements"]), _num(x["median_minutes"]),
                      _num(x["p90_minutes"]), _num(x["worst_minutes"]), channels or "—",
                      str(x["escalations"]),
                      f"[bold red]{x['exhausted']}[/]" if x["exhausted"] else "0")
    out.print(roles)
    contacts = Table(title="Texts by contact", title_justify="left")
    for column in ("role", "contact", "texts", "failed", "undelivered"):
        contacts.add_column(column, justify="left" if column in ("role", "contact") else "right")
    for x in r["contacts"]:
        contacts.add_row(x["role"], escape(x["contact"] or ""), str(x["texts"]), str(x["failed"]),
                         str(x["undelivered"]))
    out.print(contacts)
    follow = Table(title="Follow-ups", title_justify="left")
    for column in ("follow-up", "due", "done", "not done", "overdue"):
        follow.add_column(column, justify="left" if column == "follow-up" else "right")
    for kind, counts in r["followups"].items():
        follow.add_row(kind.replace("_", " "), str(counts["due"]), str(counts["done"]),
                       str(counts["not_done"]),
                       f"[bold red]{counts['overdue']}[/]" if counts["overdue"] else "0")
    out.print(follow)


def _render_policy(r: dict[str, Any], tz: Any) -> None:
    from rich.table import Table

    table = Table(title=f"Monitoring figures (action 4.3), {when(r['period']['since'], tz)} –"
                  f" {when(r['period']['until'], tz)}", title_justify="left")
    table.add_column("month")
    for column in r["columns"]:
        table.add_column(column.replace("_", " "), justify="right")
    for m in r["months"]:
        table.add_row(m["month"], *(str(m[c]) for c in r["columns"]))
    console().print(table)


@click.command("export")
@click.argument("case", type=CASE)
@click.option("--html", "html_file", type=OUTPUT_FILE, metavar="FILE",
              required=True, help="The page to write (self-contained, prints on A4).")
@pass_env
def export_cmd(env: Env, case: str, html_file: Path) -> None:
    """Write CASE's review page: its timeline chart and every event, nothing identifying the minor."""
    from rapidresponse.htmlpages import case_page, write_page
    from rapidresponse.timeline import timeline

    story = timeline(env.app.store, case)
    write_page(html_file, case_page(story, env.tz(), env.app.clock.now()))
    click.echo(f"{story.case} written to {html_file}.")


COMMANDS = [timeline_cmd, report_cmd, export_cmd]
