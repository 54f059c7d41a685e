"""The coordinator's commands: check and test contacts, check playbooks."""

from __future__ import annotations

import sys

import click

from rapidresponse.cli.common import (
    TEXT,
    Env,
    console,
    echo_findings,
    echo_hanging,
    echo_wrapped,
    emit_json,
    glued,
    json_option,
    pass_env,
    styled,
    table_lines,
)
from rapidresponse.timeutil import format_duration


@click.group()
def contacts() -> None:
    """Check, list and test the contacts file."""


@contacts.command("check")
@json_option
@pass_env
def contacts_check(env: Env, as_json: bool) -> None:
    """Check contacts.toml: it parses and serves every role a playbook uses. Exit 2 listing
    every problem (what runs meanwhile is the last good copy)."""
    from rapidresponse.checks import Finding, check_contacts
    from rapidresponse.contactsource import loadable_playbooks

    app = env.app
    app.contacts_reported = True
    state = app.contacts_state
    findings = [Finding("error", problem) for problem in state.problems]
    if state.parsed is not None:  # roles missing are among state.problems (running cases too)
        findings += [f for f in check_contacts(state.parsed, loadable_playbooks(app.home))
                     if not f.text.endswith("no entry in the contacts file")]
    errors = [f for f in findings if f.level == "error"]
    roles = len(state.parsed.roles) if state.parsed else 0
    if as_json:
        emit_json({"ok": not errors, "roles": roles, "roles_used": len(state.used),
                   "in_force": state.using, "findings": [f.__dict__ for f in findings]})
    else:
        lines = [f"{f.level}: {f.text}" for f in findings]
        if state.broken:
            lines.append(f"contacts.toml is not in force: {state.fallback_sentence()}.")
        elif not errors:
            lines.append(f"Contacts OK: {roles} roles serve every role the playbooks use"
                         f" ({len(state.used)}).")
        echo_findings(lines, failed=bool(errors) or state.broken)
    if errors:
        sys.exit(2)


@contacts.command("list")
@click.option("--at", "at", type=TEXT, metavar="WHEN",
              help="Who is on duty at that moment (local time, e.g. '2026-12-24 22:00'); default now.")
@json_option
@pass_env
def contacts_list(env: Env, at: str | None, as_json: bool) -> None:
    """Show every role and contact, and who is on duty, in the order they would be texted."""

    from rapidresponse.timeutil import parse_when

    app = env.app
    book = app.contacts
    now = app.clock.now()
    moment = parse_when(at, now=now, tz=book.timezone, name="--at") if at else now
    roles = []
    for role in book.roles.values():
        on_duty = book.on_duty(role.key, moment)
        rotation = role.rotation
        roles.append({
            "role": role.key, "title": role.title, "on_duty": [c.name for c in on_duty],
            "rotation": None if rotation is None else {
                "members": list(rotation.members), "shift": format_duration(rotation.shift),
                "start": rotation.start.isoformat(sep=" ", timespec="minutes")},
            "contacts": [{"name": c.name, "phone": c.phone, "hours": c.hours_text,
                          "on_duty": c in on_duty} for c in role.contacts],
        })
    if as_json:
        emit_json({"at": moment.astimezone(book.timezone).isoformat(), "roles": roles})
        return
    echo_wrapped([f"On duty at {moment.astimezone(book.timezone):%a %d %b %Y %H:%M}"
                  f" ({book.timezone.key}), in the order a chain texts them:"])
    rows = []
    for r in roles:
        order = {name: i for i, name in enumerate(r["on_duty"], start=1)}
        listed = sorted(r["contacts"], key=lambda c: order.get(c["name"], len(order) + 1))
        rows += [[r["role"], str(order[c["name"]]) if c["name"] in order else "off duty", c["phone"],
                  c["name"] + _hours(c["hours"])] for c in listed]
    # Roles, order and numbers whole; the contact (and its hours) comes last, wrapping under itself.
    click.echo("\n".join(table_lines(["role", "order", "phone", "contact (hours when not always)"], rows)))


