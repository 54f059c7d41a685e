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
    assert done["steps_closed"] == ["return-interview-due"]
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
