"""One case's story in order: who decided, who was texted, who confirmed, and how fast."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import (
    CALL_PLAYBOOK,
    REVIEW_PLAYBOOK,
    assert_no_secrets,
    register_minor,
    tick,
    use_playbook_text,
)
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.engine import Context, acknowledge, add_note, resolve
from rapidresponse.errors import InputError
from rapidresponse.timeline import timeline

CF_BACKUP = "Child Focus backup (fictief)"


def story_case(app: App, ctx: Context, clock: Any, transport: Any, settings: Any) -> str:
    """Missing two hours before registration; prosecutor escalates to the coordinator, who acks
    after 5 minutes; Child Focus's backup acknowledged by an officer after 4 minutes."""
    playbook = use_playbook_text(app, "review", REVIEW_PLAYBOOK)
    ref = register_minor(ctx, app, playbook=playbook, missing_since=clock.now() - timedelta(hours=2)).ref
    tick(ctx, transport, settings)                      # t=0: four steps fire, texts out
    clock.advance(minutes=4)
    acknowledge(ctx, ref, "child_focus", via="cli", contact="child focus BACKUP (fictief)")
    clock.advance(minutes=11)
    tick(ctx, transport, settings)                      # t=15m: prosecutor's backup
    clock.advance(minutes=15)
    tick(ctx, transport, settings)                      # t=30m: escalated to the coordinator
    clock.advance(minutes=5)
    acknowledge(ctx, ref, "coordinator", via="cli")     # t=35m: both coordinator steps
    add_note(ctx, ref, "Zorbalina gezien bij Kwikstaartplein")
    clock.advance(minutes=25)
    resolve(ctx, ref, "found")                          # t=60m
    tick(ctx, transport, settings)
    return ref


@pytest.fixture
def ref(app: App, ctx: Context, clock: Any, transport: Any, settings: Any) -> str:
    return story_case(app, ctx, clock, transport, settings)


def test_entries_are_in_log_order_with_elapsed_times(app: App, ref: str) -> None:
    story = timeline(app.store, ref)
    seqs = [e.seq for e in story.entries]
    assert seqs == sorted(seqs)
    first = story.entries[0]
    assert first.kind == "case.registered" and first.since_registration_seconds == 0
    assert first.since_missing_seconds == 2 * 3600
    resolved = next(e for e in story.entries if e.kind == "case.resolved")
    assert resolved.since_registration_seconds == 3600 and resolved.since_missing_seconds == 3 * 3600
    assert "found" in resolved.what and "officer-test" in resolved.what


def test_acknowledgements_name_the_contact_and_the_delay_since_their_alert(app: App, ref: str) -> None:
    acks = [e for e in timeline(app.store, ref).entries if e.kind == "step.acknowledged"]
    by_step = {e.step: e for e in acks}
    child_focus = by_step["alert-child-focus"]
    assert child_focus.contact == CF_BACKUP and child_focus.via == "cli"
    assert child_focus.actor == "officer-test" and child_focus.delay_seconds == 240
    # The coordinator answered the escalated prosecutor step 5 minutes after its own alert,
    # and the check-missing step 35 minutes after it fired at registration.
    escalated = by_step["alert-prosecutor"]
    assert escalated.lane == "coordinator" and escalated.delay_seconds == 300
    assert by_step["check-missing"].delay_seconds == 35 * 60


def test_messages_carry_their_delivery_state_and_escalations_are_shown(app: App, ref: str) -> None:
    story = timeline(app.store, ref)
    alerts = [e for e in story.entries if e.kind == "message.alert"]
    assert {e.lane for e in alerts} == {"youth_prosecutor", "child_focus", "police", "coordinator",
                                       "reference_centre"}  # the referral after the return
    assert all(e.state == "sent" for e in alerts)
    kinds = [e.kind for e in story.entries]
    moved = [e.step for e in story.entries if e.kind == "step.next_contact"]
    assert moved == ["alert-prosecutor", "check-missing"] and kinds.count("step.escalated") == 1
    assert "message.stand-down" in kinds
    assert kinds.index("step.escalated") < kinds.index("case.resolved")


def test_a_step_overdue_at_registration_is_not_late(app: App, ref: str) -> None:
    due = {e.step: e for e in timeline(app.store, ref).entries if e.kind == "step.due"}
    assert due["check-missing"].extra["late_seconds"] == 0 and "late" not in due["check-missing"].what