def _hours(hours: str | None) -> str:
    """A contact's on-duty windows, each glued so that a line never splits a window."""
    if not hours:
        return ""
    return ", hours " + ", ".join(glued(window) for window in hours.split(", "))


@contacts.command("roster")
@click.argument("role", type=TEXT)
@click.option("--weeks", type=click.IntRange(1, 104), default=4, show_default=True,
              help="How many weeks ahead.")
@click.option("--from", "from_", type=TEXT, metavar="WHEN",
              help="Start at that moment (local time, e.g. '2026-12-21 08:00'); default now.")
@click.option("--ics", "ics", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the shifts as an iCalendar file a calendar can subscribe to.")
@json_option
@pass_env
def contacts_roster(env: Env, role: str, weeks: int, from_: str | None, ics: str | None,
                    as_json: bool) -> None:
    """Show the coming shifts of ROLE (rotation and overrides): who is texted first, when."""
    from datetime import timedelta
    from pathlib import Path

    from rapidresponse.rosters import shifts
    from rapidresponse.timeutil import parse_when

    app = env.app
    book = app.contacts
    role_obj = book.role(role)
    tz = book.timezone
    now = app.clock.now()
    since = parse_when(from_, now=now, tz=tz, name="--from") if from_ else now
    found = shifts(role_obj.key, role_obj.contacts, role_obj.rotation, book.overrides, tz,
                   since, since + timedelta(weeks=weeks))
    if ics:
        from rapidresponse.ics import write_ics

        write_ics(Path(ics), role_obj, found, now)
    if as_json:
        emit_json({"role": role_obj.key, "shifts": [
            {"contact": s.contact, "start": s.start.astimezone(tz).isoformat(),
             "end": s.end.astimezone(tz).isoformat(), "override": s.override} for s in found]})
        return
    if role_obj.rotation is None:
        click.echo(f"{role_obj.key} has no rotation: its contacts are texted in file order"
                   + (" (but for the overrides below)." if found else "."))
    for s in found:
        mark = "  (override)" if s.override else ""
        click.echo(f"{s.start.astimezone(tz):%a %d %b %Y %H:%M} – {s.end.astimezone(tz):%a %d %b %Y %H:%M}"
                   f"  {s.contact}{mark}")
    if ics:
        click.echo(f"Wrote {len(found)} shifts to {ics}.", err=True)


@contacts.command("test")
@click.argument("role", type=TEXT)
@click.option("--call", "call", is_flag=True,
              help="Place a test call (press 1 to prove key presses arrive) instead of a text.")
@json_option
@pass_env
def contacts_test(env: Env, role: str, call: bool, as_json: bool) -> None:
    """Send one test text (or place one test call) to each contact of ROLE and report each result."""
    from rich.markup import escape

    from rapidresponse import engine
    from rapidresponse.checks import TEST_CALL, TEST_MESSAGE
    from rapidresponse.dispatch import dispatch
    from rapidresponse.receipts import call_state

    app = env.app
    role_obj = app.contacts.role(role)
    transport = app.transport()
    ctx = app.context()
    body = (TEST_CALL if call else TEST_MESSAGE).format(role_title=role_obj.title)
    reached = [c for c in role_obj.contacts if c.voice or not call]
    for c in role_obj.contacts:
        if c not in reached and not as_json:
            console().print(f"{escape(c.name)} {c.phone}: not called (voice = false)")
    if not reached:
        return
    with app.store.transaction():
        ids = [
            engine.queue_message(ctx, case_id=None, step_id=None, kind="test", role=role,
                                 contact=c, body=body, channel="voice" if call else "sms")
            for c in reached
        ]
    dispatch(ctx, transport, app.settings, wait_for_retries=30.0)
    marks = ",".join("?" * len(ids))
    rows = app.store.all(
        f"SELECT contact, to_number, state, sid, error_code, error_text, attempts"
        f" FROM messages WHERE id IN ({marks}) ORDER BY id",
        ids,
    )
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            failed = r["error_text"] and r["state"] != "sent"
            extra = escape(f" ({r['error_code']}: {r['error_text']})") if failed else ""
            said = f"call {call_state(r['state'])}" if call else r["state"]
            console().print(f"{escape(r['contact'])} {r['to_number']}: {styled(r['state'], said)}{extra}")
    if any(r["state"] not in ("sent", "delivered") for r in rows):
        sys.exit(1)


@click.group()
def playbooks() -> None:
    """Check and list playbooks."""


@playbooks.command("check")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@json_option
@pass_env
def playbooks_check(env: Env, files: tuple[str, ...], as_json: bool) -> None:
    """Check FILEs (default: every playbook and the contacts file) and list every problem.

    Each problem is one line, `file:line: step 'id': message`, by file and line, all on one
    stream (stderr if any is an error). Exit 2 when any is an error; warnings (a text longer
    than one SMS segment, an hour nobody serves…) don't fail.
    """
    from pathlib import Path

    from rapidresponse.checks import check_files
    from rapidresponse.config import CONTACTS_NAME, PLAYBOOKS_DIR

    home = env.home
    paths = sorted((home / PLAYBOOKS_DIR).glob("*.toml"))
    result = check_files(home / CONTACTS_NAME, paths, [Path(f) for f in files] if files else None)
    if as_json:
        emit_json({"ok": not result.errors, "files": result.files,
                   "problems": [p.as_dict() for p in result.problems]})
    else:
        summary = (f"{len(result.files)} file(s) checked: {len(result.errors)} error(s),"
                   f" {len(result.warnings)} warning(s).")
        echo_findings([*map(str, result.problems), summary], failed=bool(result.errors))
    if result.errors:
        sys.exit(2)


@playbooks.command("list")
@json_option
@pass_env
def playbooks_list(env: Env, as_json: bool) -> None:
    """List the playbooks and their steps."""
    found = env.app.playbooks()
    rows = [
        {"name": p.name, "title": p.title, "hash": p.digest,
         "steps": [{"id": s.id, "at": str(s.at), "from": s.base, "role": s.role,
                    "when": list(s.when), "ack_within": str(s.ack_within) if s.ack_within else None,
                    "escalate_to": s.escalate_to} for s in p.all_steps()]}
        for p in found
    ]
    if as_json:
        emit_json(rows)
        return
    for p, playbook in zip(rows, found, strict=True):
        echo_hanging(f"{p['name']}: ", p["title"])
        for s in playbook.all_steps():
            cond = f" when {'+'.join(s.when)}" if s.when else ""
            ack = f", ack within {format_duration(s.ack_within)}" if s.ack_within else ""
            then = f", then {s.escalate_to}" if s.escalate_to else ""
            echo_hanging(f"  {format_duration(s.at):>5} after {s.base:<10} ",
                         f"{s.id} → {s.role}{cond}{ack}{then}")


@playbooks.command("show")
@click.argument("name", type=TEXT)
@json_option
@pass_env
def playbooks_show(env: Env, name: str, as_json: bool) -> None:
    """Show playbook NAME as a timeline: who each step texts now, and the text they get.

    The text is rendered for an example case registered now, with its encoding and SMS
    segments (more than one is a warning in 'playbooks check').
    """
    from rapidresponse.preview import timeline

    app = env.app
    playbook = app.playbook(name)
    lines = timeline(playbook, app.contacts, app.clock.now())
    if as_json:
        emit_json({"name": playbook.name, "title": playbook.title, "hash": playbook.digest,
                   "steps": [line.as_dict() for line in lines]})
        return
    echo_hanging(f"{playbook.name}: ", playbook.title)
    headings = {"main": None, "stand-down": "When the case is resolved:",
                "after_resolved": "After the return:"}
    shown: set[str] = set()
    for line in lines:
        heading = headings[line.phase]
        if heading and line.phase not in shown:
            click.echo(f"\n{heading}")
        shown.add(line.phase)
        cond = f"  when {' + '.join(line.when)}" if line.when else ""
        click.echo()
        echo_hanging(f"  {line.offset:<28} ", f"{line.id} → {line.role}{cond}")
        if line.phase != "stand-down":
            how = "one at a time" if line.notify == "first" else "all at once"
            echo_hanging(f"    texts now ({how}): ", ", ".join(line.recipients) or "nobody")
            if line.off_duty:
                echo_hanging("    off duty now: ", ", ".join(line.off_duty))
        else:
            click.echo("    texts: everyone who got an alert for the case")
        echo_hanging("    text: ", f"“{line.text}”")
        echo_hanging("    ", line.length.describe())
        if line.call == "at once":
            click.echo("    calls at once too (press 1 to acknowledge, 2 to repeat)")
        elif line.call:
            echo_hanging("    ", f"no ACK within {line.call}: calls the same contact (press 1 to"
                               " acknowledge, 2 to repeat)")
        if line.spoken:
            echo_hanging("    says: ", f"“{line.spoken}”")
        if line.ack_within:
            then = (f"then {line.escalate_to} ({', '.join(line.escalation_recipients)})"
                    if line.escalate_to else "then nobody (exhausted)")
            again = f"; the whole chain {line.repeat + 1} times" if line.repeat else ""
            after = " after the call" if line.call and line.call != "at once" else ""
            echo_hanging("    ", f"waits {line.ack_within}{after} for ACK per contact, {then}{again}")
        elif line.phase != "stand-down":
            click.echo("    no acknowledgement asked")


@playbooks.command("simulate")
@click.argument("name", type=TEXT)
@click.option("--flags", "flags", type=TEXT, help="Case flags, comma-separated (default: the case that"
              " fires most steps); the simplest case the assessment rules allow with them is used.")
@click.option("--ack", "acks", type=TEXT, multiple=True, metavar="ROLE@OFFSET",
              help="ROLE answers at OFFSET after the start, e.g. youth_prosecutor@20m. Repeatable.")
@click.option("--fail", "fail", type=TEXT, multiple=True, metavar="CONTACT",
              help="Texts to this contact (its name in contacts.toml) fail. Repeatable.")
@click.option("--resolve", "resolve", type=TEXT, metavar="OUTCOME@OFFSET",
              help="The minor is found (or the report withdrawn) at OFFSET, e.g. found@30m.")
@click.option("--start", "start", type=TEXT, metavar="WHEN",
              help="When the case is registered (local time; default now): rosters and on-duty"
              " hours of that moment apply.")
@json_option
@pass_env
def playbooks_simulate(env: Env, name: str, flags: str | None, acks: tuple[str, ...],
                       fail: tuple[str, ...], resolve: str | None, start: str | None,
                       as_json: bool) -> None:
    """Replay playbook NAME on the real engine with a fake clock; nothing is sent.

    Shows who gets which text at which minute, who is skipped off duty, time-outs, the next
    contact, escalation, exhaustion, the stand-down and the after-return steps.
    """
    from rapidresponse.engine import OUTCOMES
    from rapidresponse.simulate import parse_action, simulate, start_moment

    app = env.app
    book = app.contacts
    playbook = app.playbook(name)
    tz = book.timezone
    result = simulate(
        playbook, book,
        start=start_moment(start, app.clock.now(), tz),
        flags=[f.strip() for f in flags.split(",") if f.strip()] if flags is not None else None,
        acks=[parse_action(a, "ack", book.roles) for a in acks],
        fail=fail,
        resolve=parse_action(resolve, "resolve", OUTCOMES) if resolve else None,
    )
    if as_json:
        emit_json(result.as_dict(tz))
        return
    echo_hanging("", f"Simulation of {result.playbook} from {result.start.astimezone(tz):%a %d %b %Y %H:%M}"
                     f" ({tz.key}); flags: {', '.join(result.flags) or 'none'}; grade {result.grade}."
                     " Nothing is sent.")
    for event in result.events:
        clock = event.at.astimezone(tz).strftime("%a %H:%M")
        head = f"{'+' + format_duration(event.offset):>9}  {clock}  "
        echo_hanging(head, event.text)
        if event.body:
            echo_hanging(" " * len(head), f"“{event.body}”")
    echo_hanging("Steps at the end: ", ", ".join(glued(f"{s['step']} {s['state']}") for s in result.steps))


COMMANDS = [contacts, playbooks]
