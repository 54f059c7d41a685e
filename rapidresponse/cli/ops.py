"""Running the system: init, the daemon, its status."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from rapidresponse.cli.common import (
    Env,
    emit_json,
    glued,
    json_option,
    pass_env,
    terminal_width,
    when,
    wrap_words,
    zone_note,
)


@click.command()
@pass_env
def init(env: Env) -> None:
    """Create the home folder, database, contacts and playbooks; keep whatever exists."""
    from rapidresponse.app import init_home

    for action, path in init_home(env.home):
        click.echo(f"{action:>7}  {path}")
    click.echo("Edit contacts.toml with your region's numbers, then: rapidresponse contacts check")


@click.command()
@click.option("--once", is_flag=True, help="One pass (fire due steps, time-outs, sends), then exit.")
@pass_env
def run(env: Env, once: bool) -> None:
    """Run the daemon: fire steps on time, escalate, retry, until SIGINT/SIGTERM."""
    from rapidresponse.daemon import Daemon

    app = env.app
    daemon = Daemon(
        home=app.home, store=app.store, settings=app.settings, transport=app.transport(),
        clock=app.clock,
    )
    if once:
        if not daemon.once():
            sys.exit(1)
    else:
        daemon.run_forever()


@click.command()
@json_option
@pass_env
def status(env: Env, as_json: bool) -> None:
    """Is the daemon alive, and does anything need a human? Exit 1 when something does."""
    from rapidresponse.review import status as compute

    app = env.app
    report = compute(app.store, app.clock.now(), app.settings, app.contacts_state.summary())
    if as_json:
        emit_json(report)
    else:
        tz = env.tz()
        click.echo(_daemon_line(report["daemon"]))
        click.echo(f"Open cases: {report['open_cases']}   messages in queue: {report['messages_in_queue']}")
        for label, colour, text in _attention(report, tz):
            _echo_flagged(label, colour, text)
        click.echo(zone_note(tz))
    sys.exit(1 if report["needs_attention"] else 0)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists (e.g. an hourly rotation).")
@json_option
@pass_env
def backup(env: Env, file: Path, force: bool, as_json: bool) -> None:
    """Copy the database to FILE while the daemon runs, and verify the copy (0600)."""
    from rapidresponse.backup import backup as make_backup

    done = make_backup(env.app.store, file, force=force)
    if as_json:
        emit_json({"file": str(done.path), "bytes": done.size, "cases": done.cases,
                   "events": done.events, "head": done.head, "verified": True})
    else:
        cases = f"{done.cases} case" + ("" if done.cases == 1 else "s")
        click.echo(f"Backup written and verified: {done.path} ({done.size // 1024} KiB, {cases},"
                   f" audit log intact: {done.events} events, head {done.head}).")


COMMANDS = [init, run, status, backup]


#: How many waiting steps the text shows: the first ones are the next to escalate; --json has all.
WAITING_SHOWN = 20


def _daemon_line(beat: dict[str, Any]) -> str:
    if beat["mode"] == "once" and beat["alive"]:
        return f"Scheduler: {click.style('run --once', fg='green')} passes (last {beat['age_seconds']}s ago)"
    if beat["stuck"]:
        return (f"Daemon: {click.style('stuck', fg='red', bold=True)} (pid {beat['pid']} is alive but its"
                f" last pass finished {beat['last_pass_seconds']}s ago) — check its output and the SMS"
                " provider")
    if beat["alive"]:
        return (f"Daemon: {click.style('alive', fg='green')} (pid {beat['pid']}, heartbeat"
                f" {beat['age_seconds']}s ago)")
    if beat["age_seconds"] is None:
        return f"Daemon: {click.style('never ran', fg='red', bold=True)} — start 'rapidresponse run'"
    return (f"Daemon: {click.style('not running', fg='red', bold=True)} (last heartbeat"
            f" {beat['age_seconds']}s ago) — start 'rapidresponse run'")


def _attention(report: dict[str, Any], tz: Any) -> list[tuple[str, str | None, str]]:
    """What needs a human, most urgent first: a person not reached comes before a step that is
    merely waiting, so the line that matters is never scrolled away under twenty waiting ones."""
    red = "red"

    def at(stored: str) -> str:
        return glued(when(stored, tz))

    items: list[tuple[str, str | None, str]] = []
    items += [("STAND-DOWN NOT DELIVERED", red, f"{r['case_ref']} to {r['role']} ({r['contact']},"
               f" {r['to_number']}) — phone them") for r in report["stand_down_failed"]]
    items += [("NOBODY ANSWERED", red, f"{r['case_ref']} {r['step_key']} ({r['role']}) since"
               f" {at(r['finished_at'])}") for r in report["exhausted"]]
    items += [("NOT GETTING THROUGH", red, f"{r['case_ref'] or 'test'} to {r['role']} ({r['contact']})"
               f" after {r['attempts']} attempts: {r['error_text'] or ''} — still retrying; phone them")
              for r in report["not_getting_through"]]
    if report["contacts_problem"]:
        items.append(("CONTACTS FILE BROKEN", red, report["contacts_problem"]))
    items += [("SOCIETAL NECESSITY UNDECIDED", red, f"{r['case_ref']} since {at(r['registered_at'])}"
               f" — rapidresponse decide {r['case_ref']} --societal-necessity yes|suspected|no"
               " --reason ...") for r in report["undecided_necessity"]]
    items += [("OVERDUE", red, f"{r['case_ref']} {r['step_key']} ({r['role']}) was due"
               f" {at(r['due_at'])}") for r in report["overdue"]]
    items += [("FOLLOW-UP OVERDUE", red, f"{r['case_ref']} {r['kind']} was due {at(r['due_at'])}"
               f" — then: rapidresponse followup {r['case_ref']} ...") for r in report["followups_overdue"]]
    items += [("failed", red, f"{r['case_ref']} {r['failed']} message(s) to {r['role']}")
              for r in report["failed_messages"]]
    if report["erasure_pending"]:
        items.append(("ERASURE PENDING", red, "purged data still has old copies in the database's"
                      " write-ahead log while another process reads it (a backup, a sqlite3 shell); the"
                      " daemon finishes it once that process has gone"))
    waiting = report["waiting_for_ack"]
    items += [("waiting", None, f"{r['case_ref']} {r['step_key']} ({r['role']})"
               f"{' (escalated)' if r['escalated'] else ''}, next escalation {at(r['ack_deadline'])}")
              for r in waiting[:WAITING_SHOWN]]
    if len(waiting) > WAITING_SHOWN:
        items.append(("…", None, f"and {len(waiting) - WAITING_SHOWN} more waiting (see --json)"))
    if report["past_retention"]:
        refs = report["past_retention"]
        items.append(("past retention", "yellow", f"{len(refs)} closed case(s) kept more than"
                      f" {report['retention_days']} days after their last follow-up"
                      f" ({', '.join(refs[:5])}{' …' if len(refs) > 5 else ''}) — rapidresponse purge --due"))
    return items


def _echo_flagged(label: str, colour: str | None, text: str) -> None:
    """`  LABEL: text`, wrapped between words under itself; the label keeps its colour."""
    lines = wrap_words(f"  {label}: {text}", terminal_width(), " " * 6)
    if colour:
        lines[0] = "  " + click.style(label, fg=colour, bold=colour == "red") + lines[0][2 + len(label):]
    click.echo("\n".join(lines))
