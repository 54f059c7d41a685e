"""The return, followed through: the answers at the return decide the after-return steps, and
every follow-up is recorded or shows as overdue."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import MINOR, RecordingTransport, assert_no_secrets, register_minor, tick
from rapidresponse import audit, followup
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.clock import FakeClock
from rapidresponse.engine import Context
from rapidresponse.errors import InputError
from rapidresponse.review import status
from rapidresponse.timeutil import to_iso

CARE_CENTRE = "+32470000081"


def kinds(result: followup.Returned) -> dict[str, str]:
    return {f["kind"]: f["state"] for f in result.followups}


def after_steps(result: followup.Returned) -> set[str]:
    return {s["id"] for s in result.resolution.after}


@pytest.mark.parametrize(
    ("safe", "ruled_out", "suspected", "steps", "followups"),
    [
        # safe and well, sexual violence ruled out, no suspicion: the interview only
        ("yes", "yes", False, set(), {"safe-and-well": "done", "return-interview": "open"}),
        # not safe and well: the coordinator at once
        ("no", "yes", False, {"not-safe-and-well"},
         {"safe-and-well": "no", "return-interview": "open"}),
        # nobody could say: a welfare check, still open
        ("unknown", "yes", False, {"welfare-check"},
         {"safe-and-well": "open", "return-interview": "open"}),
        # sexual violence not ruled out: the care centre, at once
        ("yes", "no", False, {"alert-care-centre"},
         {"safe-and-well": "done", "return-interview": "open", "care-centre": "open"}),
        # unknown is not ruled out
        ("yes", "unknown", False, {"alert-care-centre"},
         {"safe-and-well": "done", "return-interview": "open", "care-centre": "open"}),
        # a suspected victim: the reference centre too
        ("yes", "yes", True, {"refer-reference-centre"},
         {"safe-and-well": "done", "return-interview": "open", "reference-centre": "open"}),
        (None, None, True, {"welfare-check", "alert-care-centre", "refer-reference-centre"},
         {"safe-and-well": "open", "return-interview": "open", "reference-centre": "open",
          "care-centre": "open"}),
    ],
)
def test_every_after_return_branch(
    app: App, ctx: Context, transport: RecordingTransport, settings: Any,
    safe: str | None, ruled_out: str | None, suspected: bool, steps: set[str],
    followups: dict[str, str],
) -> None:
    reg = register_minor(ctx, app, indicators=("older-partner",) if suspected else ())
    assert reg.assessment.suspected_victim == suspected
    result = followup.resolve(ctx, reg.ref, "found", safe_and_well=safe,
                              sexual_violence_ruled_out=ruled_out)
    always = {"return-interview-due"} | ({"return-interview-plan"} if reg.playbook.name ==
                                         "worrying-situation" else set())
    assert after_steps(result) == steps | always
    assert kinds(result) == followups
    assert result.safe_and_well == (safe or "unknown")
    [event] = [e for e in audit.events(app.store, reg.ref) if e["kind"] == "case.returned"]
    assert event["detail"]["sexual_violence_ruled_out"] == (ruled_out or "unknown")
    tick(ctx, transport, settings)
    assert (CARE_CENTRE in transport.numbers()) == ("alert-care-centre" in steps)
    for to, body in transport.sent:
        if to == CARE_CENTRE:
            assert body.startswith(reg.ref) and "seks" not in body.lower()


def test_a_withdrawn_report_has_no_follow_ups_and_no_questions(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app)
    with pytest.raises(InputError, match="only with outcome found or returned"):
        followup.resolve(ctx, reg.ref, "withdrawn", safe_and_well="yes")
    result = followup.resolve(ctx, reg.ref, "withdrawn")
    assert result.followups == [] and result.resolution.after == []
    with pytest.raises(InputError, match="has no follow-ups"):
        followup.record(ctx, reg.ref, [("return-interview", "done")])


def test_overdue_follow_ups_show_in_status_until_recorded(
    app: App, ctx: Context, clock: FakeClock, settings: Any,
) -> None:
    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "returned", safe_and_well="yes", sexual_violence_ruled_out="no")
    clock.advance(hours=23)
    assert status(app.store, clock.now(), settings)["followups_overdue"] == []
    clock.advance(hours=1, seconds=1)
    assert [(r["case_ref"], r["kind"]) for r in status(app.store, clock.now(), settings)
            ["followups_overdue"]] == [(reg.ref, "care-centre")]
    followup.record(ctx, reg.ref, [("care-centre", "done")])
    clock.advance(hours=48)
    report = status(app.store, clock.now(), settings)
    assert sorted(r["kind"] for r in report["followups_overdue"]) == ["reference-centre", "return-interview"]
    assert report["needs_attention"]
    done = followup.record(ctx, reg.ref, [("return-interview", "declined"),
                                          ("reference-centre", "done")], note="Zorbalina wou niet")
    assert done[0]["late"] and done[0]["note"]
    assert status(app.store, clock.now(), settings)["followups_overdue"] == []
    assert "Zorbalina" not in json.dumps(list(audit.events(app.store)))


def test_mistakes_in_follow_ups_are_one_sentence(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "found", safe_and_well="yes", sexual_violence_ruled_out="yes")
    for answers, expected in [([("return-interview", "maybe")], "one of done, declined, not-possible"),
                              ([("care-centre", "not-possible")], "one of done, declined"),
                              ([], "say what to record")]:
        with pytest.raises(InputError, match=expected):
            followup.record(ctx, reg.ref, answers)
    with pytest.raises(InputError, match="not a known answer"):
        followup.resolve(ctx, register_minor(ctx, app, new_episode=True).ref, "found",
                         safe_and_well="misschien")


def invoke(runner: CliRunner, home: Path, *args: str) -> Result:
    return runner.invoke(cli, ["--home", str(home), *args])


def test_the_return_from_the_command_line(runner: CliRunner, home: Path) -> None:
    registered = invoke(runner, home, "register", "--alias", MINOR["alias"], "--birth-date",
                        MINOR["birth_date"], "--missing-since", "1h ago", "--last-seen",
                        MINOR["last_seen"], "--indicator", "older-partner", "--json")
    ref = json.loads(registered.stdout)["case"]
    resolved = invoke(runner, home, "resolve", ref, "--outcome", "gevonden", "--safe-and-well", "ja",
                      "--sexual-violence-ruled-out", "no", "--json")
    assert resolved.exit_code == 0, resolved.stderr
    out = json.loads(resolved.stdout)
    assert out["safe_and_well"] == "yes" and out["sexual_violence_ruled_out"] == "no"
    assert {f["kind"] for f in out["followups"]} == {"safe-and-well", "return-interview",
                                                     "reference-centre", "care-centre"}
    recorded = invoke(runner, home, "followup", ref, "--return-interview", "done",
                      "--referral", "care-centre", "done", "--referral", "reference-centre", "declined",
                      "--note", f"{MINOR['alias']} spoke with the consulent")
    assert recorded.exit_code == 0, recorded.stderr
    assert "return-interview done" in recorded.stdout
    [finished] = [line for line in recorded.stdout.splitlines() if "return-interview-plan" in line]
    assert finished.startswith("  finished: ")  # the plan stops reminding, and says so
    shown = json.loads(invoke(runner, home, "show", ref, "--json").stdout)
    assert {f["kind"]: f["state"] for f in shown["followups"]} == {
        "safe-and-well": "done", "return-interview": "done", "reference-centre": "declined",
        "care-centre": "done"}
    text = invoke(runner, home, "show", ref).stdout
    assert "After the return" in text and "return-interview" in text
    unknown = json.loads(invoke(runner, home, "register", "--alias", "Tweedina", "--birth-date",
                                "2012-01-01", "--missing-since", "1h ago", "--last-seen", "x",
                                "--json").stdout)["case"]
    invoke(runner, home, "resolve", unknown, "--outcome", "returned")  # a script: unknown
    checked = invoke(runner, home, "followup", unknown, "--safe-and-well", "yes")
    assert checked.exit_code == 0, checked.stderr
    states = {f["kind"]: f["state"] for f in json.loads(
        invoke(runner, home, "show", unknown, "--json").stdout)["followups"]}
    assert states["safe-and-well"] == "done" and states["care-centre"] == "open"
    bad = invoke(runner, home, "followup", ref, "--referral", "Zorbalina", "done")
    assert bad.exit_code == 2 and "Zorbalina" not in bad.stderr
    log = invoke(runner, home, "log", ref, "--json").stdout
    assert_no_secrets(log)


def test_on_a_terminal_resolve_asks_the_two_questions(runner: CliRunner, home: Path) -> None:
    """A real process whose stdin is a terminal (a pseudo-terminal): the officer is asked."""
    import os
    import pty
    import subprocess
    import sys

    registered = invoke(runner, home, "register", "--alias", MINOR["alias"], "--birth-date",
                        MINOR["birth_date"], "--missing-since", "1h ago", "--last-seen",
                        MINOR["last_seen"], "--json")
    ref = json.loads(registered.stdout)["case"]
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "rapidresponse", "resolve", ref, "--outcome", "found"],
            stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RAPIDRESPONSE_HOME": str(home)},
        )
        os.write(controller, b"no\nyes\n")
        _, err = process.communicate(timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert process.returncode == 0, err
    assert "Is she safe and well?" in err and "ruled out?" in err
    shown = json.loads(invoke(runner, home, "show", ref, "--json").stdout)
    states = {f["kind"]: f["state"] for f in shown["followups"]}
    assert states["safe-and-well"] == "no" and "care-centre" not in states
    assert {s["id"] for s in shown["steps"]} >= {"not-safe-and-well"}


def test_a_return_flag_in_a_search_step_is_refused(app: App) -> None:
    from rapidresponse.playbooks import parse_playbook

    text = """
