"""The case ends in the words of its outcome; the shipped texts say nothing legally wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import assert_no_secrets, register_minor, tick, use_playbook_text
from rapidresponse import engine
from rapidresponse.app import App
from rapidresponse.checks import longest_values
from rapidresponse.cli import cli
from rapidresponse.engine import Context
from rapidresponse.lockscreen import revealing_word
from rapidresponse.playbooks import render
from rapidresponse.segments import measure
from rapidresponse.states import OUTCOMES

SHIPPED = ("worrying-situation", "missing-minor")
SAYS = {
    "found": "Zoekactie afgerond, opvolging loopt",
    "returned": "Zoekactie afgerond, opvolging loopt",
    "withdrawn": "melding ingetrokken",
    "other": "zoekactie afgerond",
}


def stand_downs(ctx: Context, ref: str) -> list[str]:
    case = engine.get_case(ctx.store, ref)
    return [r["body"] for r in ctx.store.all(
        "SELECT body FROM messages WHERE case_id = ? AND kind = 'stand_down'", [case["id"]])]


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_each_outcome_gets_its_own_stand_down_and_after_return_steps_only_when_back(
    app: App, ctx: Context, transport, settings, name: str, outcome: str  # type: ignore[no-untyped-def]
) -> None:
    reg = register_minor(ctx, app, playbook=app.playbook(name))
    tick(ctx, transport, settings)
    result = engine.resolve(ctx, reg.ref, outcome)
    bodies = stand_downs(ctx, reg.ref)
    assert bodies and len(bodies) == result.stand_down
    for body in bodies:
        assert SAYS[outcome] in body and body.startswith(reg.ref)
        assert "geen verdere actie" not in body.lower()
        if outcome == "withdrawn":
            assert "teruggevonden" not in body
    if outcome in ("found", "returned"):
        assert {s["id"] for s in result.after} >= {"return-interview-due"}
    else:
        assert result.after == []  # no return interview for a minor who is not back


def test_an_older_playbook_with_one_message_still_stands_down_every_outcome_and_is_warned(
    app: App, ctx: Context, transport, settings, home: Path  # type: ignore[no-untyped-def]
) -> None:
    old = use_playbook_text(app, "old", """\
name = "old"
title = "Oud"

[[steps]]
id = "alert"
at = "0m"
role = "police"
message = "{case}: vermiste minderjarige. Bel {callback}."

[on_resolved]
message = "{case}: minderjarige teruggevonden. Dank u."
withdrawn = "{case}: melding ingetrokken. Dank u."
""")
    assert old.stand_down_for("found") == old.stand_down_for("other") == old.stand_down
    assert old.stand_down_for("withdrawn") == "{case}: melding ingetrokken. Dank u."
    reg = register_minor(ctx, app, playbook=old)
    tick(ctx, transport, settings)
    engine.resolve(ctx, reg.ref, "withdrawn")
    assert all("melding ingetrokken" in b for b in stand_downs(ctx, reg.ref))
    checked = CliRunner().invoke(cli, ["--home", str(home), "playbooks", "check"])
    assert "old.toml" in checked.output and "one 'message' stands down every outcome" in checked.output


@pytest.mark.parametrize("text", ['[on_resolved]\nfound = "{case}: terug. Geen {name}."',
                                  '[on_resolved]\nlost = "{case}: weg."', "[on_resolved]\n"])
def test_a_bad_stand_down_is_refused_naming_the_outcome(app: App, text: str) -> None:
    from rapidresponse.errors import InputError

    base = 'name = "bad"\n[[steps]]\nid = "a"\nat = "0m"\nrole = "police"\nmessage = "{case}"\n'
    with pytest.raises(InputError, match=r"\[on_resolved\]"):
        use_playbook_text(app, "bad", base + text)


def shipped_texts(app: App) -> list[tuple[str, str, list[str]]]:
    """(where, template, roles it goes to) for every text of the shipped playbooks."""
    found = []
    for name in SHIPPED:
        playbook = app.playbook(name)
        for step in playbook.all_steps():
            found.append((f"{name}/{step.id}", step.message, step.roles()))
        everyone = sorted({r for s in playbook.steps for r in s.roles()})
        for outcome in OUTCOMES:
            found.append((f"{name}/on_resolved.{outcome}", playbook.stand_down_for(outcome) or "",
                          everyone))
    return found


def test_shipped_texts_are_one_gsm7_segment_with_realistic_values_and_reveal_nothing(app: App) -> None:
    for where, template, roles in shipped_texts(app):
        assert template, where
        for role in roles:
            text = render(template, longest_values(app.contacts, role))
            length = measure(text)
            assert length.encoding == "GSM-7" and not length.outside, (where, length)
            assert length.segments == 1, (where, length.units, text)
            assert revealing_word(text) is None, where
            assert "HIGH" not in text and "MEDIUM" not in text and "LOW" not in text
            assert "geen verdere actie" not in text.lower(), where


def test_shipped_texts_speak_dutch_and_never_claim_the_aanmelding(app: App) -> None:
    texts = {where: template for where, template, _ in shipped_texts(app)}
    agency = texts["worrying-situation/ask-mandated-agency"]
    assert "verzoek tot contact i.v.m. aanmelding" in agency
    assert not any(t.startswith("{case}: aanmelding") for t in texts.values())
    # After-return steps run for found and for returned: they must not say "found" only.
    after = [t for w, t in texts.items() if w.startswith("worrying-situation/")
             and w.split("/")[1] in {s.id for s in app.playbook("worrying-situation").after_resolved}]
    assert after and not any("teruggevonden" in t for t in after)
    assert all("risico {grade}" in t for t in texts.values() if "{grade}" in t)
    spoken = [s.voice_template for name in SHIPPED for s in app.playbook(name).all_steps() if s.calls]
    assert spoken and all("risico {grade}" in v for v in spoken if "{grade}" in v)
    assert not any("graad" in v for v in spoken)
    police = app.playbook("worrying-situation").step("main", "inform-police")
    assert police.ack_within and police.escalate_to == "coordinator"  # the search must be confirmed
    magistrate = app.playbook("worrying-situation").step("main", "consult-reference-magistrate")
    assert magistrate.role == "reference_magistrate" and magistrate.when == ("suspected-victim",)
    title = app.contacts.roles["reference_magistrate"].title
    assert title == "Parket - referentiemagistraat" and revealing_word(title) is None


def test_resolve_from_the_cli_sends_the_withdrawn_text(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home)]
    out = runner.invoke(cli, [*base, "register", "--alias", "Fictief", "--birth-date", "2011-03-02",
                              "--missing-since", "now", "--last-seen", "ergens", "--json"])
    ref = json.loads(out.stdout)["case"]
    resolved = runner.invoke(cli, [*base, "resolve", ref, "--outcome", "ingetrokken", "--json"])
    assert resolved.exit_code == 0, resolved.stderr
    payload = json.loads(resolved.stdout)
    assert payload["outcome"] == "withdrawn" and payload["after_resolved"] == []
    assert_no_secrets(resolved.stdout)
