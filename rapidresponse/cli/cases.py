"""The duty officer's commands: register, ack, resolve, note, cases, show; and the log."""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime, time, timedelta
from typing import Any

import click

from rapidresponse import review
from rapidresponse.assessment import NECESSITY_AT_REGISTRATION, NECESSITY_WORDS, PLACEMENT_WORDS
from rapidresponse.cli.common import (
    CASE,
    TEXT,
    Env,
    VocabChoice,
    aligned,
    case_contact_numbers,
    case_contact_options,
    complete_indicators,
    complete_outcomes,
    complete_roles,
    confirmed,
    console,
    echo_wrapped,
    emit_json,
    fit,
    json_option,
    local_detail,
    paint,
    pass_env,
    table_lines,
    terminal_width,
    when,
    zone_note,
)
from rapidresponse.details import detail_summary
from rapidresponse.errors import InputError, RapidResponseError
from rapidresponse.timeutil import parse_date, read_when, to_iso

#: How long a short command keeps retrying a rate-limited or failing send before leaving it
#: queued for the daemon.
CLI_RETRY_WINDOW = 30.0


def _dispatch_now(env: Env) -> tuple[bool, str | None]:
    """Send what is due at once, so the first alerts never wait for the daemon."""
    from rapidresponse import engine
    from rapidresponse.dispatch import run_pass

    app = env.app
    state = app.contacts_state
    if not state.usable:  # the steps stay due; the daemon fires them once contacts.toml is fixed
        return False, f"no usable contacts file ({state.summary()})"
    try:
        transport = app.transport()
    except RapidResponseError as exc:
        # The steps still fire, so their alerts wait in the outbox as rows for whoever can send.
        engine.activate_due(app.context())
        return False, str(exc)
    run_pass(app.context(), transport, app.settings, wait_for_retries=CLI_RETRY_WINDOW)
    return True, None


def _warn_if_no_daemon(env: Env) -> None:
    from rapidresponse.daemon import heartbeat

    app = env.app
    beat = heartbeat(app.store, app.clock.now(), app.settings)
    if not beat.alive:
        click.echo(
            "Warning: no rapidresponse daemon is running (no fresh heartbeat): later steps and"
            " escalations will not fire until 'rapidresponse run' is started.",
            err=True,
        )


def _sent_rows(env: Env, case_id: int) -> list[dict[str, Any]]:
    return [
        {"role": m["role"], "contact": m["contact"], "to": m["to_number"], "state": m["state"],
         "kind": m["kind"], "channel": m["channel"], "error": m["error_text"]}
        for m in review.messages_of(env.app.store, case_id)
    ]


def victim_options(fn: Any) -> Any:
    """The officer's own judgement, shared by register and reassess."""
    return click.option(
        "--suspected-victim/--no-suspected-victim", default=None,
        help="The officer suspects exploitation, or judges there is none (lowering a suspicion"
             " the signals raised needs --reason).")(fn)


def _necessity_option(fn: Any) -> Any:
    return click.option(
        "--societal-necessity", type=VocabChoice(NECESSITY_WORDS),
        help="Your decision on societal necessity (needs --reason); yes/suspected ask the"
             " mandated agency for contact.")(fn)


def assessment_fields(view: dict[str, Any]) -> dict[str, Any]:
    """The two judgements as register, reassess and show report them."""
    keys = ("alarming", "worrying", "suspected_victim", "societal_necessity", "grade",
            "police_criteria", "red_flags", "risk_factors", "flags", "reasons", "indicators")
    return {k: view[k] for k in keys if k in view}


def judgement_line(view: dict[str, Any]) -> str:
    """One line a tired officer reads at 3 a.m.: the two judgements and the decision."""

    def strong(text: str) -> str:
        return click.style(text, fg="red", bold=True)

    alarming = (f"{strong('ALARMING DISAPPEARANCE')} (onrustwekkende verdwijning)" if view["alarming"]
                else "not alarming")
    worrying = (f"{strong('WORRYING SITUATION')} (verontrustende situatie)" if view["worrying"]
                else "not (yet) worrying")
    return f"{alarming}; {worrying}; societal necessity: {view['societal_necessity']}"


@click.command()
@click.option("--profile", type=TEXT, metavar="ALIAS",
              help="Take alias, birth date, name, placement, indicators and case contacts from"
                   " this pre-registered profile (see 'rapidresponse profiles').")
@click.option("--alias", type=TEXT,
              help="The name the team uses for the minor (kept private). Required without --profile.")
@click.option("--birth-date", type=TEXT,
              help="Day first: 02/03/2011, or 2011-03-02. Required without --profile.")