def test_notes_appear_by_reference_only(app: App, ref: str) -> None:
    story = timeline(app.store, ref)
    note = next(e for e in story.entries if e.kind == "case.note")
    assert note.what.startswith("note #") and isinstance(note.extra["note"], int)
    assert_no_secrets(json.dumps(story.as_dict()))


def test_an_exhausted_chain_shows(app: App, ctx: Context, clock: Any, transport: Any, settings: Any) -> None:
    playbook = use_playbook_text(app, "review", REVIEW_PLAYBOOK)
    ref = register_minor(ctx, app, playbook=playbook).ref
    for _ in range(3):
        tick(ctx, transport, settings)
        clock.advance(minutes=15)
    tick(ctx, transport, settings)
    exhausted = [e for e in timeline(app.store, ref).entries if e.kind == "step.exhausted"]
    assert [(e.step, e.since_registration_seconds) for e in exhausted] == [
        ("alert-child-focus", 30 * 60), ("alert-prosecutor", 45 * 60)]


def test_ack_contact_must_be_of_the_role(app: App, ctx: Context, transport: Any, settings: Any) -> None:
    ref = register_minor(ctx, app, playbook=use_playbook_text(app, "review", REVIEW_PLAYBOOK)).ref
    tick(ctx, transport, settings)
    with pytest.raises(InputError, match="Child Focus wachtdienst") as err:
        acknowledge(ctx, ref, "child_focus", via="cli", contact="Zorbalina")
    assert "Zorbalina" not in str(err.value)
    with pytest.raises(InputError):  # a contact of another role
        acknowledge(ctx, ref, "child_focus", via="cli", contact="Parket permanentie (fictief)")
    assert app.store.scalar("SELECT COUNT(*) FROM events WHERE kind = 'step.acknowledged'") == 0


