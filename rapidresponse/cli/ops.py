"""Running the system: init, the daemon, its status."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rapidresponse.cli.common import Env, console, emit_json, json_option, pass_env, when, zone_note


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
    from rich.markup import escape

    from rapidresponse.review import status as compute

    app = env.app
    report = compute(app.store, app.clock.now(), app.settings, app.contacts_state.summary())
    if as_json:
        emit_json(report)
    else:
        tz = env.tz()
        out = console()
        beat = report["daemon"]
        if beat["mode"] == "once" and beat["alive"]:
            out.print(f"Scheduler: [green]run --once[/] passes (last {beat['age_seconds']}s ago)")
        elif beat["stuck"]:
            out.print(f"Daemon: [bold red]stuck[/] (pid {beat['pid']} is alive but its last pass finished"
                      f" {beat['last_pass_seconds']}s ago) — check its output and the SMS provider")
        elif beat["alive"]:
            out.print(f"Daemon: [green]alive[/] (pid {beat['pid']}, heartbeat {beat['age_seconds']}s ago)")
        elif beat["age_seconds"] is None:
            out.print("Daemon: [bold red]never ran[/] — start 'rapidresponse run'")
        else:
            out.print(f"Daemon: [bold red]not running[/] (last heartbeat {beat['age_seconds']}s ago)"
                      " — start 'rapidresponse run'")
        out.print(f"Open cases: {report['open_cases']}   messages in queue: {report['messages_in_queue']}")
        shown = 20  # the first ones are the next to escalate; --json has them all
        for row in report["waiting_for_ack"][:shown]:
            esc = " (escalated)" if row["escalated"] else ""
            out.print(f"  waiting: {row['case_ref']} {row['step_key']} ({row['role']}){esc},"
                      f" next escalation {when(row['ack_deadline'], tz)}")
        if len(report["waiting_for_ack"]) > shown:
            out.print(f"  … and {len(report['waiting_for_ack']) - shown} more waiting (see --json)")
        for row in report["undecided_necessity"]:
            out.print(f"  [bold red]SOCIETAL NECESSITY UNDECIDED[/]: {row['case_ref']} since"
                      f" {when(row['registered_at'], tz)} — rapidresponse decide {row['case_ref']}"
                      " --societal-necessity yes|suspected|no --reason ...")
        for row in report["exhausted"]:
            out.print(f"  [bold red]NOBODY ANSWERED[/]: {row['case_ref']} {row['step_key']}"
                      f" ({row['role']}) since {when(row['finished_at'], tz)}")
        for row in report["overdue"]:
            out.print(f"  [bold red]OVERDUE[/]: {row['case_ref']} {row['step_key']} ({row['role']})"
                      f" was due {when(row['due_at'], tz)}")
        if report["erasure_pending"]:
            out.print("  [bold red]ERASURE PENDING[/]: purged data still has old copies in the"
                      " database's write-ahead log while another process reads it (a backup, a"
                      " sqlite3 shell); the daemon finishes it once that process has gone")
        if report["contacts_problem"]:
            out.print(f"  [bold red]CONTACTS FILE BROKEN[/]: {escape(report['contacts_problem'])}")
        for row in report["not_getting_through"]:
            out.print(f"  [bold red]NOT GETTING THROUGH[/]: {row['case_ref'] or 'test'} to {row['role']}"
                      f" ({escape(row['contact'])}) after {row['attempts']} attempts:"
                      f" {escape(row['error_text'] or '')} — still retrying; phone them")
        for row in report["stand_down_failed"]:
            out.print(f"  [bold red]STAND-DOWN NOT DELIVERED[/]: {row['case_ref']} to {row['role']}"
                      f" ({escape(row['contact'])}, {row['to_number']}) — phone them")
        if report["past_retention"]:
            refs = report["past_retention"]
            out.print(f"  [yellow]past retention[/]: {len(refs)} closed case(s) kept more than"
                      f" {report['retention_days']} days after their last follow-up"
                      f" ({', '.join(refs[:5])}{' …' if len(refs) > 5 else ''}) — rapidresponse purge --due")
        for row in report["followups_overdue"]:
            out.print(f"  [bold red]FOLLOW-UP OVERDUE[/]: {row['case_ref']} {row['kind']} was due"
                      f" {when(row['due_at'], tz)} — then: rapidresponse followup {row['case_ref']} ...")
        for row in report["failed_messages"]:
            out.print(f"  [red]failed[/]: {row['case_ref']} {row['failed']} message(s) to {row['role']}")
        out.print(zone_note(tz))
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
