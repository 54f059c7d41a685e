"""`playbooks show` and `playbooks simulate`: a playbook replayed on the real engine, sending nothing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import assert_no_secrets
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.simulate import Action, Simulation, simulate

SUNDAY_NIGHT = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # Sun 23:00 in Brussels
MONDAY_MORNING = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Mon 10:00 in Brussels
PROSECUTOR, PROSECUTOR_BACKUP = "Parket permanentie (fictief)", "Parket backup (fictief)"
OCJ, VK = "OCJ permanentie (fictief)", "VK wachtdienst (fictief)"
COORDINATORS = {"Coördinator van dienst (fictief)", "Coördinator backup (fictief)"}


def texts(sim: Simulation, step: str | None = None) -> list[tuple[int, str]]:
    """(minute, contact) of every text sent, of one step if given."""
    return [(int(e.offset / timedelta(minutes=1)), e.contact or "") for e in sim.events
            if e.kind == "sms.sent" and (step is None or e.step == step)]


def calls(sim: Simulation, step: str | None = None) -> list[tuple[int, str]]:
    """(minute, contact) of every call placed, of one step if given."""
    return [(int(e.offset / timedelta(minutes=1)), e.contact or "") for e in sim.events
            if e.kind == "call.placed" and (step is None or e.step == step)]


def states(sim: Simulation) -> dict[str, str]:
    return {s["step"]: s["state"] for s in sim.steps}


def run(app: App, start: datetime = MONDAY_MORNING, **options: object) -> Simulation:
    return simulate(app.playbook("worrying-situation"), app.contacts, start=start, **options)  # type: ignore[arg-type]


def test_acknowledged_early_stops_the_chain(app: App) -> None:
    sim = run(app, acks=[Action("youth_prosecutor", timedelta(minutes=5))])
    assert texts(sim, "alert-youth-prosecutor") == [(0, PROSECUTOR)]
    assert states(sim)["alert-youth-prosecutor"] == "acknowledged"
    assert any(e.kind == "step.acknowledged" and e.offset == timedelta(minutes=5) for e in sim.events)


def test_nobody_answers_escalates_repeats_and_exhausts(app: App) -> None:
    sim = run(app)
    step = texts(sim, "alert-youth-prosecutor")
    # call_after = "5m": each contact is called 5 minutes after the text; ack_within counts from the call
    assert step[:2] == [(0, PROSECUTOR), (20, PROSECUTOR_BACKUP)]
    assert calls(sim, "alert-youth-prosecutor")[:2] == [(5, PROSECUTOR), (25, PROSECUTOR_BACKUP)]
    assert {c for m, c in step if m == 40} == COORDINATORS  # escalate_to: the whole role at once
    assert {c for m, c in calls(sim, "alert-youth-prosecutor") if m == 45} == COORDINATORS
    assert step[4:6] == [(60, PROSECUTOR), (80, PROSECUTOR_BACKUP)]  # repeat = 1: a second round
    exhausted = [e for e in sim.events if e.kind == "step.exhausted" and e.step == "alert-youth-prosecutor"]
    assert [e.offset for e in exhausted] == [timedelta(minutes=120)]
    assert states(sim)["alert-youth-prosecutor"] == "exhausted"
    assert states(sim)["inform-police"] == "exhausted"  # the police are asked to confirm the search


def test_a_failed_number_moves_on_at_once(app: App) -> None:
    sim = run(app, fail=[PROSECUTOR])
    failed = [e for e in sim.events if e.kind == "sms.failed"]
    assert (failed[0].offset, failed[0].contact) == (timedelta(0), PROSECUTOR)
    assert texts(sim, "alert-youth-prosecutor")[0] == (0, PROSECUTOR_BACKUP)  # not after 15 minutes
    assert all(e.contact == PROSECUTOR for e in failed)  # its turn in the second round fails too


def test_resolved_at_30_minutes_stands_down_and_plans_the_return(app: App) -> None:
    sim = run(app, resolve=Action("found", timedelta(minutes=30)))
    search = {s.id for s in app.playbook("worrying-situation").steps}
    assert max(m for step in search for m, _ in texts(sim, step)) <= 30  # nothing of the search after it
    stand_downs = {e.contact for e in sim.events if e.kind == "sms.stand_down"}
    alerted = {c for step in search for _, c in texts(sim, step)}
    assert stand_downs == alerted
    assert texts(sim, "return-interview-plan")[0] == (30, "Coördinator van dienst (fictief)")
    assert texts(sim, "return-interview-due")[0] == (72 * 60 + 30, "Coördinator van dienst (fictief)")
    assert states(sim)["alert-youth-prosecutor"] == "cancelled"


def test_started_on_a_sunday_night_skips_who_is_off_duty(app: App) -> None:
    night = run(app, start=SUNDAY_NIGHT, flags=["societal-necessity"])
    skipped = [e for e in night.events if e.kind == "step.skipped_contact"]
    assert skipped[0].step == "ask-mandated-agency" and OCJ in skipped[0].text
    assert texts(night, "ask-mandated-agency")[0] == (0, VK)
    day = run(app, start=MONDAY_MORNING, flags=["societal-necessity"])
    assert texts(day, "ask-mandated-agency")[0] == (0, OCJ)


def test_offsets_read_as_the_playbook_says_whatever_the_start_second(app: App) -> None:
    """A start with sub-second precision (as 'now' has) must not show 15m as 14m59s."""
    sim = run(app, start=MONDAY_MORNING + timedelta(seconds=7, microseconds=654321))
    offsets = {e.offset for e in sim.events}
    assert {timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=20)} <= offsets
    assert all(o.microseconds == 0 for o in offsets)


def test_the_worrying_case_starts_undecided_like_a_registration(app: App) -> None:
    """Societal necessity is decided, never presumed: the default replay asks the coordinator to
    decide and texts no mandated agency; flags that need a decision get one."""
    sim = run(app)
    assert "societal-necessity-undecided" in sim.flags and "societal-necessity" not in sim.flags
    assert texts(sim, "decide-societal-necessity")
    assert "ask-mandated-agency" not in states(sim)
    assert "societal-necessity-undecided" in run(app, flags=["worrying"]).flags
    decided = run(app, flags=["societal-necessity"])
    assert "ask-mandated-agency" in states(decided) and "decide-societal-necessity" not in states(decided)


def test_flags_choose_the_simplest_case_the_rules_allow(app: App) -> None:
    sim = run(app, flags=["suspected-victim"])
    assert {"worrying", "alarming"} <= set(sim.flags)  # a suspected victim is both, by the rules
    quiet = run(app, flags=["worrying"])
    assert "societal-necessity" not in quiet.flags
    assert "ask-mandated-agency" not in states(quiet)


def test_the_command_prints_a_timeline_and_writes_nothing_to_the_home(runner: CliRunner, home: Path) -> None:
    before = (home / "rapidresponse.db").read_bytes()
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "simulate", "worrying-situation",
                                 "--start", "2026-11-29 23:00", "--ack", "youth_prosecutor@25m",
                                 "--resolve", "found@40m"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Simulation of worrying-situation from Sun 29 Nov 2026 23:00")
    assert "      +5m  Sun 23:05  call to Parket permanentie (fictief) (youth_prosecutor)" in result.stdout
    assert "     +25m  Sun 23:25  step 'alert-youth-prosecutor' acknowledged by youth_prosecutor" in result.stdout
    assert "     +40m  Sun 23:40  case resolved (found)" in result.stdout
    assert "stand-down to Parket backup (fictief) (youth_prosecutor)" in result.stdout
    assert_no_secrets(result.output)
    assert "Simulatie" not in result.output  # the fictitious minor stays in the throw-away database
    assert (home / "rapidresponse.db").read_bytes() == before


def test_json_lists_every_event_with_its_minute(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "simulate", "missing-minor",
                                 "--start", "2026-11-30 10:00", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    sent = [(e["minute"], e["contact"]) for e in report["events"] if e["kind"] == "sms.sent"]
    assert (0, "Child Focus wachtdienst (fictief)") in sent
    assert (120, "Coördinator van dienst (fictief)") in sent  # the re-assessment reminder at 2h
    assert report["start"] == "2026-11-30T10:00:00+01:00"


def test_mistakes_are_one_sentence_that_does_not_repeat_the_word(runner: CliRunner, home: Path) -> None:
    for args, expected in [
        (["--ack", "Zorbalina@5m"], "the role of --ack is not a known role"),
        (["--ack", "police"], "--ack takes WORD@OFFSET"),
        (["--resolve", "found@soon"], "--resolve: 'soon' is not a duration"),
        (["--fail", "Zorbalina"], "the contact of --fail is not a known contact"),
        (["--flags", "Zorbalina"], "a flag of --flags is not a known flag"),
        (["--flags", "repeat-episodes"], "registered afresh, so it cannot carry repeat-episodes"),
    ]:
        result = runner.invoke(cli, ["--home", str(home), "playbooks", "simulate", "worrying-situation", *args])
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.stderr
        assert "Zorbalina" not in result.stderr


def test_show_renders_each_text_with_its_segments(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "show", "worrying-situation", "--json"])
    assert result.exit_code == 0, result.output
    steps = {s["id"]: s for s in json.loads(result.stdout)["steps"]}
    alert = steps["alert-youth-prosecutor"]
    assert alert["recipients"] == [PROSECUTOR, PROSECUTOR_BACKUP]
    assert re.match(r"RR-\d{4}-0001: ", alert["text"]) and "ACK 1234" in alert["text"]
    assert (alert["encoding"], alert["segments"]) == ("GSM-7", 1)
    assert alert["escalate_to"] == "coordinator" and alert["ack_within"] == "15m"
    assert steps["on_resolved.found"]["phase"] == steps["on_resolved.withdrawn"]["phase"] == "stand-down"
    assert "melding ingetrokken" in steps["on_resolved.withdrawn"]["text"]
    assert steps["return-interview-due"]["offset"] == "3d after resolution"
    text = runner.invoke(cli, ["--home", str(home), "playbooks", "show", "worrying-situation"]).stdout
    assert "waits 15m for ACK per contact, then coordinator" in text
    assert "GSM-7, " in text and " 1 segment" in text


def test_show_and_simulate_at_80_columns_wrap_under_their_label(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    shown = runner.invoke(cli, ["--home", str(home), "playbooks", "show", "worrying-situation", "--json"])
    steps = {s["id"]: s for s in json.loads(shown.stdout)["steps"]}
    text = runner.invoke(cli, ["--home", str(home), "playbooks", "show", "worrying-situation"]).stdout
    simulated = runner.invoke(cli, ["--home", str(home), "playbooks", "simulate", "worrying-situation",
                                    "--start", "2026-11-29 23:00"]).stdout
    assert [line for line in (text + simulated).splitlines() if len(line) > 80] == []
    lines = text.splitlines()
    start = lines.index(next(x for x in lines if x.startswith("    text: “RR-")))
    said = [lines[start].removeprefix("    text: ")]
    for line in lines[start + 1:]:
        if not line.startswith(" " * 10):  # continuations stand under the text, after its label
            break
        said.append(line.strip())
    assert " ".join(said) == f"“{steps['alert-youth-prosecutor']['text']}”"
    words = {word for line in lines + simulated.splitlines() for word in line.split()}
    assert set(steps) - {"on_resolved.found", "on_resolved.withdrawn"} <= words
    body = [x for x in simulated.splitlines() if x.startswith(" " * 22 + "“")]
    assert body and all(len(x) <= 80 for x in body)


def test_an_answer_nobody_waits_for_is_logged_not_fatal(app: App) -> None:
    sim = run(app, flags=["worrying"], acks=[Action("mandated_agency", timedelta(minutes=5))])
    assert any(e.kind == "simulation.ignored" and "changed nothing" in e.text for e in sim.events)
