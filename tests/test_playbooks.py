"""Playbook validation: a coordinator's mistake is caught before a real case meets it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.errors import InputError
from rapidresponse.playbooks import lint_template, parse_playbook, render

ROLES = ["youth_prosecutor", "child_focus", "coordinator", "mandated_agency", "police"]

BASE = """\
name = "test"
title = "Test"

[[steps]]
id = "alert"
at = "0m"
role = "youth_prosecutor"
message = "{case}: graad {grade}. Bel {callback}. ACK {ack}"
ack_within = "15m"
escalate_to = "coordinator"
"""


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_playbook(text, source="test.toml", stem="test", roles=ROLES)


def test_the_shipped_playbooks_are_valid(app: App) -> None:
    names = {p.name for p in app.playbooks()}
    assert names == {"worrying-situation", "missing-minor"}


def test_the_worrying_playbook_follows_the_addendum(app: App) -> None:
    playbook = app.playbook("worrying-situation")
    roles = {s.role for s in playbook.steps}
    assert {"youth_prosecutor", "child_focus", "mandated_agency"} <= roles
    agency = next(s for s in playbook.steps if s.role == "mandated_agency")
    assert agency.when == ("societal-necessity",)
    assert all(s.escalate_to == "coordinator" for s in playbook.steps if s.at.total_seconds() == 0
               and s.ack_within and s.role != "coordinator")
    assert set(playbook.stand_downs) == {"found", "returned", "withdrawn", "other"}
    assert any(s.at.total_seconds() == 72 * 3600 for s in playbook.after_resolved)


def test_the_missing_minor_playbook_alerts_child_focus_police_and_reminds_to_reassess(app: App) -> None:
    playbook = app.playbook("missing-minor")
    assert {s.role for s in playbook.steps} == {"youth_prosecutor", "child_focus", "police",
                                                "mandated_agency", "coordinator"}
    prosecutor = next(s for s in playbook.steps if s.role == "youth_prosecutor")
    assert prosecutor.when == ("alarming",)


def test_a_valid_playbook_parses() -> None:
    playbook = parse(BASE)
    (step,) = playbook.steps
    assert step.at.total_seconds() == 0 and step.ack_within.total_seconds() == 900  # type: ignore[union-attr]
    assert step.notify == "first" and step.base == "registered"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('role = "youth_prosecutor"', 'role = "judge"'), "step 'alert': field 'role': the role is not a known role"),
        (('escalate_to = "coordinator"', 'escalate_to = "boss"'), "field 'escalate_to': the role is not a known role"),
        (('at = "0m"', 'at = "soon"'), "step 'alert': field 'at': 'soon' is not a duration"),
        (('at = "0m"', "at = 5"), "field 'at'"),
        (('ack_within = "15m"', 'ack_within = "15x"'), "field 'ack_within'"),
        (("{grade}", "{colour}"), "unknown field '{colour}'"),
        (("{grade}", "{alias}"), "would identify the minor"),
        (("{grade}", "{birth_date}"), "would identify the minor"),
        (("{grade}", "{last_seen}"), "would identify the minor"),
        (("graad", "tienerpooier"), "reveals the case"),
        (("graad", "prostitutie"), "reveals the case"),
        (("{case}: ", ""), "must carry {case}"),
        ((" ACK {ack}", ""), "must include {ack}"),
        (('id = "alert"', 'id = "Alert Step"'), "field 'id'"),
        (('at = "0m"', 'at = "0m"\nfrom = "tomorrow"'), "field 'from'"),
        (('at = "0m"', 'at = "0m"\nwhen = ["urgent"]'), "a flag is not a known flag (flags: alarming, worrying"),
        (('at = "0m"', 'at = "0m"\nnotify = "some"'), "field 'notify'"),
        (('at = "0m"', 'at = "0m"\nrepeat = -1'), "field 'repeat'"),
        (('at = "0m"', 'at = "0m"\npriority = 1'), "field 'priority': unknown field"),
        (('name = "test"', 'name = "other"'), "file is called 'test.toml'"),
        (('title = "Test"', 'title = "Test"\nowner = "x"'), "unknown key 'owner'"),
        (("{grade}", "{grade!r}"), "format spec or conversion"),
        (("{grade}", "{case.__class__}"), "unknown field"),
    ],
)
def test_mistakes_name_file_step_and_field(change: tuple[str, str], expected: str) -> None:
    text = BASE.replace(*change)
    assert text != BASE
    with pytest.raises(InputError) as info:
        parse(text)
    assert re.match(r"test\.toml:\d+: ", str(info.value))
    assert expected in str(info.value)


def test_duplicate_step_ids_are_refused() -> None:
    with pytest.raises(InputError, match="step 'alert': field 'id': duplicate step id"):
        parse(BASE + BASE[BASE.index("[[steps]]"):])


def test_an_after_resolved_step_counts_from_the_resolution_only() -> None:
    text = BASE + '\n[[after_resolved]]\nid = "later"\nat = "72h"\nfrom = "missing"\nrole = "coordinator"\nmessage = "{case}"\n'
    with pytest.raises(InputError, match="test.toml:15: step 'later': field 'from'"):
        parse(text)


def test_the_stand_down_message_is_linted_too() -> None:
    text = BASE + '\n[on_resolved]\nmessage = "{case}: {alias} is terug"\n'
    with pytest.raises(InputError, match=r"test.toml:13: \[on_resolved\]: field 'message'.*identify"):
        parse(text)


def test_broken_toml_names_the_file() -> None:
    with pytest.raises(InputError, match="test.toml:1: not valid TOML"):
        parse('name = "test\n')


def test_unknown_playbook_lists_the_available_ones(app: App) -> None:
    with pytest.raises(InputError, match="the playbook is not a known playbook.*missing-minor, worrying-situation"):
        app.playbook("nope")


def test_render_fills_only_the_allowed_fields() -> None:
    assert render("{case} {ack}", {"case": "RR-2026-0001", "ack": "1234", "alias": "x"}) == "RR-2026-0001 1234"


def test_lint_accepts_plain_dutch() -> None:
    lint_template("{case}: vermiste minderjarige, graad {grade}. Bel {callback}. Antwoord ACK {ack}")


def test_a_withdraw_message_is_linted_like_every_text() -> None:
    conditional = BASE + 'when = ["societal-necessity"]\n'
    ok = parse(conditional + 'withdraw_message = "{case}: verzoek ingetrokken. Vragen: {callback}."\n')
    assert ok.steps[0].withdraw_message == "{case}: verzoek ingetrokken. Vragen: {callback}."
    for text, problem in [('"{case}: {alias} gevonden"', "identify the minor"),
                          ('"{case}: {bogus}"', "unknown field"),
                          ('"verzoek ingetrokken"', "must carry {case}")]:
        with pytest.raises(InputError, match=re.escape(problem)):
            parse(conditional + f"withdraw_message = {text}\n")
    with pytest.raises(InputError, match="never stops holding"):
        parse(BASE + 'withdraw_message = "{case}: ingetrokken"\n')


def test_playbooks_list_at_80_columns_wraps_each_step_under_itself(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    listed = json.loads(runner.invoke(cli, ["--home", str(home), "playbooks", "list", "--json"]).stdout)
    text = runner.invoke(cli, ["--home", str(home), "playbooks", "list"]).stdout
    lines = text.splitlines()
    assert [line for line in lines if len(line) > 80] == []
    words = {word for line in lines for word in line.split()}
    assert {s["id"] for p in listed for s in p["steps"]} <= words
    assert "0:15:00" not in text and "ack within 15m, then coordinator" in " ".join(" ".join(lines).split())
    continued = [line for line in lines if line.startswith(" " * 25) and line.strip()]
    assert continued  # a step too long for one line goes on under its own text