@click.option("--missing-since", type=TEXT, required=True,
              help="Local time: 'gisteren 22:00', 'today 14u05', '28/11/2026 14:05', '14:05',"
              " '3h ago', or ISO 8601 with an offset.")
@click.option("--last-seen", type=TEXT, required=True, help="Where the minor was last seen (kept private).")
@click.option("--name", "full_name", type=TEXT, help="Full name (optional, kept private).")
@click.option("--placement", type=VocabChoice(PLACEMENT_WORDS), help="Default: the profile's, else home.")
@click.option("--indicator", "indicators", type=TEXT, multiple=True, metavar="NAME",
              shell_complete=complete_indicators,
              help="A police criterion, red flag or risk factor; repeat. See 'rapidresponse indicators'.")
@victim_options
@_necessity_option
@case_contact_options
@click.option("--reason", type=TEXT,
              help="Why you decided on societal necessity or lowered a suspicion (kept with the"
                   " case; the log records that there is one).")
@click.option("--new-episode", is_flag=True,
              help="Register although the minor has an open case (a truly new episode).")
@click.option("--playbook", type=TEXT, help="Run this playbook instead of the one the assessment picks.")
@json_option
@pass_env
def register(env: Env, profile: str | None, alias: str | None, birth_date: str | None,
             missing_since: str, last_seen: str, full_name: str | None, placement: str | None,
             indicators: tuple[str, ...], suspected_victim: bool | None,
             societal_necessity: str | None, reason: str | None, new_episode: bool,
             playbook: str | None, as_json: bool, **phones: str | None) -> None:
    """Register a missing minor, assess the situation and send the first alerts."""
    from rapidresponse import engine

    app = env.app
    tz = app.timezone
    numbers = case_contact_numbers(phones)
    if profile is not None:
        from rapidresponse.profiles import for_episode

        if alias is not None or birth_date is not None:
            raise InputError("--profile gives the alias and birth date: leave out --alias and --birth-date")
        known = for_episode(app.store, profile)
        person = engine.Person(alias=known.alias, birth_date=known.birth_date, last_seen=last_seen,
                               full_name=full_name or known.full_name, profile_id=known.profile_id)
        placement = placement or known.placement
        indicators = (*known.indicators, *indicators)
        numbers = {**known.contacts, **numbers}
    elif alias is None or birth_date is None:
        raise InputError("give --alias and --birth-date, or --profile ALIAS of a pre-registered minor")
    else:
        person = engine.Person(alias=alias, birth_date=parse_date(birth_date, "--birth-date"),
                               last_seen=last_seen, full_name=full_name)
    missing = read_when(missing_since, now=app.clock.now(), tz=tz, name="--missing-since")
    chosen = app.playbook(playbook) if playbook else None
    registration = engine.register(
        app.context(), person=person, missing_since=missing.moment, playbook=chosen,
        playbooks_for=app.playbook_for, placement=placement or "home", indicators=indicators,
        suspected_victim=suspected_victim, societal_necessity=societal_necessity or NECESSITY_AT_REGISTRATION,
        reason=reason, new_episode=new_episode, case_contacts=numbers,
    )
    ok, transport_error = _dispatch_now(env)
    case = engine.get_case(app.store, registration.ref)
    steps = review.step_view(app.store, case, app.clock.now(), app.contacts_state.contacts)
    sent = _sent_rows(env, registration.case_id)
    result = {
        "case": registration.ref,
        "missing_since": to_iso(missing.moment),
        "missing_since_read_as": missing.note,
        **assessment_fields({**registration.assessment.as_dict(),
                             **review.case_summary(case)}),
        "age": registration.assessment.age,
        "playbook": registration.playbook.name,
        "ack_code": registration.ack_code,
        "earlier_episodes": registration.earlier_episodes,
        "episodes_in_30_days": len(registration.recent_episodes) + 1,
        "steps": [{"id": s["id"], "role": s["role"], "due_at": s["due_at"],
                   "state": s["state"]} for s in steps],
        "sent": sent,
    }
    if as_json:
        emit_json(result)
    else:
        _render_registration(result, tz)
    _warn_if_no_daemon(env)
    if not ok:
        click.echo(
            f"Error: the case is registered but no alert was sent: {transport_error}."
            " The alerts stay queued; fix this and run 'rapidresponse run'.",
            err=True,
        )
        sys.exit(1)
    waiting = [m for m in sent if m["state"] == "queued" and m["error"]]
    if waiting:
        click.echo(
            f"Error: the case is registered but {len(waiting)} alert(s) could not be sent yet"
            f" ({waiting[0]['error']}). They stay queued and are retried; phone"
            f" {', '.join(sorted({m['role'] for m in waiting}))} now.",
            err=True,
        )
        sys.exit(1)


