"""Societal necessity is decided by someone, logged, and the response follows from that moment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MINOR, assert_no_secrets, register_minor, tick
from rapidresponse import audit, engine
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.clock import FakeClock
from rapidresponse.decisions import decide
from rapidresponse.engine import Context
from rapidresponse.errors import InputError
from rapidresponse.review import status, undecided_cases
from rapidresponse.timeutil import to_iso

AGENCY = ("+32470000021", "+32470000022")
WHY = f"{MINOR['alias']} was seen with older men"  # a reason may name the minor


def step_states(ctx: Context, ref: str) -> dict[str, str]:
    case = engine.get_case(ctx.store, ref)
    rows = ctx.store.all("SELECT step_key, state FROM steps WHERE case_id = ? ORDER BY id", [case["id"]])
    return {r["step_key"]: r["state"] for r in rows}


def agency_texts(transport) -> list[str]:  # type: ignore[no-untyped-def]
    return [body for to, body in transport.sent if to in AGENCY]


def test_a_worrying_case_starts_undecided_and_the_coordinator_is_asked(
    app: App, ctx: Context, transport, settings  # type: ignore[no-untyped-def]
) -> None:
    reg = register_minor(ctx, app)
    case = engine.get_case(ctx.store, reg.ref)
    assert case["societal_necessity"] == "undecided" and case["necessity_decided_by"] is None
    tick(ctx, transport, settings)
    assert step_states(ctx, reg.ref)["decide-societal-necessity"] == "active"
    assert "ask-mandated-agency" not in step_states(ctx, reg.ref)
    assert not agency_texts(transport)  # never presumed: nothing goes to OCJ/VK
    [asked] = [b for to, b in transport.sent if to == "+32470000041"]
    assert "maatschappelijke noodzaak" in asked and asked.startswith(reg.ref)


@pytest.mark.parametrize("value", ["yes", "suspected"])
def test_yes_or_suspected_asks_the_agency_for_contact_from_that_moment(
    app: App, ctx: Context, clock: FakeClock, transport, settings, value: str  # type: ignore[no-untyped-def]
) -> None:
    reg = register_minor(ctx, app)
    tick(ctx, transport, settings)
    clock.advance(minutes=25)
    result = decide(ctx, reg.ref, value, WHY)
    assert (result.before, result.after) == ("undecided", value)
    assert result.cancelled == ["decide-societal-necessity"]  # the question is answered
    assert [(s["id"], s["due_at"]) for s in result.planned if s["id"] == "ask-mandated-agency"] == [
        ("ask-mandated-agency", to_iso(clock.now()))]
    tick(ctx, transport, settings)
    [text] = agency_texts(transport)
    assert "verzoek tot contact i.v.m. aanmelding" in text and text.startswith(reg.ref)
    case = engine.get_case(ctx.store, reg.ref)
    assert case["societal_necessity"] == value and case["necessity_decided_by"] == "officer-test"
    assert case["necessity_decided_at"] == to_iso(clock.now())
    assert "societal-necessity" in json.loads(case["flags"])
    assert "societal-necessity-undecided" not in json.loads(case["flags"])
    [event] = [e for e in audit.events(ctx.store, reg.ref) if e["kind"] == "case.decided"]
    assert event["actor"] == "officer-test" and event["detail"]["societal_necessity"] == value
    assert set(event["detail"]["why"]) == {"id"}  # the reason is a note; the log has its id
    note = ctx.store.scalar("SELECT text FROM notes WHERE id = ?", [event["detail"]["why"]["id"]])
    assert note == WHY
    assert_no_secrets(json.dumps(list(audit.events(ctx.store))))


def test_no_sends_nothing_and_stops_the_question(
    app: App, ctx: Context, transport, settings  # type: ignore[no-untyped-def]
) -> None:
    reg = register_minor(ctx, app)
    tick(ctx, transport, settings)
    result = decide(ctx, reg.ref, "no", "the parents cooperate")
    assert result.cancelled == ["decide-societal-necessity"] and result.planned == []
    tick(ctx, transport, settings)
    assert not agency_texts(transport)
    assert step_states(ctx, reg.ref)["decide-societal-necessity"] == "cancelled"


def test_changing_yes_to_no_cancels_the_request_not_yet_answered_and_back_plans_it_again(
    app: App, ctx: Context, clock: FakeClock, transport, settings  # type: ignore[no-untyped-def]
) -> None:
    reg = register_minor(ctx, app, societal_necessity="yes", reason=WHY)
    assert "decide-societal-necessity" not in step_states(ctx, reg.ref)  # decided at registration
    tick(ctx, transport, settings)
    assert len(agency_texts(transport)) == 1
    clock.advance(minutes=5)
    lowered = decide(ctx, reg.ref, "no", "it was a misunderstanding")
    assert "ask-mandated-agency" in lowered.cancelled and "confirm-aanmelding" in lowered.cancelled
    clock.advance(minutes=5)
    again = decide(ctx, reg.ref, "suspected", "new information")
    assert {s["id"] for s in again.planned} == {"ask-mandated-agency", "confirm-aanmelding"}
    tick(ctx, transport, settings)
    _asked, withdrawn, asked_again = agency_texts(transport)
    assert "ingetrokken" in withdrawn and "ingetrokken" not in asked_again
    kinds = [e["detail"]["societal_necessity"] for e in audit.events(ctx.store, reg.ref)
             if e["kind"] == "case.decided"]
    assert kinds == ["yes", "no", "suspected"]


def test_yes_to_suspected_changes_nothing_that_is_sent(
    app: App, ctx: Context, transport, settings  # type: ignore[no-untyped-def]
) -> None:
    reg = register_minor(ctx, app, societal_necessity="yes", reason=WHY)
    tick(ctx, transport, settings)
    result = decide(ctx, reg.ref, "suspected", "less sure now")
    assert result.cancelled == [] and result.planned == []
    tick(ctx, transport, settings)
    assert len(agency_texts(transport)) == 1


def test_a_decision_needs_a_reason_a_value_and_an_open_case(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app)
    with pytest.raises(InputError, match="needs --reason"):
        decide(ctx, reg.ref, "yes", " ")
    with pytest.raises(InputError, match="'undecided' is where a case starts"):
        decide(ctx, reg.ref, "undecided", "why")
    with pytest.raises(InputError, match="needs --reason"):
        register_minor(ctx, app, societal_necessity="yes", new_episode=True)
    engine.resolve(ctx, reg.ref, "found")
    with pytest.raises(InputError, match="open cases"):
        decide(ctx, reg.ref, "yes", "late")


def test_status_lists_worrying_cases_nobody_decided_in_time(
    app: App, ctx: Context, clock: FakeClock, settings  # type: ignore[no-untyped-def]
) -> None:
    reg = register_minor(ctx, app)
    register_minor(ctx, app, indicators=(), new_episode=True)  # not worrying: nobody needs to decide
    clock.advance(minutes=59)
    assert undecided_cases(ctx.store, clock.now()) == []
    clock.advance(minutes=1)  # the asking step's ack_within (1h) has passed
    [late] = status(ctx.store, clock.now(), settings)["undecided_necessity"]
    assert late["case_ref"] == reg.ref
    assert status(ctx.store, clock.now(), settings)["needs_attention"]
    decide(ctx, reg.ref, "no", "no need")
    assert undecided_cases(ctx.store, clock.now()) == []


def test_decide_from_the_cli_and_status_says_what_to_do(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home)]
    registered = runner.invoke(cli, [*base, "register", "--alias", MINOR["alias"], "--birth-date",
                                     MINOR["birth_date"], "--missing-since", "2h ago", "--last-seen",
                                     MINOR["last_seen"], "--indicator", "hotel", "--json"])
    assert registered.exit_code == 0, registered.stderr
    ref = json.loads(registered.stdout)["case"]
    shown = runner.invoke(cli, [*base, "status"])
    assert "SOCIETAL NECESSITY UNDECIDED" not in shown.stdout  # registered just now
    human = runner.invoke(cli, [*base, "register", "--alias", "Ander", "--birth-date", "2011-05-05",
                                "--missing-since", "now", "--last-seen", "x", "--indicator", "hotel"])
    assert "Societal necessity is undecided" in human.stdout and "rapidresponse decide RR-" in human.stdout
    missing = runner.invoke(cli, [*base, "decide", ref, "--societal-necessity", "yes"])
    assert missing.exit_code == 2 and "--reason" in missing.stderr
    out = runner.invoke(cli, [*base, "decide", ref, "--societal-necessity", "Suspected",
                              "--reason", WHY, "--json"])
    assert out.exit_code == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["societal_necessity"] == "suspected" and payload["before"] == "undecided"
    assert "ask-mandated-agency" in {s["id"] for s in payload["planned"]}
    assert_no_secrets(out.stdout + out.stderr)
    show = runner.invoke(cli, [*base, "show", ref, "--json"])
    view = json.loads(show.stdout)
    assert view["societal_necessity"] == "suspected" and view["necessity_decided_by"] == "officer-test"
    assert any(n["kind"] == "decision" and n["text"] == WHY for n in view["notes"])
    human = runner.invoke(cli, [*base, "show", ref])
    assert "societal necessity: suspected" in human.stdout and "decided by officer-test" in human.stdout


def test_status_on_the_command_line_names_the_undecided_case_and_the_command(home: Path) -> None:
    import time_machine

    runner = CliRunner()
    base = ["--home", str(home)]
    with time_machine.travel(datetime(2026, 11, 28, 13, 0, tzinfo=UTC), tick=False) as traveller:
        out = runner.invoke(cli, [*base, "register", "--alias", MINOR["alias"], "--birth-date",
                                  MINOR["birth_date"], "--missing-since", "now", "--last-seen",
                                  MINOR["last_seen"], "--indicator", "older-partner", "--json"])
        ref = json.loads(out.stdout)["case"]
        traveller.shift(timedelta(minutes=61))
        shown = runner.invoke(cli, [*base, "status"])
        assert shown.exit_code == 1
        [line] = [x for x in shown.stdout.splitlines() if "SOCIETAL NECESSITY UNDECIDED" in x]
        assert ref in line and f"rapidresponse decide {ref}" in line
        assert_no_secrets(shown.stdout + shown.stderr)
        runner.invoke(cli, [*base, "decide", ref, "--societal-necessity", "nee", "--reason", "geen"])
        assert "SOCIETAL NECESSITY UNDECIDED" not in runner.invoke(cli, [*base, "status"]).stdout


def test_deciding_no_after_the_agency_was_texted_withdraws_the_request(
    app: App, ctx: Context, clock: FakeClock, transport, settings  # type: ignore[no-untyped-def]
) -> None:
    """The agency was asked for contact about an aanmelding: 'no' tells every number that got
    (or may have got) the request, in one GSM-7 segment, the case reference only; logged."""
    from rapidresponse.segments import measure

    reg = register_minor(ctx, app, societal_necessity="yes", reason=WHY)
    tick(ctx, transport, settings)
    [(asked, _)] = [(to, body) for to, body in transport.sent if to in AGENCY]
    clock.advance(minutes=20)
    decide(ctx, reg.ref, "no", WHY)
    tick(ctx, transport, settings)
    withdrawn = [(to, body) for to, body in transport.sent if to in AGENCY][1:]
    assert withdrawn == [(asked, f"{reg.ref}: verzoek tot contact i.v.m. aanmelding ingetrokken."
                                 f" Vragen: {app.contacts.callback_display}.")]
    length = measure(withdrawn[0][1])
    assert length.segments == 1 and not length.outside
    assert_no_secrets(withdrawn[0][1])
    events = list(audit.events(ctx.store, reg.ref))
    [told] = [e for e in events if e["kind"] == "step.withdrawn"]
    assert told["detail"] == {"step": "ask-mandated-agency", "role": "mandated_agency", "messages": 1}
    assert any(e["kind"] == "sms.stand_down" and e["detail"]["to"] == asked for e in events)
    decide(ctx, reg.ref, "no", "still no")  # nothing held that stopped holding: nobody told twice
    tick(ctx, transport, settings)
    assert len([to for to, _ in transport.sent if to in AGENCY]) == 2


def test_deciding_no_before_the_request_went_out_sends_the_agency_nothing(
    app: App, ctx: Context, transport, settings  # type: ignore[no-untyped-def]
) -> None:
    reg = register_minor(ctx, app, societal_necessity="yes", reason=WHY)
    decide(ctx, reg.ref, "no", WHY)  # the request was still queued: cancelled, never sent
    tick(ctx, transport, settings)
    assert not agency_texts(transport)
    assert not [e for e in audit.events(ctx.store, reg.ref) if e["kind"] == "step.withdrawn"]


def test_a_case_not_judged_worrying_may_be_decided_but_is_not_called_worrying(
    app: App, ctx: Context, clock: FakeClock, transport, settings  # type: ignore[no-untyped-def]
) -> None:
    """One risk factor: not a worrying situation, missing-minor playbook. Societal necessity is a
    named professional's judgement, not the signals', so it may be decided here too; the agency is
    asked for contact on that decision, and the text never calls the case a verontrustende
    situatie. 'No' later withdraws the request, as in the worrying playbook."""
    from rapidresponse.segments import measure

    reg = register_minor(ctx, app, indicators=("school-absence",))
    assert (reg.assessment.worrying, reg.playbook.name) == (False, "missing-minor")
    tick(ctx, transport, settings)
    assert not agency_texts(transport)  # nobody decided: nothing to OCJ/VK
    clock.advance(minutes=10)
    decided = decide(ctx, reg.ref, "yes", WHY)
    assert {s["id"] for s in decided.planned} == {"ask-mandated-agency", "confirm-aanmelding"}
    tick(ctx, transport, settings)
    [asked] = agency_texts(transport)
    assert asked.startswith(reg.ref) and "verontrust" not in asked
    assert "verzoek tot contact i.v.m. aanmelding (maatschappelijke noodzaak)" in asked
    assert measure(asked).segments == 1 and not measure(asked).outside
    assert_no_secrets(asked)
    clock.advance(minutes=10)
    decide(ctx, reg.ref, "no", "de ouders werken mee")
    tick(ctx, transport, settings)
    _, withdrawn = agency_texts(transport)
    assert withdrawn.startswith(reg.ref) and "ingetrokken" in withdrawn
