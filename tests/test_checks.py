"""`playbooks check`: every problem of every file at once, each on its line, errors fail."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from rapidresponse.checks import check_files
from rapidresponse.cli import cli

CONTACTS = """\
timezone = "Europe/Brussels"
callback = "+32 470 00 00 99"

[roles.youth_prosecutor]
title = "Jeugdparket"
contacts = [
  { name = "Magistraat A", phone = "+32 470 00 00 01" },
  { name = "Magistraat B", phone = "+32 470 00 00 02" },
]

[roles.coordinator]
title = "Coordinatie"
contacts = [
  { name = "Coordinator A", phone = "+32 470 00 00 41" },
  { name = "Coordinator B", phone = "+32 470 00 00 42" },
]
"""

STEP = """
[[steps]]
id = "{id}"
at = "{at}"
role = "{role}"
message = "{{case}}: graad {{grade}}. Bel {{callback}}. Antwoord ACK {{ack}}"
ack_within = "15m"
"""


def playbook(*steps: str, name: str = "test") -> str:
    return f'name = "{name}"\ntitle = "Test"\n' + "".join(steps)


def step(id: str, at: str = "0m", role: str = "youth_prosecutor", **extra: str) -> str:
    text = STEP.format(id=id, at=at, role=role)
    for key, value in extra.items():
        if key == "ack_within":
            text = text.replace('"15m"', value)
        else:
            text = text.replace(f'role = "{role}"', f'role = "{role}"\n{key} = {value}')
    return text


def check(tmp_path: Path, text: str, contacts: str = CONTACTS) -> list[str]:
    path = tmp_path / "test.toml"
    path.write_text(text, encoding="utf-8")
    contacts_path = tmp_path / "contacts.toml"
    contacts_path.write_text(contacts, encoding="utf-8")
    result = check_files(contacts_path, [path], [path])
    return [str(p).replace(f"{tmp_path}/", "") for p in result.problems]


def test_a_clean_playbook_has_no_problem(tmp_path: Path) -> None:
    assert check(tmp_path, playbook(step("alert", escalate_to='"coordinator"'))) == []


def test_an_escalation_cycle_is_an_error_on_the_step_that_closes_it(tmp_path: Path) -> None:
    text = playbook(step("alert", escalate_to='"coordinator"'),
                    step("check", role="coordinator", escalate_to='"youth_prosecutor"'))
    assert check(tmp_path, text) == [
        "test.toml:8: step 'alert': escalation cycle youth_prosecutor → coordinator →"
        " youth_prosecutor: escalation must end with a role that does not escalate back",
    ]


def test_escalating_to_the_own_role_is_an_error(tmp_path: Path) -> None:
    assert check(tmp_path, playbook(step("alert", escalate_to='"youth_prosecutor"'))) == [
        "test.toml:8: step 'alert': escalates to its own role 'youth_prosecutor': nobody new is asked",
    ]


def test_contradictory_when_flags_can_never_fire(tmp_path: Path) -> None:
    # the assessment rules make every suspected victim worrying: the pair never holds
    text = playbook(step("alert", when='["societal-necessity", "suspected-victim", "not worrying"]'))
    assert check(tmp_path, text) == [
        "test.toml:8: step 'alert': can never fire: no assessment has 'suspected-victim' and"
        " 'not worrying' at once",
    ]


def test_a_negated_flag_that_can_hold_is_fine(tmp_path: Path) -> None:
    assert check(tmp_path, playbook(step("alert", when='["alarming", "not worrying"]'))) == []


def test_waiting_longer_than_the_next_step_of_the_role_is_a_warning(tmp_path: Path) -> None:
    text = playbook(step("first", ack_within='"45m"'), step("second", at="30m"))
    problems = check(tmp_path, text)
    assert problems == [
        "test.toml:9: step 'first': warning: ack_within 45m is longer than the 30m until step"
        " 'second' texts youth_prosecutor again",
    ]


def test_steps_that_never_fire_together_do_not_overlap(tmp_path: Path) -> None:
    text = playbook(step("first", ack_within='"45m"', when='["worrying"]'),
                    step("second", at="30m", when='["not worrying"]'))
    assert check(tmp_path, text) == []


def test_a_two_segment_text_is_a_warning_and_a_four_segment_text_an_error(tmp_path: Path) -> None:
    long = "{case}: " + "vermiste minderjarige, " * 7 + "ACK {ack}"
    longer = "{case}: " + "vermiste minderjarige, " * 24 + "ACK {ack}"
    text = playbook(step("two"), step("four", role="coordinator"))
    text = text.replace("{case}: graad {grade}. Bel {callback}. Antwoord ACK {ack}", long, 1)
    text = text.replace("{case}: graad {grade}. Bel {callback}. Antwoord ACK {ack}", longer, 1)
    assert check(tmp_path, text) == [
        "test.toml:8: step 'two': warning: the text takes 2 SMS segments with the longest values"
        " (GSM-7, 183 septets, 2 segments); keep it to 1",
        "test.toml:15: step 'four': the text takes 4 SMS segments with the longest values"
        " (GSM-7, 574 septets, 4 segments); at most 3",
    ]


def test_one_curly_quote_makes_the_whole_text_ucs2(tmp_path: Path) -> None:
    text = playbook(step("alert")).replace("Bel {callback}.", "Bel {callback} ‘dringend’ a.u.b.")
    assert check(tmp_path, text) == [
        "test.toml:8: step 'alert': warning: the text takes 2 SMS segments with the longest values"
        " (UCS-2, 84 units, 2 segments) (UCS-2 because of '‘', '’'); keep it to 1",
    ]


def test_the_role_title_counts_as_the_contacts_file_says(tmp_path: Path) -> None:
    text = playbook(step("alert")).replace("graad {grade}", "{role_title}")
    contacts = CONTACTS.replace('title = "Jeugdparket"', 'title = "Jeugdparket – magistraat van dienst"')
    assert check(tmp_path, text, contacts) == [
        "test.toml:8: step 'alert': warning: the text takes 2 SMS segments with the longest values"
        " (UCS-2, 90 units, 2 segments) (UCS-2 because of '–'); keep it to 1",
        TITLE_WARNING,
    ]


TITLE_WARNING = (
    "test.toml:8: step 'alert': warning: message quotes {role_title}, and the title of role"
    " 'youth_prosecutor' has '–' (not GSM-7): the whole text becomes UCS-2; write plain characters"
    " in the contacts file ('-' for '–')"
)


def test_a_title_outside_gsm7_that_a_text_quotes_is_a_warning_even_when_it_fits(tmp_path: Path) -> None:
    text = playbook(step("alert")).replace("graad {grade}. Bel {callback}. ", "{role_title}. ")
    contacts = CONTACTS.replace('title = "Jeugdparket"', 'title = "Jeugdparket – dienst"')
    assert check(tmp_path, text, contacts) == [TITLE_WARNING]
    assert check(tmp_path, text, CONTACTS) == []


def test_the_example_contacts_titles_are_plain_gsm7() -> None:
    from rapidresponse.app import packaged
    from rapidresponse.contacts import parse_contacts
    from rapidresponse.segments import outside_gsm7

    contacts = parse_contacts(packaged("contacts.example.toml").read_text(encoding="utf-8"))
    assert {r: outside_gsm7(role.title) for r, role in contacts.roles.items() if outside_gsm7(role.title)} == {}


def test_an_hour_nobody_serves_is_a_warning_naming_the_hours(tmp_path: Path) -> None:
    contacts = CONTACTS.replace('"+32 470 00 00 01" }', '"+32 470 00 00 01", hours = "mon-fri 08:00-18:00" }')
    contacts = contacts.replace('"+32 470 00 00 02" }', '"+32 470 00 00 02", hours = "mon-fri 18:00-22:00" }')
    path = tmp_path / "contacts.toml"
    path.write_text(contacts, encoding="utf-8")
    result = check_files(path, [], [path])
    assert [str(p).replace(f"{tmp_path}/", "") for p in result.problems] == [
        f"contacts.toml:4: role 'youth_prosecutor': warning: nobody is on duty {gap} (then every"
        " contact of the role is texted at once)"
        for gap in ("mon 22:00-tue 08:00", "tue 22:00-wed 08:00", "wed 22:00-thu 08:00",
                    "thu 22:00-fri 08:00", "fri 22:00-mon 08:00")
    ]


def test_every_problem_of_every_file_at_once(tmp_path: Path) -> None:
    text = playbook(step("a", role="judge"), step("b", at="soon"), step("a"))
    text += 'owner = "x"\n'
    path = tmp_path / "test.toml"
    path.write_text(text, encoding="utf-8")
    other = tmp_path / "other.toml"
    other.write_text(playbook(step("x", escalate_to='"x"'), name="wrong"), encoding="utf-8")
    contacts = tmp_path / "contacts.toml"
    contacts.write_text(CONTACTS.replace('"+32 470 00 00 02"', '"+32 3 200 00 00"'), encoding="utf-8")
    result = check_files(contacts, [path, other], [contacts, path, other])
    lines = [str(p).replace(f"{tmp_path}/", "") for p in result.problems]
    assert lines == [
        "contacts.toml:4: warning: role 'youth_prosecutor', contact 'Magistraat B': +3232000000 is not a"
        " mobile number",
        "test.toml:7: step 'a': field 'role': the role is not a known role (the contacts file has"
        " coordinator, youth_prosecutor)",
        "test.toml:13: step 'b': field 'at': 'soon' is not a duration (use s, m, h, d: e.g. 90s, 15m, 1h30m)",
        "test.toml:19: step 'a': field 'id': duplicate step id",
        "test.toml:24: step 'a': field 'owner': unknown field",
        "other.toml:1: 'name' is 'wrong' but the file is called 'other.toml': they must match",
        "other.toml:8: step 'x': field 'escalate_to': the role is not a known role (the contacts file has"
        " coordinator, youth_prosecutor)",
    ]


def test_the_command_checks_the_home_and_exits_2_on_an_error(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "check"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # the shipped playbooks and contacts check clean, without a warning
    assert result.stdout == "3 file(s) checked: 0 error(s), 0 warning(s).\n"
    path = home / "playbooks" / "missing-minor.toml"
    path.write_text(path.read_text() + 'escalate_to = "coordinator"\n[[steps]]\nid = "x"\n')
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "check"])
    assert result.exit_code == 2
    assert f"{path}:" in result.stderr and "step 'x': field 'at'" in result.stderr
    assert "4 error(s)" in result.stderr and result.stdout == ""


def test_a_step_reports_every_problem_of_every_field(tmp_path: Path) -> None:
    text = playbook(step("alert", role="nosuchrole").replace("graad {grade}", "{alias} weg"),
                    step("call", call_after='"5m"', voice='"Dossier {case}: {alias}, tienerpooier."'))
    assert check(tmp_path, text) == [
        "test.toml:7: step 'alert': field 'role': the role is not a known role (the contacts file has"
        " coordinator, youth_prosecutor)",
        "test.toml:8: step 'alert': field 'message': '{alias}' would identify the minor: a text carries"
        " the case reference only",
        "test.toml:15: step 'call': field 'voice': '{alias}' would identify the minor: a text carries"
        " the case reference only",
        "test.toml:15: step 'call': field 'voice': the message contains 'tienerpooier…', which reveals"
        " the case on a lock screen",
    ]


def test_errors_and_warnings_come_in_one_stream_by_file_and_line(runner: CliRunner, home: Path,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "test.toml"
    path.write_text(playbook(step("first", ack_within='"45m"'), step("second", at="30m"),
                             step("third", at="soon")))
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "check", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    lines = [line.replace(f"{tmp_path}/", "") for line in result.stderr.splitlines()]
    assert [line.split(": ")[0] for line in lines] == ["test.toml:9", "test.toml:20", "1 file(s) checked"]
    assert "warning: ack_within 45m" in lines[0] and "field 'at'" in lines[1]


def test_warnings_do_not_fail_and_json_lists_them(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "test.toml"
    path.write_text(playbook(step("first", ack_within='"45m"'), step("second", at="30m")))
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "check", "--json", str(path)])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["problems"] == [{
        "level": "warning", "file": str(path), "line": 9, "where": "step 'first'",
        "message": "ack_within 45m is longer than the 30m until step 'second' texts youth_prosecutor again",
    }]


def test_a_missing_file_is_an_error(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "check", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{tmp_path / 'nope.toml'}: no such file\n")