def _render_registration(result: dict[str, Any], tz: Any) -> None:
    """Plain lines like `show`: wrapped between words under their own indent, identifiers whole
    (a step id, a role, a number); the one free-text column (a contact's name) comes last."""
    from rapidresponse import engine

    def bold(text: str, colour: str | None = None) -> str:
        return click.style(text, fg=colour, bold=True)

    lines = [f"Note: {result['missing_since_read_as']}."] if result["missing_since_read_as"] else []
    lines.append(f"{bold(result['case'])} registered, grade {paint(result['grade'])}:"
                 f" {judgement_line(result)}")
    lines.append(f"Acknowledgement code: {bold(result['ack_code'])}   playbook: {result['playbook']}")
    lines += reason_lines(result["reasons"])
    if result["worrying"] and result["societal_necessity"] == "undecided":
        lines.append(f"{bold('Societal necessity is undecided', 'yellow')} (the coordinator is asked):"
                     f" decide with rapidresponse decide {result['case']} --societal-necessity"
                     " yes|suspected|no --reason \"...\"")
    earlier = result["earlier_episodes"]
    if earlier:
        lines.append(f"{bold('Earlier episodes of this minor:', 'yellow')} {', '.join(earlier)}")
        if result["episodes_in_30_days"] >= engine.MULTI_AGENCY_EPISODES:
            lines.append(bold(f"{result['episodes_in_30_days']} episodes in 30 days: repeat-runaway"
                              " added; a multi-agency meeting (casusoverleg) is planned for the"
                              " coordinator.", "red"))
    lines.append(bold("\nPlanned steps"))
    lines += table_lines(["step", "role", "due", "state"],
                         [[s["id"], s["role"], when(s["due_at"], tz, seconds=False), s["state"]]
                          for s in result["steps"]])
    if result["sent"]:
        lines.append(bold("\nAlerts"))
        lines += table_lines(["role", "to", "how", "state", "contact"],
                             [[m["role"], m["to"], "call" if m["channel"] == "voice" else "text",
                               _said_state(m), m["contact"]] for m in result["sent"]])
    lines.append(zone_note(tz))
    echo_wrapped(lines)


def reason_lines(reasons: list[str]) -> list[str]:
    """The assessment's reasons as bullets, the same in `register`, `reassess` and `show`."""
    return [f"  • {reason}" for reason in reasons]


@click.command()
@click.argument("case", type=CASE)
@click.option("--reason", type=TEXT, required=True,
              help="Why you re-assess (kept with the case; the log records that there is one).")
@click.option("--indicator", "indicators", type=TEXT, multiple=True, metavar="NAME",
              shell_complete=complete_indicators,
              help="A new indicator; repeat.")
@victim_options
@click.option("--keep-playbook", is_flag=True, help="Stay on the current playbook even if now worrying.")
@json_option
@pass_env
def reassess(env: Env, case: str, reason: str, indicators: tuple[str, ...],
             suspected_victim: bool | None, keep_playbook: bool, as_json: bool) -> None:
    """Re-assess CASE with what is known now; the response follows, and the log says why."""
    from rapidresponse import engine
    from rapidresponse.reassessment import reassess as run_reassessment

    app = env.app
    result = run_reassessment(
        app.context(), case, reason=reason, playbook_for=app.playbook_for, indicators=indicators,
        suspected_victim=suspected_victim, keep_playbook=keep_playbook,
    )
    ok, transport_error = _dispatch_now(env)
    case_row = engine.get_case(app.store, result.ref)
    payload = {"case": result.ref, "before": result.before,
               **assessment_fields({**result.after.as_dict(), **review.case_summary(case_row)}),
               "playbook_changed": result.playbook_changed, "cancelled": result.cancelled,
               "planned": result.planned}
    if as_json:
        emit_json(payload)
    else:
        after = result.after
        grade = f"grade {result.before['grade']} → {paint(after.grade)}"
        lines = [f"{click.style(result.ref, bold=True)} re-assessed: {grade}, {judgement_line(payload)}",
                 *reason_lines(after.reasons)]
        if result.playbook_changed:
            lines.append(f"Moved to playbook {result.playbook_changed}")
        echo_wrapped(lines)
    _report_changes(env, result.cancelled, result.planned, as_json, ok, transport_error,
                    "the re-assessment")