def test_ack_contact_from_the_cli_is_recorded(app: App, ctx: Context, transport: Any, settings: Any) -> None:
    ref = register_minor(ctx, app, playbook=use_playbook_text(app, "review", REVIEW_PLAYBOOK)).ref
    tick(ctx, transport, settings)
    app.close()
    runner = CliRunner()
    bad = runner.invoke(cli, ["--home", str(app.home), "ack", ref, "--role", "child_focus",
                              "--contact", "Zorbalina"])
    assert bad.exit_code == 2 and "Zorbalina" not in bad.output
    done = runner.invoke(cli, ["--home", str(app.home), "ack", ref, "--role", "child_focus",
                               "--contact", CF_BACKUP.upper(), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["contact"] == CF_BACKUP
    log = json.loads(runner.invoke(cli, ["--home", str(app.home), "log", ref, "--json"]).stdout)
    [ack] = [e for e in log if e["kind"] == "step.acknowledged"]
    assert ack["detail"]["contact"] == CF_BACKUP and ack["actor"] == "officer-test"


def test_the_timeline_command(app: App, ref: str) -> None:
    app.close()
    runner = CliRunner()
    text = runner.invoke(cli, ["--home", str(app.home), "timeline", ref.lower()])
    assert text.exit_code == 0, text.output
    assert "registered by officer-test" in text.output and CF_BACKUP in text.output
    assert "+2h" in text.output and "15:00:00" in text.output  # 13:00 UTC is 14:00 in Brussels; +1h
    assert_no_secrets(text.output)
    as_json = json.loads(runner.invoke(cli, ["--home", str(app.home), "timeline", ref, "--json"]).stdout)
    assert as_json["case"] == ref and as_json["entries"][0]["kind"] == "case.registered"
    unknown = runner.invoke(cli, ["--home", str(app.home), "timeline", "RR-2026-0999"])
    assert unknown.exit_code == 2


def test_the_timeline_reads_the_case_through_its_index(app: App, ref: str) -> None:
    plan = app.store.all("EXPLAIN QUERY PLAN SELECT seq, at, actor, kind, detail FROM events"
                         " WHERE case_ref = ? ORDER BY seq", [ref])
    assert any("events_case" in row["detail"] for row in plan), plan


def test_the_return_and_its_follow_ups_are_in_the_story(app: App, ctx: Context, clock: Any) -> None:
    from rapidresponse import followup

    ref = register_minor(ctx, app).ref
    followup.resolve(ctx, ref, "found", safe_and_well="yes", sexual_violence_ruled_out="yes")
    clock.advance(hours=80)
    followup.record(ctx, ref, [("return-interview", "done")])
    entries = {e.kind: e for e in timeline(app.store, ref).entries}
    returned = entries["case.returned"]
    assert "safe and well yes" in returned.what and "return-interview" in returned.what
    recorded = entries["followup.recorded"]
    assert recorded.what == "follow-up return-interview recorded by officer-test: done, late"
    assert recorded.since_registration_seconds == 80 * 3600


def test_the_story_reads_on_an_80_column_screen(app: App, ref: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One line per event (its local time first), only the description wrapping under itself,
    and no step id, role or contact name broken across lines."""
    monkeypatch.setenv("COLUMNS", "80")
    entries = timeline(app.store, ref).entries
    app.close()
    shown = CliRunner().invoke(cli, ["--home", str(app.home), "timeline", ref])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    event_lines = [line for line in lines if re.match(r"\d\d:\d\d:\d\d  ", line)]
    assert len(event_lines) == len(entries)
    words = {w for line in lines for w in line.split()}
    for e in entries:
        for name in (e.step, e.lane):
            if name:
                assert any(name in w for w in words), name
    assert CF_BACKUP in " ".join(" ".join(lines).split())
    ack = next(line for line in event_lines if "acknowledged by child_focus" in line)
    assert "+2h4m" in ack and "+4m" in ack  # since missing, since registration
    assert "4m after the alert" in " ".join(lines[lines.index(ack):lines.index(ack) + 3])
    assert_no_secrets(shown.output)


def test_a_skipped_step_says_which_and_why(app: App, ctx: Context, transport: Any, settings: Any) -> None:
    ref = register_minor(ctx, app).ref
    tick(ctx, transport, settings)
    skipped = [e for e in timeline(app.store, ref).entries if e.kind == "step.skipped"]
    assert skipped, "the shipped playbook informs the carer; this case names none"
    assert skipped[0].what == f"step {skipped[0].step} skipped for case:carer, nobody informed: the case names no carer"


def test_a_changed_answer_after_the_return_says_what_changed(app: App, ctx: Context, clock: Any) -> None:
    from rapidresponse import followup

    ref = register_minor(ctx, app).ref
    followup.resolve(ctx, ref, "returned", safe_and_well="yes", sexual_violence_ruled_out="yes")
    clock.advance(hours=2)
    followup.record(ctx, ref, [("sexual-violence-ruled-out", "no")])
    [changed] = [e for e in timeline(app.store, ref).entries if e.kind == "return.answer-changed"]
    assert changed.what == (
        "sexual violence ruled out changed by officer-test: yes → no; follow-up care-centre opened"
    )
    assert changed.extra == {"answer": "sexual-violence-ruled-out", "was": "yes", "result": "no"}




def test_a_hang_up_names_its_call_and_the_story_keeps_time_order(app: App, ctx: Context, clock: Any,
                                                                  settings: Any) -> None:
    """A sender reads the time, then waits for the write lock while another writer logs an event
    of a later second: the log has them in lock order, the story in time order."""
    from dataclasses import replace
    from io import StringIO

    from rapidresponse.clock import FakeClock
    from rapidresponse.dispatch import claim_hangups, hang_up
    from rapidresponse.sms.console import ConsoleTransport

    phone = ConsoleTransport(StringIO())
    ref = register_minor(ctx, app, playbook=use_playbook_text(app, "calls", CALL_PLAYBOOK)).ref
    tick(ctx, phone, settings)
    clock.advance(minutes=5)
    tick(ctx, phone, settings)                                  # the call rings ...
    acknowledge(ctx, ref, "youth_prosecutor", via="cli")        # ... answered by text: hang it up
    sender = replace(ctx, clock=FakeClock(clock.now()))         # the sender's time, read first
    [row] = claim_hangups(sender, settings)
    clock.advance(seconds=3)
    add_note(ctx, ref, "Zorbalina gezien")                      # logged first, three seconds later
    hang_up(sender, phone, settings, row)
    story = timeline(app.store, ref)
    times = [e.at for e in story.entries]
    assert times == sorted(times)
    [call] = [e for e in story.entries if e.kind == "message.call"]
    [hung] = [e for e in story.entries if e.kind == "call.hung_up"]
    assert hung.what == f"the call (alert) to youth_prosecutor ({call.contact}) hung up (canceled)"
    assert story.entries[-1].kind == "case.note" and hung.seq > story.entries[-1].seq
    assert_no_secrets(json.dumps(story.as_dict()))
