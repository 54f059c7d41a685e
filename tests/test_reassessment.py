"""Re-assessment: new signals raise the response, and the log records who, when and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MINOR, assert_no_secrets, register_minor, tick
from rapidresponse import audit, engine
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.engine import Context
from rapidresponse.errors import InputError
from rapidresponse.reassessment import reassess
from rapidresponse.timeutil import to_iso


def steps(ctx: Context, ref: str) -> dict[str, list[str]]:
    case = engine.get_case(ctx.store, ref)
    found: dict[str, list[str]] = {}
    for row in ctx.store.all("SELECT step_key, state FROM steps WHERE case_id = ? ORDER BY id", [case["id"]]):
        found.setdefault(row["step_key"], []).append(row["state"])
    return found


def test_a_case_that_becomes_worrying_moves_to_the_worrying_playbook(app: App, ctx: Context, clock, transport, settings) -> None:  # type: ignore[no-untyped-def]
    reg = register_minor(ctx, app, indicators=())
    assert reg.playbook.name == "missing-minor"
    tick(ctx, transport, settings)
    clock.advance(minutes=40)
    result = reassess(ctx, reg.ref, reason="friend says she met an older man", playbook_for=app.playbook_for,
                      indicators=("older-partner", "gifts-money"))
    assert result.before == {"alarming": False, "worrying": False, "grade": "LOW",
                             "flags": ["societal-necessity-undecided"]}
    assert result.after.worrying and result.after.alarming and result.after.grade == "HIGH"
    assert result.playbook_changed == "worrying-situation"
    assert "reassess-reminder" in result.cancelled
    sent_before = len(transport.sent)
    tick(ctx, transport, settings)
    texts = [body for _, body in transport.sent[sent_before:]]
    assert any("verontrustende situatie" in t for t in texts)  # the prosecutor is alerted now
    history = steps(ctx, reg.ref)
    assert history["alert-child-focus"][0] == "cancelled"  # old generation
    assert history["alert-child-focus"][1] == "active"  # alerted again, now as worrying
    assert history["reassess-reminder"] == ["cancelled"]
    case = engine.get_case(ctx.store, reg.ref)
    assert case["playbook"] == "worrying-situation" and case["grade"] == "HIGH"
    kinds = [e["kind"] for e in audit.events(ctx.store, reg.ref)]
    assert "case.playbook_changed" in kinds
    assessed = [e for e in audit.events(ctx.store, reg.ref) if e["kind"] == "case.assessed"][-1]
    assert assessed["actor"] == "officer-test" and assessed["detail"]["reassessment"] is True
    assert set(assessed["detail"]["why"]) == {"id"}  # the reason itself stays with the case
    assert "older man" not in json.dumps(assessed)
    assert audit.verify(ctx.store).ok


def test_a_new_flag_adds_the_steps_it_enables_on_the_same_playbook(app: App, ctx: Context, clock, transport, settings) -> None:  # type: ignore[no-untyped-def]
    reg = register_minor(ctx, app, indicators=("medical-needs",), playbook=app.playbook("worrying-situation"))
    assert "alert-youth-prosecutor" not in steps(ctx, reg.ref)  # alarming, but not (yet) worrying
    tick(ctx, transport, settings)
    clock.advance(minutes=20)
    result = reassess(ctx, reg.ref, reason="signs of exploitation", playbook_for=app.playbook_for,
                      indicators=("hotel",))
    assert result.playbook_changed is None
    assert [s["id"] for s in result.planned] == ["alert-youth-prosecutor", "consult-reference-magistrate",
                                                 "decide-societal-necessity"]
    assert {s["due_at"] for s in result.planned} == {to_iso(clock.now())}  # from this moment
    tick(ctx, transport, settings)
    assert steps(ctx, reg.ref)["alert-youth-prosecutor"] == ["active"]


def test_indicators_accumulate_and_suspicion_stays(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app, indicators=("hotel",))
    result = reassess(ctx, reg.ref, reason="school called", playbook_for=app.playbook_for,
                      indicators=("school-absence",))
    assert result.after.indicators == ("hotel", "school-absence") and result.after.suspected_victim


def test_reassessment_needs_a_reason_and_an_open_case(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app)
    with pytest.raises(InputError, match="say why"):
        reassess(ctx, reg.ref, reason=" ", playbook_for=app.playbook_for)
    engine.resolve(ctx, reg.ref, "found")
    with pytest.raises(InputError, match="only open cases"):
        reassess(ctx, reg.ref, reason="late news", playbook_for=app.playbook_for)
    with pytest.raises(InputError, match="unknown indicator"):
        reassess(ctx, register_minor(ctx, app).ref, reason="x", playbook_for=app.playbook_for,
                 indicators=("nonsense",))


def test_keep_playbook_stays_put(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app, indicators=())
    result = reassess(ctx, reg.ref, reason="suspicion", playbook_for=app.playbook_for,
                      suspected_victim=True, keep_playbook=True)
    assert result.after.worrying and result.playbook_changed is None


def test_earlier_episodes_of_the_same_minor_are_found(app: App, ctx: Context, clock) -> None:  # type: ignore[no-untyped-def]
    first = register_minor(ctx, app)
    engine.resolve(ctx, first.ref, "returned")
    clock.advance(days=10)
    second = register_minor(ctx, app)
    engine.resolve(ctx, second.ref, "returned")
    clock.advance(days=25)  # the first is now more than 30 days before this one
    third = register_minor(ctx, app)
    assert second.earlier_episodes == [first.ref]
    assert third.earlier_episodes == [first.ref, second.ref]  # every episode stays linked
    assert third.recent_episodes == [second.ref]  # but only one was in the last 30 days


def test_reassess_from_the_cli_and_the_multi_agency_warning(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home)]
    register = [*base, "register", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
                "--missing-since", "now", "--last-seen", MINOR["last_seen"]]
    refs = [json.loads(runner.invoke(cli, [*register, "--json"]).stdout)["case"]]
    refused = runner.invoke(cli, register)  # the same minor, still open
    assert refused.exit_code == 2 and refs[0] in refused.stderr
    register.append("--new-episode")
    refs.append(json.loads(runner.invoke(cli, [*register, "--json"]).stdout)["case"])
    third = runner.invoke(cli, register)
    assert "Earlier episodes of this minor" in third.stdout and "multi-agency meeting" in third.stdout
    assert "repeat-runaway" in third.stdout
    ref = refs[0]
    out = runner.invoke(cli, [*base, "reassess", ref, "--indicator", "repeat-runaway",
                              "--indicator", "school-absence", "--reason", f"{MINOR['alias']} ran away three times", "--json"])
    assert out.exit_code == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["worrying"] and payload["playbook_changed"] == "worrying-situation"
    assert payload["risk_factors"] == ["school-absence", "repeat-runaway"]
    assert_no_secrets(out.stderr)
    shown = runner.invoke(cli, [*base, "show", ref])
    assert "ran away three times" in shown.stdout  # the officer sees the reason with the case
    bad = runner.invoke(cli, [*base, "reassess", ref, "--reason", "x", "--indicator", "nope"])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_lowering_a_suspicion_needs_the_officer_and_the_case_follows(app: App, ctx: Context, transport, settings) -> None:  # type: ignore[no-untyped-def]
    reg = register_minor(ctx, app, indicators=("hotel",))
    tick(ctx, transport, settings)
    kept = reassess(ctx, reg.ref, reason="school called", playbook_for=app.playbook_for,
                    indicators=("school-absence",))
    assert kept.after.suspected_victim  # signals never lower it by themselves
    lowered = reassess(ctx, reg.ref, reason="the hotel was a school trip", playbook_for=app.playbook_for,
                       suspected_victim=False)
    assert not lowered.after.suspected_victim and lowered.after.victim_judgement == "lowered"
    assert set(lowered.cancelled) >= {"alert-youth-prosecutor", "consult-reference-magistrate",
                                      "decide-societal-necessity"}
    [event] = [e for e in audit.events(ctx.store, reg.ref) if e["kind"] == "steps.cancelled"]
    assert event["detail"]["why"] == "its flags no longer hold" and event["actor"] == "officer-test"
    still = reassess(ctx, reg.ref, reason="nothing new", playbook_for=app.playbook_for)
    assert not still.after.suspected_victim  # lowered stays lowered without new signals
    raised = reassess(ctx, reg.ref, reason="new: a second phone", playbook_for=app.playbook_for,
                      indicators=("multiple-phones",))
    assert raised.after.suspected_victim and raised.after.victim_judgement is None
    assert "alert-youth-prosecutor" in {s["id"] for s in raised.planned}  # planned anew


def test_a_stated_suspicion_stays_until_lowered(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app, indicators=(), suspected_victim=True)
    again = reassess(ctx, reg.ref, reason="new facts", playbook_for=app.playbook_for,
                     indicators=("school-absence",))
    assert again.after.suspected_victim and again.after.victim_judgement == "stated"