def _report_changes(env: Env, cancelled: list[str], planned: list[dict[str, Any]], as_json: bool,
                    ok: bool, transport_error: str | None, what: str) -> None:
    """What a re-assessment or decision changed in the response; exit 1 if alerts wait."""
    if not as_json:
        out = console()
        if cancelled:
            out.print(f"Cancelled: {', '.join(cancelled)}")
        for step in planned:
            out.print(f"Planned: {step['id']} ({step['role']}) at {when(step['due_at'], env.tz())}")
    _warn_if_no_daemon(env)
    if not ok:
        click.echo(f"Error: {what} is saved but alerts are queued: {transport_error}.", err=True)
        sys.exit(1)


@click.command()
@click.argument("case", type=CASE)
@click.option("--societal-necessity", type=VocabChoice(NECESSITY_WORDS),
              required=True, help="yes or suspected ask the mandated agency for contact; no does not.")
@click.option("--reason", type=TEXT, required=True,
              help="Why (kept with the case; the log records who decided, when, and that there is one).")
@json_option
@pass_env
def decide(env: Env, case: str, societal_necessity: str, reason: str, as_json: bool) -> None:
    """Decide on societal necessity for CASE; the response follows from this moment."""
    from rapidresponse.decisions import decide as record

    app = env.app
    result = record(app.context(), case, societal_necessity, reason)
    ok, transport_error = _dispatch_now(env)
    payload = {"case": result.ref, "societal_necessity": result.after, "before": result.before,
               "cancelled": result.cancelled, "planned": result.planned}
    if as_json:
        emit_json(payload)
    else:
        console().print(f"[bold]{result.ref}[/]: societal necessity {result.before} → {result.after},"
                        f" decided by {escape_text(app.operator)}.")
    _report_changes(env, result.cancelled, result.planned, as_json, ok, transport_error,
                    "the decision")


def escape_text(text: str) -> str:
    from rich.markup import escape

    return str(escape(text))


@click.command()
@click.argument("case", type=CASE)
@click.option("--role", type=TEXT, required=True, shell_complete=complete_roles,
              help="The role that acknowledges (e.g. youth_prosecutor).")
@click.option("--contact", type=TEXT, metavar="NAME",
              help="Who of the role confirmed (as in contacts.toml), when you acknowledge for them.")
@click.option("--note", type=TEXT, help="Optional note (kept with the case, not in the log).")
@json_option
@pass_env
def ack(env: Env, case: str, role: str, contact: str | None, note: str | None, as_json: bool) -> None:
    """Record that ROLE acknowledged the alerts of CASE: its escalation stops."""
    from rich.markup import escape

    from rapidresponse import engine

    role_obj = env.app.contacts.role(role)
    role = role_obj.key
    if contact is not None:
        contact = engine.contact_of(role_obj, contact)
    steps = engine.acknowledge(env.app.context(), case, role, via="cli", contact=contact, note=note)
    ref = case
    if as_json:
        emit_json({"case": ref, "role": role, "contact": contact, "acknowledged": steps})
    else:
        who = f" ({escape(contact)})" if contact else ""
        console().print(f"{ref}: {role}{who} acknowledged {', '.join(steps)}.")


@click.command()
@click.argument("case", type=CASE)
@click.option("--outcome", type=TEXT, required=True, shell_complete=complete_outcomes,
              help="found, returned, withdrawn or other (or in Dutch: gevonden, teruggekeerd, ingetrokken).")
@click.option("--note", type=TEXT, help="Optional note (kept with the case, not in the log).")
@click.option("--safe-and-well", type=TEXT, metavar="yes|no|unknown",
              help="Found or returned: is she safe and well? Asked on a terminal; else unknown.")
@click.option("--sexual-violence-ruled-out", type=TEXT, metavar="yes|no|unknown",
              help="Found or returned: can sexual violence in the last 7 days be ruled out? Asked on"
                   " a terminal; else unknown (and the care centre is alerted).")
