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
    echo_wrapped,
    emit_json,
    glued,
    hanging,
    json_option,
    pass_env,
    table_lines,
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
    """Plain lines and aligned tables: at 80 columns every role, contact and figure shows whole."""
    c = r["cases"]
    lines = [f"Cases registered {when(r['period']['since'], tz)} – {when(r['period']['until'], tz)}:"
             f" {click.style(str(c['registered']), bold=True)}; open longer than 24 h:"
             f" {c['open_longer_than_24h']}; repeat episodes: {c['repeat_episodes']}"]
    for label, key in (("judgement", "by_judgement"), ("grade", "by_grade"), ("outcome", "by_outcome"),
                       ("societal necessity", "by_societal_necessity")):
        lines.append(f"  by {label}: " + (", ".join(f"{k} {v}" for k, v in c[key].items()) or "—"))
    fa = r["first_alert"]
    lines.append(f"Registration to first alert (min): median {_num(fa['median_minutes'])},"
                 f" p90 {_num(fa['p90_minutes'])}, worst {_num(fa['worst_minutes'])}")
    lines.append(f"Steps fired: {r['steps']['fired']}, more than a minute late: {r['steps']['fired_late']},"
                 f" skipped (nobody to inform on the case): {r['steps']['skipped']}")
    lines.append(click.style("\nBy role", bold=True)
                 + " (the role that acknowledged; median, p90, worst: minutes from its alert to the"
                 " acknowledgement; channels: acknowledgements by channel)")
    echo_wrapped(lines)
    click.echo("\n".join(table_lines(
        ["role", "acks", "median", "p90", "worst", "escalated", "exhausted", "channels"],
        [[x["role"], str(x["acknowledgements"]), _num(x["median_minutes"]), _num(x["p90_minutes"]),
          _num(x["worst_minutes"]), str(x["escalations"]), _alarm(x["exhausted"]),
          ", ".join(glued(f"{via} {n['acknowledgements']}") for via, n in x["by_channel"].items()) or "—"]
         for x in r["roles"]],
        right=range(1, 7))))
    click.echo(click.style("\nTexts by contact", bold=True))
    click.echo("\n".join(table_lines(
        ["role", "texts", "failed", "undelivered", "contact"],
        [[x["role"], str(x["texts"]), str(x["failed"]), str(x["undelivered"]), x["contact"] or "—"]
         for x in r["contacts"]],
        right=range(1, 4))))
    click.echo(click.style("\nFollow-ups", bold=True))
    click.echo("\n".join(table_lines(
        ["follow-up", "due", "done", "not done", "overdue"],
        [[kind.replace("_", " "), str(n["due"]), str(n["done"]), str(n["not_done"]), _alarm(n["overdue"])]
         for kind, n in r["followups"].items()],
        right=range(1, 5))))


def _alarm(count: int) -> str:
    """A count someone must act on stands out when it is not zero."""
    return click.style(str(count), fg="red", bold=True) if count else "0"


#: The policy table's headers: short, so a month fits on one line of 80 columns; POLICY_LEGEND
#: says what they stand for. A column without one shows its own name.
POLICY_HEADERS = {
    "registered": "reg", "worrying": "worry", "alarming": "alarm", "suspected_victims": "victim",
    "societal_necessity_yes": "SN yes", "societal_necessity_suspected": "SN susp",
    "societal_necessity_no": "SN no", "referred_reference_centre": "to RC",
    "referred_care_centre": "to CC", "repeat_episodes": "repeat",
}
POLICY_LEGEND = ("reg: cases registered; worry: worrying situations; alarm: alarming disappearances;"
                 " victim: suspected victims; SN yes/susp/no: societal necessity decided yes, suspected"
                 " or no; to RC, to CC: first referrals to the reference centre, the care centre;"
                 " repeat: repeat episodes.")


def _render_policy(r: dict[str, Any], tz: Any) -> None:
    echo_wrapped([click.style("Monitoring figures (action 4.3)", bold=True)
                  + f", {when(r['period']['since'], tz)} – {when(r['period']['until'], tz)}"])
    columns = r["columns"]
    click.echo("\n".join(table_lines(
        ["month", *(POLICY_HEADERS.get(c, c) for c in columns)],
        [[m["month"], *(str(m[c]) for c in columns)] for m in r["months"]],
        right=range(1, len(columns) + 1))))
    echo_wrapped([POLICY_LEGEND])


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