name = "terug"
[[steps]]
id = "te-vroeg"
at = "0m"
role = "coordinator"
when = ["sexual-violence-not-ruled-out"]
message = "{case}: bel {callback}."
"""
    with pytest.raises(InputError, match="only for \\[\\[after_resolved\\]\\] steps"):
        parse_playbook(text, source="terug.toml", roles=app.contacts.roles)
    parse_playbook(text.replace("[[steps]]", "[[steps]]\nid = \"zoek\"\nat = \"0m\"\nrole = \"police\"\n"
                                "message = \"{case}: zoek.\"\n\n[[after_resolved]]"),
                   source="terug.toml", roles=app.contacts.roles)


def test_recording_a_follow_up_finishes_the_step_that_reminds_of_it(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Any,
) -> None:
    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "found", safe_and_well="yes", sexual_violence_ruled_out="no")
    tick(ctx, transport, settings)
    [done] = followup.record(ctx, reg.ref, [("care-centre", "done")])
    assert done["steps_closed"] == ["alert-care-centre"]
    [done] = followup.record(ctx, reg.ref, [("return-interview", "done")])
    assert sorted(done["steps_closed"]) == ["return-interview-due", "return-interview-plan"]
    clock.advance(hours=73)
    tick(ctx, transport, settings)
    reminded = app.store.scalar(
        "SELECT COUNT(*) FROM messages m JOIN steps s ON s.id = m.step_id"
        " WHERE s.step_key IN ('return-interview-due', 'alert-care-centre') AND m.created_at > ?",
        [to_iso(clock.now() - timedelta(hours=1))])
    assert reminded == 0  # no reminder of a done interview, no escalation of a done referral
    states = dict(app.store.conn.execute(
        "SELECT step_key, state FROM steps WHERE phase = 'after_resolved'").fetchall())
    assert states["return-interview-due"] == "done" and states["alert-care-centre"] == "done"


def test_recording_the_return_interview_finishes_the_coordinators_plan(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Any,
) -> None:
    """A worrying case back: the plan (welfare check, return interview, referral) stops going to
    the next coordinator once the interview is recorded; the referrals and the check alone do
    not finish it, for they have steps of their own and the interview is still to plan."""
    reg = register_minor(ctx, app)
    assert reg.playbook.name == "worrying-situation"
    followup.resolve(ctx, reg.ref, "found", safe_and_well="unknown", sexual_violence_ruled_out="no")
    tick(ctx, transport, settings)
    clock.advance(minutes=30)
    others = followup.record(ctx, reg.ref, [("safe-and-well", "yes"), ("care-centre", "done"),
                                            ("reference-centre", "done")])
    assert "return-interview-plan" not in {k for e in others for k in e.get("steps_closed", [])}
    assert [s["state"] for s in step_rows(app, reg.ref, "return-interview-plan")] == ["active"]
    [held] = followup.record(ctx, reg.ref, [("return-interview", "done")])
    assert sorted(held["steps_closed"]) == ["return-interview-due", "return-interview-plan"]
    [logged] = [e for e in audit.events(app.store, reg.ref) if e["kind"] == "followup.recorded"
                and e["detail"].get("followup") == "return-interview"]
    assert logged["detail"]["steps_closed"] == held["steps_closed"]
    recorded_at = to_iso(clock.now())
    clock.advance(hours=2)
    tick(ctx, transport, settings)
    assert [s["state"] for s in step_rows(app, reg.ref, "return-interview-plan")] == ["done"]
    assert app.store.scalar(  # no next coordinator for a plan carried out
        "SELECT COUNT(*) FROM messages m JOIN steps s ON s.id = m.step_id"
        " WHERE s.step_key = 'return-interview-plan' AND m.created_at > ?", [recorded_at]) == 0
    assert not [e for e in audit.events(app.store, reg.ref) if e["at"] > recorded_at
                and e["detail"].get("step") == "return-interview-plan"]


def step_rows(app: App, ref: str, key: str) -> list[dict[str, Any]]:
    return app.store.all(
        "SELECT s.* FROM steps s JOIN cases c ON c.id = s.case_id WHERE c.ref = ? AND s.step_key = ?"
        " AND s.phase = 'after_resolved' ORDER BY s.id", [ref, key])


@pytest.mark.parametrize("at_return", ["yes", "unknown"])
def test_a_late_not_safe_and_well_starts_its_steps_from_that_moment(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Any,
    at_return: str,
) -> None:
    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "found", safe_and_well=at_return, sexual_violence_ruled_out="yes")
    tick(ctx, transport, settings)
    assert step_rows(app, reg.ref, "not-safe-and-well") == []
    clock.advance(hours=3)
    [done] = followup.record(ctx, reg.ref, [("safe-and-well", "no")])
    assert done["steps_planned"] == ["not-safe-and-well"]
    [step] = step_rows(app, reg.ref, "not-safe-and-well")
    assert step["due_at"] == to_iso(clock.now()) and step["state"] == "pending"
    assert [s["state"] for s in step_rows(app, reg.ref, "welfare-check")] == (
        ["done"] if at_return == "unknown" else [])
    before = len(transport.sent)
    tick(ctx, transport, settings)
    assert len(transport.sent) > before  # the coordinator is told now
    assert all(body.startswith(reg.ref) for _, body in transport.sent)
    assert followup.answers_now(app.store, reg.ref) == ("no", "yes")


def test_safe_and_well_after_all_stops_what_only_not_safe_and_well_wanted(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Any,
) -> None:
    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "found", safe_and_well="no", sexual_violence_ruled_out="yes")
    tick(ctx, transport, settings)
    clock.advance(minutes=5)
    [done] = followup.record(ctx, reg.ref, [("safe-and-well", "yes")])
    assert done["steps_stopped"] == ["not-safe-and-well"]
    assert [s["state"] for s in step_rows(app, reg.ref, "not-safe-and-well")] == ["cancelled"]
    stopped_at = to_iso(clock.now())
    clock.advance(hours=1)
    tick(ctx, transport, settings)
    assert app.store.scalar(  # no escalation of a stopped step
        "SELECT COUNT(*) FROM messages m JOIN steps s ON s.id = m.step_id"
        " WHERE s.step_key = 'not-safe-and-well' AND m.created_at > ?", [stopped_at]) == 0


def test_sexual_violence_no_longer_ruled_out_alerts_the_care_centre_and_back(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Any,
) -> None:
    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "returned", safe_and_well="yes", sexual_violence_ruled_out="yes")
    tick(ctx, transport, settings)
    assert CARE_CENTRE not in transport.numbers()
    clock.advance(hours=2)
    [changed] = followup.record(ctx, reg.ref, [("sexual-violence-ruled-out", "nee")],
                                note=f"{MINOR['alias']} vertelde meer")
    assert changed["was"] == "yes" and changed["result"] == "no"
    assert changed["steps_planned"] == ["alert-care-centre"] and changed["note"]
    states = {f["kind"]: f for f in followup.of_case(app.store, reg.case_id, clock.now())}
    assert states["care-centre"]["state"] == "open"
    assert states["care-centre"]["due_at"] == to_iso(clock.now() + timedelta(hours=24))
    tick(ctx, transport, settings)
    assert transport.numbers().count(CARE_CENTRE) == 1
    clock.advance(minutes=10)
    [ruled_out] = followup.record(ctx, reg.ref, [("sexual-violence-ruled-out", "yes")])
    assert ruled_out["steps_stopped"] == ["alert-care-centre"]
    assert "care-centre" not in {f["kind"] for f in followup.of_case(app.store, reg.case_id,
                                                                       clock.now())}
    sent = app.store.scalar(
        "SELECT COUNT(*) FROM messages m JOIN steps s ON s.id = m.step_id"
        " WHERE s.step_key = 'alert-care-centre' AND m.state != 'cancelled'")
    assert sent == 1  # what was sent stays sent: nothing is recalled
    stopped_at = to_iso(clock.now())
    clock.advance(hours=2)
    tick(ctx, transport, settings)
    later = app.store.scalar(  # no reminder, no escalation to the coordinator
        "SELECT COUNT(*) FROM messages m JOIN steps s ON s.id = m.step_id"
        " WHERE s.step_key = 'alert-care-centre' AND m.created_at > ?", [stopped_at])
    assert later == 0 and transport.numbers().count(CARE_CENTRE) == 1
    again = followup.record(ctx, reg.ref, [("sexual-violence-ruled-out", "unknown")])
    assert again[0]["steps_planned"] == ["alert-care-centre"]
    assert [s["state"] for s in step_rows(app, reg.ref, "alert-care-centre")] == ["cancelled", "pending"]
    log = json.dumps(list(audit.events(app.store, reg.ref)))
    assert_no_secrets(log)
    assert "vertelde" not in log


def test_a_changed_answer_from_the_command_line(runner: CliRunner, home: Path) -> None:
    registered = invoke(runner, home, "register", "--alias", MINOR["alias"], "--birth-date",
                        MINOR["birth_date"], "--missing-since", "1h ago", "--last-seen",
                        MINOR["last_seen"], "--json")
    ref = json.loads(registered.stdout)["case"]
    invoke(runner, home, "resolve", ref, "--outcome", "found", "--safe-and-well", "yes",
           "--sexual-violence-ruled-out", "yes")
    changed = invoke(runner, home, "followup", ref, "--sexual-violence-ruled-out", "unknown")
    assert changed.exit_code == 0, changed.stderr
    assert "sexual-violence-ruled-out unknown" in changed.stdout and "alert-care-centre" in changed.stdout
    shown = json.loads(invoke(runner, home, "show", ref, "--json").stdout)
    assert "alert-care-centre" in {s["id"] for s in shown["steps"]}
    bad = invoke(runner, home, "followup", ref, "--sexual-violence-ruled-out", "Zorbalina")
    assert bad.exit_code == 2 and "Zorbalina" not in bad.stderr
    assert_no_secrets(invoke(runner, home, "log", ref, "--json").stdout)


def test_safe_and_well_still_unknown_keeps_the_check_open_and_its_time(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Any,
) -> None:
    """Unknown at the return, unknown again later: the welfare check keeps running, the
    follow-up stays open with its due time (an overdue check stays overdue), nothing else planned."""
    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "found", safe_and_well="unknown", sexual_violence_ruled_out="yes")
    tick(ctx, transport, settings)
    clock.advance(hours=3)
    [still] = followup.record(ctx, reg.ref, [("safe-and-well", "onbekend")])
    assert still["result"] == "unknown" and still["was"] == "open" and still["late"]
    assert "steps_planned" not in still and "steps_stopped" not in still
    assert [s["state"] for s in step_rows(app, reg.ref, "welfare-check")] == ["active"]
    assert step_rows(app, reg.ref, "not-safe-and-well") == []
    assert [(r["case_ref"], r["kind"]) for r in status(app.store, clock.now(), settings)
            ["followups_overdue"]] == [(reg.ref, "safe-and-well")]
    assert followup.answers_now(app.store, reg.ref) == ("unknown", "yes")


def test_a_doubted_safe_and_well_reopens_the_check_and_plans_the_welfare_check(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Any,
) -> None:
    """Yes at the return, unknown now (she was not seen after all): the check is open again,
    due in 2 h from now, and the welfare check is planned from now, logged and said."""
    from rapidresponse.figures import Period, report

    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "found", safe_and_well="yes", sexual_violence_ruled_out="yes")
    tick(ctx, transport, settings)
    assert step_rows(app, reg.ref, "welfare-check") == []
    clock.advance(hours=1)
    [doubted] = followup.record(ctx, reg.ref, [("safe-and-well", "unknown")])
    assert doubted["was"] == "done" and doubted["steps_planned"] == ["welfare-check"]
    assert doubted["followup_opened"]["due_at"] == to_iso(clock.now() + timedelta(hours=2))
    [check] = followup.of_case(app.store, reg.case_id, clock.now())[:1]
    assert (check["kind"], check["state"], check["answered_by"]) == ("safe-and-well", "open", None)
    assert step_rows(app, reg.ref, "not-safe-and-well") == []  # unknown is not "no"
    from rapidresponse.timeline import timeline

    [said] = [e.what for e in timeline(app.store, reg.ref).entries if e.kind == "followup.recorded"]
    assert said.endswith("recorded by officer-test: unknown, open again")
    figures = report(app.store, Period(clock.now() - timedelta(days=1), clock.now() + timedelta(hours=1)))
    assert figures["followups"]["safe_and_well"] == {"due": 0, "done": 0, "not_done": 0, "overdue": 0}
    later = report(app.store, Period(clock.now() - timedelta(days=1), clock.now() + timedelta(hours=3)))
    assert later["followups"]["safe_and_well"] == {"due": 1, "done": 0, "not_done": 0, "overdue": 1}
    clock.advance(minutes=30)
    [safe] = followup.record(ctx, reg.ref, [("safe-and-well", "yes")])
    assert safe["steps_closed"] == ["welfare-check"]  # the check is done
    assert [s["state"] for s in step_rows(app, reg.ref, "welfare-check")] == ["done"]


def test_not_knowing_never_lowers_not_safe_and_well(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Any,
    runner: CliRunner,
) -> None:
    reg = register_minor(ctx, app)
    followup.resolve(ctx, reg.ref, "found", safe_and_well="no", sexual_violence_ruled_out="yes")
    tick(ctx, transport, settings)
    logged = len(list(audit.events(app.store, reg.ref)))
    with pytest.raises(InputError, match="not safe and well: 'unknown' does not lower that"):
        followup.record(ctx, reg.ref, [("safe-and-well", "unknown")])
    refused = invoke(runner, app.home, "followup", reg.ref, "--safe-and-well", "unknown")
    assert refused.exit_code == 2 and "record --safe-and-well yes" in refused.stderr
    assert len(list(audit.events(app.store, reg.ref))) == logged  # nothing written
    assert [s["state"] for s in step_rows(app, reg.ref, "not-safe-and-well")] == ["active"]
    assert followup.answers_now(app.store, reg.ref) == ("no", "yes")
    bad = invoke(runner, app.home, "followup", reg.ref, "--safe-and-well", "Zorbalina")
    assert bad.exit_code == 2 and "Zorbalina" not in bad.stderr