@json_option
@pass_env
def resolve(env: Env, case: str, outcome: str, note: str | None, safe_and_well: str | None,
            sexual_violence_ruled_out: str | None, as_json: bool) -> None:
    """Close CASE: cancel pending steps, stand everyone down, start the after-return steps."""
    from rapidresponse import engine, followup

    app = env.app
    outcome = engine.OUTCOME_WORDS.pick(outcome)
    if outcome in followup.RETURNED_OUTCOMES and sys.stdin.isatty() and not as_json:
        if safe_and_well is None:
            safe_and_well = click.prompt("Is she safe and well? (yes/no/unknown)", default="unknown",
                                         err=True)
        if sexual_violence_ruled_out is None:
            sexual_violence_ruled_out = click.prompt(
                "Can sexual violence in the last 7 days be ruled out? (yes/no/unknown)",
                default="unknown", err=True)
    returned = followup.resolve(app.context(), case, outcome, note, safe_and_well=safe_and_well,
                                sexual_violence_ruled_out=sexual_violence_ruled_out)
    result = returned.resolution
    ok, transport_error = _dispatch_now(env)
    case_row = engine.get_case(app.store, result.ref)
    sent = [m for m in _sent_rows(env, case_row["id"]) if m["kind"] == "stand_down"]
    payload = {"case": result.ref, "outcome": outcome, "cancelled": result.cancelled,
               "stand_down": sent, "after_resolved": result.after,
               "safe_and_well": returned.safe_and_well,
               "sexual_violence_ruled_out": returned.sexual_violence_ruled_out,
               "followups": returned.followups}
    if as_json:
        emit_json(payload)
    else:
        out = console()
        tz = env.tz()
        out.print(f"[bold]{result.ref}[/] resolved ({outcome}).")
        if result.cancelled:
            out.print(f"Cancelled: {', '.join(result.cancelled)}")
        out.print(f"Stand-down sent to {sum(m['state'] == 'sent' for m in sent)} of {len(sent)}"
                  " contacts who were alerted.")
        for step in result.after:
            out.print(f"Next: {step['id']} ({step['role']}) at {when(step['due_at'], tz)}")
        for item in returned.followups:
            state = "open, due " + when(item["due_at"], tz) if item["state"] == "open" else item["state"]
            out.print(f"Follow-up: {item['kind']} ({state})")
        if returned.followups:
            out.print(f"Record each: rapidresponse followup {result.ref} --return-interview done ...")
    if not ok:
        click.echo(f"Error: the stand-down is queued but not sent: {transport_error}.", err=True)
        sys.exit(1)


@click.command()
@click.argument("case", type=CASE)
@click.argument("text", type=TEXT)
@pass_env
def note(env: Env, case: str, text: str) -> None:
    """Add a note to CASE (kept with the case; the log records that a note was made)."""
    from rapidresponse import engine

    engine.add_note(env.app.context(), case, text)
    click.echo(f"Note added to {case}.")


#: The width of a reference: a column that holds one never gets narrower.
REF_WIDTH = len("RR-2026-0001")
#: The narrowest alias column worth showing ("Zorba…").
MIN_ALIAS_WIDTH = 6
#: A screen's worth: beyond it the most urgent cases would scroll out of sight.
DEFAULT_LIMIT = 20


@click.command("cases")
@click.option("--limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True,
              help="Show at most this many cases, most urgent first.")
@click.option("--all", "all_cases", is_flag=True, help="Every case, resolved ones too, without a limit.")
@json_option
@pass_env
def cases_cmd(env: Env, limit: int, all_cases: bool, as_json: bool) -> None:
    """List open cases, most urgent first (with --all, every case)."""
    rows, total = review.list_cases(env.app.store, all_cases, None if all_cases else limit)
    if as_json:
        emit_json([{k: v for k, v in r.items() if k != "alias"} for r in rows])
        return
    if not rows:
        click.echo("No open cases.")
        return
    # Plain aligned text, not a rich table: ten thousand rows stay instant, and the reference is
    # never the column that gives way on a narrow terminal (the alias is, and says so with …).
    tz = env.tz()
    columns = ["case", "grade", "missing since", "waiting", "exhausted", "age"]
    if all_cases:
        columns.append("state")
    table = [[r["case"], r["grade"], when(r["missing_since"], tz, seconds=False), str(r["waiting"]),
              str(r["exhausted"]), str(r["age"]), *([r["state"]] if all_cases else [])] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(columns)]
    room = terminal_width() - sum(widths) - 2 * len(widths)
    # Too narrow for an alias worth reading (dates of another year carry theirs): the alias goes,
    # never the width limit; `show CASE` still has it.
    with_alias = room >= MIN_ALIAS_WIDTH
    aliases = [fit(r["alias"] or "—", room) if with_alias else "" for r in rows]
    click.echo(aligned([*columns, "alias"] if with_alias else columns, widths))
    for row, r, alias in zip(table, rows, aliases, strict=True):
        line = aligned([*row, alias] if with_alias else row, widths)
        if r["exhausted"]:
            line = click.style(line, fg="red", bold=True)
        elif r["grade"] == "HIGH":
            line = click.style(line, bold=True)
        click.echo(line)
    if total > len(rows):
        click.echo(f"{len(rows)} of {total} open cases shown, most urgent first; --limit N or --all"
                   " for more.")
    click.echo(zone_note(tz))


@click.command()
@click.argument("case", type=CASE)
@json_option
@pass_env
def show(env: Env, case: str, as_json: bool) -> None:
    """Show CASE: details, assessment, and the live step timeline."""
    app = env.app
    from rapidresponse.contactsource import load as load_contacts

    book = load_contacts(app.home, app.store, for_display=True).contacts  # who is next, by name
    view = review.show_case(app.store, case, app.clock.now(), book)
    if as_json:
        emit_json(view)
        return
    _render_case(view, env.tz())


def _render_case(view: dict[str, Any], tz: Any) -> None:
    """Plain lines, not rich tables: nothing is cut or folded mid-word on a narrow terminal (the
    terminal wraps a long line whole), and one case shows at once, however long its log."""
    def red(text: str) -> str:
        return click.style(text, fg="red", bold=True)

    lines = [f"{click.style(view['case'], bold=True)}  {paint(view['state'])}  grade {paint(view['grade'])}"
             f"  playbook {view['playbook']}  ack code {view['ack_code']}",
             judgement_line(view)]
    if view["necessity_decided_by"]:
        lines.append(f"Societal necessity decided by {view['necessity_decided_by']}"
                     f" {when(view['necessity_decided_at'], tz)}")
    person = view["person"]
    if person:
        lines.append(f"Minor: {person['alias']}" + (f" ({person['name']})" if person["name"] else "")
                     + f", born {person['birth_date']}, age {view['age']}, placement {view['placement']}")
        lines.append(f"Last seen: {person['last_seen']}")
    named = {kind: number for kind, number in view["case_contacts"].items() if number}
    if named:
        lines.append("Around her: " + ", ".join(f"{kind} {number}" for kind, number in named.items()))
    if view["profile"]:
        lines.append(f"Profile: {view['profile']} (rapidresponse profiles show ALIAS)")
    lines.append(f"Missing since {when(view['missing_since'], tz)}; registered"
                 f" {when(view['registered_at'], tz)} by {view['registered_by']}")
    if view["outcome"]:
        lines.append(f"Resolved {when(view['resolved_at'], tz)}: {view['outcome']}")
    lines += reason_lines(view["reasons"])
    lines.append(click.style("\nSteps", bold=True))
    for step in view["steps"]:
        by = f" by {step['finished_by']}" if step["finished_by"] else ""
        if step["skipped_because"]:
            by = f": {step['skipped_because']}"
        lines.append(f"  {step['id']}  {step['role']}  due {when(step['due_at'], tz)}"
                     f"  {paint(step['state'])}{by}")
        for m in step["messages"]:
            duplicate = " (possible duplicate)" if m["possible_duplicate"] else ""
            state = paint(m["state"], _said_state(m))
            lines.append(f"      {when(m['at'], tz)} {m['contact']}"
                         f"{' call' if m.get('channel') == 'voice' else ''} {state}{duplicate}")
        if step["next"]:
            overdue = red("OVERDUE") + " " if step["overdue"] else ""
            lines.append(f"      {overdue}next: {step['next']['what']} {when(step['next']['at'], tz)}")
            if step["next"].get("then"):
                lines.append(f"      then: {step['next']['then']['what']}")
    if view["followups"]:
        lines.append(click.style("\nAfter the return", bold=True))
        for f in view["followups"]:
            state = red("OVERDUE") if f["overdue"] else paint(f["state"])
            done = f", {when(f['answered_at'], tz)} by {f['answered_by']}" if f["answered_by"] else ""
            lines.append(f"  {f['kind']}: {state} (due {when(f['due_at'], tz)}{done})")
    if view["notes"]:
        lines.append(click.style("\nNotes", bold=True))
        lines += [f"  {when(n['at'], tz)} {n['author']} ({n['kind']}): {n['text']}" for n in view["notes"]]
    lines.append(click.style("\nLog", bold=True))
    lines += [event_line(e, tz) for e in view["events"]]
    lines.append(zone_note(tz))
    echo_wrapped(lines)


def _said_state(message: dict[str, Any]) -> str:
    """A message's state as said of it: a call is placed or answered, not sent or delivered."""
    from rapidresponse.receipts import call_state

    return call_state(message["state"]) if message.get("channel") == "voice" else message["state"]


def event_line(event: dict[str, Any], tz: Any, *, with_case: bool = False) -> str:
    """One audit event as a line, the same in `show` and `log`: the reference whole, times local,
    the detail readable (hashes and bodies are left to --json and --csv)."""
    case = f"  {event['case'] or '—':<{REF_WIDTH}}" if with_case else ""
    return (f"  {event['seq']:>4}  {when(event['at'], tz)}{case}  {event['actor']}  {event['kind']}"
            f"  {detail_summary(local_detail(event['detail'], tz))}").rstrip()


@click.command("log")
@click.argument("case", type=CASE, required=False)
@click.option("--verify", is_flag=True,
              help="Recompute the hash chain, compare it with anchors, cross-check the cases table"
              " and the report's copy of the log; exit 1 if anything differs.")
@click.option("--anchor", type=TEXT, is_flag=False, flag_value="", default=None, metavar="[HASH]",
              help="Alone: print the head (AT SEQ HASH) to keep elsewhere. With --verify: a head"
              " kept earlier (HASH or SEQ:HASH) that the log must still contain.")
@click.option("--anchors", "anchors_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="With --verify: check against every anchor of this file (the daemon's anchors.txt).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output.")
@json_option
@pass_env
def log_cmd(env: Env, case: str | None, verify: bool, anchor: str | None, anchors_file: str | None,
            as_csv: bool, as_json: bool) -> None:
    """List the audit log (of one CASE), print its head, or verify that it is intact."""
    from pathlib import Path

    from rapidresponse import audit
    from rapidresponse.anchors import anchor_line, read_anchors

    store = env.app.store
    if anchor == "" and not verify:
        current = audit.head(store)
        if as_json:
            emit_json({**current.as_dict(), "at": to_iso(env.app.clock.now())})
        else:
            click.echo(anchor_line(env.app.clock.now(), current))
        return
    if (anchor is not None or anchors_file) and not verify:
        raise InputError("--anchors FILE checks the log only with --verify")
    if verify:
        given = []
        if anchor:
            try:
                given.append(audit.parse_anchor(anchor))
            except ValueError as exc:
                raise InputError(f"--anchor: {exc}") from None
        elif anchor == "":
            raise InputError("--anchor with --verify needs the HASH (or SEQ:HASH) to check")
        if anchors_file:
            given.extend(read_anchors(Path(anchors_file)))
        result = audit.verify(store, given)
        if as_json:
            emit_json(result.as_dict())
        elif result.ok:
            checked = f", {result.anchors_checked} anchor(s) match" if result.anchors_checked else ""
            click.echo(f"Audit log intact: {result.count} events, head {result.head}{checked};"
                       f" the cases table and the report's copy ({result.report_rows} rows) match it.")
        elif result.bad_seq is not None:
            click.echo(f"Audit log BROKEN at event {result.bad_seq}: {result.problem}.", err=True)
        else:
            click.echo(f"Audit log BROKEN: {result.problem}.", err=True)
        sys.exit(0 if result.ok else 1)
    ref = None
    if case:
        from rapidresponse import engine

        ref = engine.get_case(store, case)["ref"]
    events = list(audit.events(store, ref))
    if as_json:
        emit_json(events)
    elif as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["seq", "at", "case", "actor", "kind", "detail", "prev_hash", "hash"])
        for e in events:
            writer.writerow([e["seq"], e["at"], e["case"] or "", e["actor"], e["kind"],
                             review.detail_text(e["detail"]), e["prev_hash"], e["hash"]])
        click.echo(buffer.getvalue(), nl=False)
    else:
        # Plain lines, not a table: a long log streams at once, and a reference is never folded.
        tz = env.tz()
        echo_wrapped([event_line(e, tz, with_case=case is None) for e in events]
                     or ["No events."])
        click.echo(zone_note(tz))


@click.command()
@click.argument("case", type=CASE, required=False)
@click.option("--resolved-before", type=TEXT, metavar="WHEN",
              help="Every case resolved before this: a duration ago (90d) or a date (DD/MM/YYYY).")
@click.option("--due", is_flag=True,
              help="Every case past the retention period (config.toml [retention], default 90 days"
                   " after its last follow-up).")
@click.option("--unused-profiles", is_flag=True,
              help="Also profiles nobody used or changed since then, and no kept case points to.")
@click.option("--force", is_flag=True, help="Purge cases whose follow-ups are still open too.")
@click.option("--dry-run", is_flag=True, help="Say what would be dropped; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_env
def purge(env: Env, case: str | None, resolved_before: str | None, due: bool, unused_profiles: bool,
          force: bool, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Erase the minor's data from a resolved CASE (or from all resolved long enough ago).

    The case stays as a tombstone: its reference, steps, messages and log remain.
    """
    from rapidresponse import retention

    if sum((bool(case), resolved_before is not None, due)) != 1:
        raise InputError("give a CASE, --resolved-before WHEN or --due")
    if unused_profiles and case:
        raise InputError("--unused-profiles goes with --resolved-before or --due, not with a CASE")
    app = env.app
    now = app.clock.now()
    cutoff = None
    if case:
        drops = [retention.plan_case(app.store, case)]
        if drops[0].refused and not force:
            raise InputError(f"case {drops[0].ref} is kept: {drops[0].refused}")
    elif due:
        drops = retention.past_retention(app.store, now, app.settings.retention_days)
        cutoff = now - timedelta(days=app.settings.retention_days)
    else:
        cutoff = _cutoff(resolved_before or "", now, env.tz())
        drops = retention.resolved_before(app.store, cutoff)
    chosen = [d for d in drops if force or not d.refused]
    kept = [d for d in drops if d not in chosen]
    profiles = retention.unused_profiles(app.store, cutoff) if unused_profiles and cutoff else []
    if not as_json:
        _say_what_goes(chosen, kept, profiles, env.tz())
    if dry_run or not (chosen or profiles):
        if as_json:
            emit_json({"dry_run": dry_run, "cases": [d.as_dict() for d in drops],
                       "profiles": [p["key"] for p in profiles], "purged": []})
        else:
            click.echo("Dry run: nothing purged." if dry_run else "Nothing to purge.")
        return
    if not yes and not as_json and not confirmed("Erase this personal data? This cannot be undone"):
        click.echo("Nothing purged.")
        return
    ctx = app.context()
    done = [retention.purge(ctx, d.ref, force=force) for d in chosen]
    removed = retention.purge_profiles(ctx, cutoff) if profiles and cutoff else []
    from rapidresponse import erasure

    pending = erasure.pending(app.store)
    if as_json:
        emit_json({"dry_run": False, "cases": [d.as_dict() for d in drops], "profiles": removed,
                   "purged": [p.__dict__ for p in done], "erasure_pending": pending})
    else:
        for p in done:
            click.echo(f"{p.ref}: personal data deleted; tombstone kept.")
        for key in removed:
            click.echo(f"Profile {key} deleted.")
    if pending:
        # Not a success: the deleted data still have copies on disk (the write-ahead log).
        click.echo("Error: erasure pending — another process is reading the database (a backup, a"
                   " sqlite3 shell), so old copies remain in its write-ahead log. The daemon (or"
                   " 'run --once') finishes the erasure once it has gone; 'status' shows it until"
                   " then.", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("Erased: no copy left in the database or its write-ahead log.")


def _cutoff(text: str, now: datetime, tz: Any) -> datetime:
    """A duration ago ('90d') or the start of a day ('01/09/2026', local)."""
    from rapidresponse.timeutil import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        day = parse_date(text, "--resolved-before")
    except InputError:
        raise InputError("--resolved-before is neither a duration (90d) nor a date (DD/MM/YYYY)") from None
    return datetime.combine(day, time(0), tzinfo=tz)


def _say_what_goes(chosen: list[Any], kept: list[Any], profiles: list[dict[str, Any]], tz: Any) -> None:
    for d in chosen:
        parts = ["the minor's alias, name, birth date and last place" if d.person else None,
                 f"{d.notes} note(s)" if d.notes else None,
                 f"{d.case_contacts} case contact number(s)" if d.case_contacts else None,
                 f"{d.followups} follow-up(s)" if d.followups else None]
        shown = ", ".join(p for p in parts if p) or "nothing personal is left"
        click.echo(f"{d.ref}: drops {shown}" + (" (follow-ups still open: --force)" if d.refused else ""))
    for d in kept:
        click.echo(f"{d.ref}: kept — {d.refused}")
    for p in profiles:
        since = p["used_at"] or p["changed_at"]
        click.echo(f"profile {p['key']}: drops the whole profile (unused since {when(since, tz)})")


@click.command("indicators")
@json_option
def indicators_cmd(as_json: bool) -> None:
    """List the indicators --indicator accepts: each with its kind and what it means."""
    from rapidresponse.assessment import INDICATORS, KIND_MEANINGS, KIND_PLURALS, KINDS, PLACEMENT_FACTOR

    if as_json:
        emit_json([{"name": n, "kind": KINDS[n], "meaning": INDICATORS[n]} for n in INDICATORS])
        return
    for kind, meaning in KIND_MEANINGS.items():
        click.echo(f"{KIND_PLURALS[kind].capitalize()} ({meaning}):")
        for name, text in INDICATORS.items():
            if KINDS[name] == kind:
                click.echo(f"  {name:<22} {text}")
    click.echo("Under 13 is a police criterion computed from the birth date; --placement foster or"
               f" institution sets {PLACEMENT_FACTOR}. A suspected victim is an alarming disappearance"
               " too (in dangerous company by definition).")


COMMANDS = [
    register, reassess, decide, ack, resolve, note, cases_cmd, show, log_cmd, purge, indicators_cmd,
]
