"""The duty officer's commands, through click's CliRunner and as real processes."""

from __future__ import annotations

import json
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner, Result

from conftest import MINOR, assert_no_secrets, run_cli
from rapidresponse import __version__
from rapidresponse.cli import cli
from rapidresponse.errors import InputError
from rapidresponse.timeutil import parse_when

BRUSSELS = ZoneInfo("Europe/Brussels")


def invoke(runner: CliRunner, home: Path, *args: str) -> Result:
    return runner.invoke(cli, ["--home", str(home), *args], catch_exceptions=False)


def register_args(**overrides: str) -> list[str]:
    values = {"--alias": MINOR["alias"], "--birth-date": MINOR["birth_date"],
              "--missing-since": "1h ago", "--last-seen": MINOR["last_seen"]}
    values.update(overrides)
    args = ["register"]
    for key, value in values.items():
        args += [key, value]
    return args


def register_json(runner: CliRunner, home: Path, *extra: str, **overrides: str) -> dict[str, Any]:
    result = invoke(runner, home, *register_args(**overrides), *extra, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def counts(home: Path) -> tuple[int, int, int, int]:
    conn = sqlite3.connect(home / "rapidresponse.db")
    try:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                     for t in ("cases", "persons", "events", "messages"))
    finally:
        conn.close()


def all_commands() -> list[list[str]]:
    import click

    found = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None, f"{name} is listed but does not load"
        found.append([name])
        for sub in getattr(command, "commands", {}):
            found.append([name, sub])
    return found


def test_every_module_command_is_listed() -> None:
    """A command added to a module's COMMANDS but not to COMMAND_MODULES would be unreachable."""
    import importlib

    from rapidresponse.cli import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        for command in importlib.import_module(f"rapidresponse.cli.{module}").COMMANDS:
            assert COMMAND_MODULES.get(command.name) == module


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


@pytest.mark.parametrize("command", all_commands(), ids=" ".join)
def test_every_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.stdout


def test_init_creates_a_private_home_and_is_idempotent(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    first = invoke(runner, home, "init")
    assert first.exit_code == 0 and "created" in first.stdout
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "rapidresponse.db").stat().st_mode) == 0o600
    assert (home / "contacts.toml").exists()
    assert {p.name for p in (home / "playbooks").iterdir()} == {"worrying-situation.toml", "missing-minor.toml"}
    edited = (home / "contacts.toml").read_text() + "\n# edited by the coordinator\n"
    (home / "contacts.toml").write_text(edited)
    second = invoke(runner, home, "init")
    assert second.exit_code == 0 and "created" not in second.stdout
    assert (home / "contacts.toml").read_text() == edited


def test_commands_before_init_say_what_to_do(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, tmp_path / "nothing", "cases")
    assert result.exit_code == 1
    assert "rapidresponse init" in result.stderr and "Traceback" not in result.output


def test_register_a_worrying_case(runner: CliRunner, home: Path) -> None:
    out = register_json(runner, home, "--indicator", "older-partner", "--indicator", "hotel")
    assert out["case"] == f"RR-{datetime.now(BRUSSELS).year}-0001"
    assert out["worrying"] is True and out["grade"] == "HIGH" and out["playbook"] == "worrying-situation"
    assert out["alarming"] is True and out["suspected_victim"] is True
    assert out["societal_necessity"] == "undecided"
    assert out["red_flags"] == ["older-partner", "hotel"] and out["risk_factors"] == []
    assert set(out["flags"]) == {"alarming", "worrying", "suspected-victim", "grade-high",
                                 "societal-necessity-undecided"}
    assert out["reasons"]
    assert {s["id"] for s in out["steps"]} >= {"alert-youth-prosecutor", "alert-child-focus",
                                               "decide-societal-necessity"}
    assert "ask-mandated-agency" not in {s["id"] for s in out["steps"]}  # nobody decided yet
    for step in out["steps"]:
        assert set(step) >= {"id", "role", "due_at", "state"}
    sent_roles = {m["role"] for m in out["sent"] if m["state"] == "sent"}
    assert {"youth_prosecutor", "child_focus", "coordinator"} <= sent_roles
    assert "mandated_agency" not in sent_roles
    for message in out["sent"]:
        assert set(message) >= {"role", "contact", "to", "state"}


def test_register_a_case_that_is_not_worrying(runner: CliRunner, home: Path) -> None:
    out = register_json(runner, home)
    assert out["worrying"] is False and out["grade"] == "LOW" and out["playbook"] == "missing-minor"
    assert {m["role"] for m in out["sent"]} == {"child_focus", "police"}


def test_references_are_sequential_and_unique(runner: CliRunner, home: Path) -> None:
    refs = [register_json(runner, home, "--new-episode")["case"] for _ in range(3)]
    assert [r[-4:] for r in refs] == ["0001", "0002", "0003"]


def test_no_societal_necessity_skips_the_mandated_agency_and_the_question(
    runner: CliRunner, home: Path
) -> None:
    out = register_json(runner, home, "--suspected-victim", "--societal-necessity", "no",
                        "--reason", "parents cooperate")
    assert out["worrying"] and out["societal_necessity"] == "no"
    assert not {"ask-mandated-agency", "decide-societal-necessity"} & {s["id"] for s in out["steps"]}


def test_playbook_option_overrides_the_choice(runner: CliRunner, home: Path) -> None:
    out = register_json(runner, home, "--suspected-victim", "--playbook", "missing-minor")
    assert out["worrying"] and out["playbook"] == "missing-minor"


def test_register_for_people_shows_reference_reasons_steps_and_warns_without_daemon(
    runner: CliRunner, home: Path
) -> None:
    result = invoke(runner, home, *register_args(), "--suspected-victim")
    assert result.exit_code == 0
    assert "RR-" in result.stdout and "WORRYING SITUATION" in result.stdout
    assert "alert-youth-prosecutor" in result.stdout and "addendum" in result.stdout
    assert "no rapidresponse daemon is running" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "extra", "expected"),
    [
        ({"--birth-date": "2031-01-01"}, [], "birth date is after"),
        ({"--birth-date": "2000-01-01"}, [], "rapidresponse is for minors"),
        ({"--birth-date": "31/02/2011"}, [], "--birth-date is not a date in the calendar"),
        ({"--missing-since": "in 2 hours"}, [], "is not a time"),
        ({"--missing-since": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}, [], "in the future"),
        ({"--alias": "  "}, [], "--alias is empty"),
        ({}, ["--indicator", "boyfriend"], "unknown indicator (choose from"),
        ({}, ["--playbook", "nope"], "the playbook is not a known playbook"),
        ({}, ["--placement", "street"], "the value of --placement is not a known placement"),
        ({}, ["--colour", "red"], "No such option"),
    ],
)
def test_bad_input_gets_one_sentence_exit_2_and_writes_nothing(
    runner: CliRunner, home: Path, overrides: dict[str, str], extra: list[str], expected: str
) -> None:
    before = counts(home)
    result = invoke(runner, home, *register_args(**overrides), *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0]
    assert counts(home) == before


@pytest.mark.parametrize(
    ("option", "typed"),
    [("--birth-date", "2011-13-02"), ("--birth-date", "Kwikstaartplein"),
     ("--missing-since", "Kwikstaartplein Vlinderdorp"), ("--missing-since", "Zorbalina ago")],
)
def test_a_mistyped_field_is_never_quoted_back(runner: CliRunner, home: Path, option: str, typed: str) -> None:
    """An officer may type the alias or the place into the wrong field: errors name the field only."""
    result = invoke(runner, home, *register_args(**{option: typed}))
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {option} is not a")
    assert typed not in result.stderr and "2011-13" not in result.stderr
    assert_no_secrets(result.output)


@pytest.mark.parametrize(
    "args",
    [
        register_args(**{"--missing-since": "99999999d ago"}),
        register_args(**{"--missing-since": "0001-01-01 00:00"}),
        register_args(**{"--missing-since": "3651d ago"}),
        ["report", "--since", "9999999d"],
        ["report", "--since", "9" * 5000 + "d"],
        ["purge", "--resolved-before", "99999999999d"],
    ],
    ids=["ago", "year-1", "just-over-ten-years", "report", "report-5000-digits", "purge"],
)
def test_absurd_durations_and_dates_are_bad_input(runner: CliRunner, home: Path, args: list[str]) -> None:
    before = counts(home)
    result = invoke(runner, home, *args)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "internal error" not in line and len(line) < 200
    assert counts(home) == before


NOT_UTF8 = b"Zorb\xffalina".decode("utf-8", "surrogateescape")  # what Python makes of such bytes


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (register_args(**{"--alias": NOT_UTF8}), "--alias"),
        (register_args(**{"--last-seen": NOT_UTF8}), "--last-seen"),
        (register_args(**{"--name": NOT_UTF8}), "--name"),
        (register_args(**{"--missing-since": NOT_UTF8}), "--missing-since"),
        (["note", "{ref}", NOT_UTF8], "the TEXT argument"),
        (["reassess", "{ref}", "--reason", NOT_UTF8], "--reason"),
        (["ack", "{ref}", "--role", "police", "--note", NOT_UTF8], "--note"),
        (["resolve", "{ref}", "--outcome", "found", "--note", NOT_UTF8], "--note"),
        (["show", NOT_UTF8], "the CASE argument"),
        (["--operator", NOT_UTF8, "note", "{ref}", "text"], "--operator"),
    ],
)
def test_text_that_is_not_utf8_is_refused_without_quoting_it(
    runner: CliRunner, home: Path, args: list[str], named: str,
) -> None:
    ref = register_json(runner, home)["case"]
    before = counts(home)
    result = invoke(runner, home, *[a.replace("{ref}", ref) for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: {named} is not valid UTF-8 text: check the terminal's encoding" \
                            " and type it again\n"
    assert counts(home) == before


def test_an_operator_name_from_the_environment_that_is_not_utf8_is_refused(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAPIDRESPONSE_OPERATOR", NOT_UTF8)
    result = invoke(runner, home, *register_args())
    assert result.exit_code == 2 and result.stderr.startswith("Error: RAPIDRESPONSE_OPERATOR is not valid")
    assert counts(home) == (0, 0, 0, 0)


def test_every_free_text_option_refuses_what_is_not_utf8() -> None:
    """A new option without `type=TEXT` would crash on such bytes only when stored."""
    from rapidresponse.cli import cases, coordinator
    from rapidresponse.cli.common import TEXT

    commands = [cli, *cases.COMMANDS, *coordinator.COMMANDS]
    commands += [sub for group in coordinator.COMMANDS for sub in group.commands.values()]
    plain = [f"{command.name} {param.name}" for command in commands for param in command.params
             if param.type is click.STRING]
    assert plain == []
    assert any(param.type is TEXT for param in cli.params)


def test_bytes_that_are_not_utf8_from_a_real_shell(home: Path) -> None:
    result = run_cli(*register_args(**{"--alias": NOT_UTF8}), home=home)  # argv gets the raw byte
    assert result.returncode == 2 and result.stderr.startswith("Error: --alias is not valid UTF-8")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert counts(home) == (0, 0, 0, 0)


def test_malformed_playbook_is_refused_before_anything_is_written(runner: CliRunner, home: Path) -> None:
    path = home / "playbooks" / "missing-minor.toml"
    path.write_text(path.read_text().replace('at = "2h"', 'at = "two hours"'))
    before = counts(home)
    result = invoke(runner, home, *register_args())
    assert result.exit_code == 2
    line = 1 + path.read_text().splitlines().index('at = "two hours"')
    assert f"missing-minor.toml:{line}: step 'reassess-reminder': field 'at'" in result.stderr
    assert counts(home) == before


def test_ack_stops_escalation_for_that_role(runner: CliRunner, home: Path) -> None:
    ref = register_json(runner, home, "--suspected-victim")["case"]
    result = invoke(runner, home, "ack", ref, "--role", "youth_prosecutor", "--note", "magistrate called back")
    assert result.exit_code == 0 and "alert-youth-prosecutor" in result.stdout
    shown = json.loads(invoke(runner, home, "show", ref, "--json").stdout)
    step = next(s for s in shown["steps"] if s["id"] == "alert-youth-prosecutor")
    assert step["state"] == "acknowledged" and step["finished_by"] == "officer-test"
    again = invoke(runner, home, "ack", ref, "--role", "youth_prosecutor")
    assert again.exit_code == 2 and "nothing of case" in again.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ack", "RR-2026-9999", "--role", "police"], "unknown case 'RR-2026-9999'"),
        (["ack", "{ref}", "--role", "judge"], "unknown role (the contacts file has"),
        (["resolve", "{ref}", "--outcome", "vanished"], "unknown outcome (choose from found"),
        (["resolve", "RR-2026-9999", "--outcome", "found"], "unknown case"),
        (["note", "RR-2026-9999", "text"], "unknown case"),
        (["show", "RR-2026-9999"], "unknown case"),
        (["log", "RR-2026-9999"], "unknown case"),
    ],
)
def test_unknown_things_are_bad_input(runner: CliRunner, home: Path, args: list[str], expected: str) -> None:
    ref = register_json(runner, home)["case"]
    before = counts(home)
    result = invoke(runner, home, *[a.replace("{ref}", ref) for a in args])
    assert result.exit_code == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert counts(home) == before


def test_resolve_stands_everyone_down_and_cannot_happen_twice(runner: CliRunner, home: Path) -> None:
    registered = register_json(runner, home, "--suspected-victim")
    alerted = {m["to"] for m in registered["sent"] if m["state"] == "sent"}
    result = invoke(runner, home, "resolve", registered["case"], "--outcome", "found", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert {m["to"] for m in out["stand_down"]} == alerted
    assert all(m["state"] == "sent" for m in out["stand_down"])
    assert "alert-youth-prosecutor" in out["cancelled"]
    # nobody answered the return questions (a script): unknown, so the welfare check and the care
    # centre come too
    assert [s["id"] for s in out["after_resolved"]] == [
        "return-interview-plan", "welfare-check", "alert-care-centre", "refer-reference-centre",
        "return-interview-due"]
    shown = json.loads(invoke(runner, home, "show", registered["case"], "--json").stdout)
    assert shown["state"] == "resolved" and shown["outcome"] == "found"
    again = invoke(runner, home, "resolve", registered["case"], "--outcome", "found")
    assert again.exit_code == 2 and "already resolved" in again.stderr


def test_notes_cases_and_show(runner: CliRunner, home: Path) -> None:
    ref = register_json(runner, home, "--indicator", "hotel")["case"]
    assert invoke(runner, home, "note", ref, "Mother called: seen near the station").exit_code == 0
    listing = invoke(runner, home, "cases")
    assert ref in listing.stdout and MINOR["alias"] in listing.stdout
    listed = json.loads(invoke(runner, home, "cases", "--json").stdout)
    assert [c["case"] for c in listed] == [ref]
    shown = invoke(runner, home, "show", ref)
    assert "Mother called" in shown.stdout and "alert-child-focus" in shown.stdout
    invoke(runner, home, "resolve", ref, "--outcome", "returned")
    assert json.loads(invoke(runner, home, "cases", "--json").stdout) == []
    assert len(json.loads(invoke(runner, home, "cases", "--all", "--json").stdout)) == 1


def test_hostile_text_is_stored_and_shown_verbatim(runner: CliRunner, home: Path) -> None:
    hostile = "'; DROP TABLE cases; -- [bold]x[/bold]"
    out = register_json(runner, home, **{"--alias": hostile, "--last-seen": hostile})
    invoke(runner, home, "note", out["case"], hostile)
    shown = json.loads(invoke(runner, home, "show", out["case"], "--json").stdout)
    assert shown["person"]["alias"] == hostile and shown["person"]["last_seen"] == hostile
    assert shown["notes"][0]["text"] == hostile
    assert hostile in invoke(runner, home, "show", out["case"]).stdout
    assert counts(home)[0] == 1


def test_operator_is_recorded_on_every_event(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(cli, ["--home", str(home), "--operator", "Inspecteur Peeters", *register_args(),
                                 "--json"])
    ref = json.loads(result.stdout)["case"]
    events = json.loads(invoke(runner, home, "log", ref, "--json").stdout)
    registered = next(e for e in events if e["kind"] == "case.registered")
    assert registered["actor"] == "Inspecteur Peeters"


def test_log_lists_csv_and_json(runner: CliRunner, home: Path) -> None:
    ref = register_json(runner, home)["case"]
    as_csv = invoke(runner, home, "log", "--csv").stdout.splitlines()
    assert as_csv[0].startswith("seq,at,case,actor,kind") and len(as_csv) > 3
    events = json.loads(invoke(runner, home, "log", ref, "--json").stdout)
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["case.registered", "case.assessed"] and "sms.sent" in kinds
    sent = next(e for e in events if e["kind"] == "sms.sent")
    assert set(sent["detail"]) >= {"step", "role", "contact", "to", "body", "transport", "sid"}
    assert invoke(runner, home, "log").exit_code == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", datetime(2026, 11, 28, 13, 0, tzinfo=UTC)),
        ("3h ago", datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
        ("1h30m ago", datetime(2026, 11, 28, 11, 30, tzinfo=UTC)),
        ("2026-11-28 14:05", datetime(2026, 11, 28, 13, 5, tzinfo=UTC)),  # CET, UTC+1
        ("2026-07-01 14:05", datetime(2026, 7, 1, 12, 5, tzinfo=UTC)),  # CEST, UTC+2
        ("2026-11-28T10:00:00+00:00", datetime(2026, 11, 28, 10, 0, tzinfo=UTC)),
    ],
)
def test_missing_since_accepts_what_officers_type(text: str, expected: datetime) -> None:
    now = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    assert parse_when(text, now=now, tz=BRUSSELS) == expected


def test_missing_since_nonsense_is_refused() -> None:
    with pytest.raises(InputError, match="is not a time"):
        parse_when("yesterday-ish", now=datetime.now(UTC), tz=BRUSSELS)


def test_the_cli_as_a_real_process(home: Path) -> None:
    registered = run_cli(*register_args(), "--suspected-victim", "--json", home=home)
    assert registered.returncode == 0, registered.stderr
    ref = json.loads(registered.stdout)["case"]
    assert "[sms console] to +32" in registered.stderr
    shown = run_cli("show", ref, home=home)
    assert shown.returncode == 0 and ref in shown.stdout
    verified = run_cli("log", "--verify", home=home)
    assert verified.returncode == 0 and "intact" in verified.stdout
    bad = run_cli(*register_args(**{"--birth-date": "1990-01-01"}), home=home)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    usage = run_cli("register", home=home)
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1


def test_internal_errors_never_show_a_traceback(runner: CliRunner, home: Path) -> None:
    (home / "rapidresponse.db").write_bytes(b"this is not a database" * 100)
    result = invoke(runner, home, "cases")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unexpected_error_says_where_to_look_and_claims_nothing(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The catch-all cannot know whether anything was saved, so it must not say so."""
    from rapidresponse import review

    def broken(*args: Any, **kwargs: Any) -> None:
        raise TypeError(f"stored value {MINOR['alias']}")

    monkeypatch.setattr(review, "list_cases", broken)
    result = invoke(runner, home, "cases")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: internal error (TypeError). What was saved before it is in 'rapidresponse show'/'log';"
        " set RAPIDRESPONSE_DEBUG=1 for the traceback.\n"
    )


@pytest.mark.parametrize(
    "args",
    [register_args(), ["cases"], ["status"], ["run", "--once"], ["contacts", "list"]],
    ids=" ".join,
)
def test_a_mistake_in_config_toml_stops_every_command_before_it_writes(
    runner: CliRunner, home: Path, args: list[str],
) -> None:
    (home / "config.toml").write_text('[sms]\nclaim_seconds = "2m"\n')
    before = counts(home)
    result = invoke(runner, home, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: {home / 'config.toml'}: [sms] claim_seconds must be a number of seconds\n"
    assert counts(home) == before


# ---------------------------------------------------------------- rich output


MARKUP_NAME = "Parket [dag/nacht] permanentie"


@pytest.fixture
def bracketed_contact(home: Path) -> Path:
    """The youth prosecutor's first contact has square brackets in its name, as people write."""
    contacts = home / "contacts.toml"
    contacts.write_text(contacts.read_text().replace("Parket permanentie (fictief)", MARKUP_NAME))
    return home


def test_register_shows_contact_names_verbatim(runner: CliRunner, bracketed_contact: Path) -> None:
    result = invoke(runner, bracketed_contact, *register_args(), "--suspected-victim")
    assert result.exit_code == 0, result.stderr
    assert MARKUP_NAME in result.stdout


def test_contacts_list_and_test_show_contact_names_verbatim(
    runner: CliRunner, bracketed_contact: Path,
) -> None:
    listed = invoke(runner, bracketed_contact, "contacts", "list")
    assert listed.exit_code == 0 and MARKUP_NAME in listed.stdout
    tested = invoke(runner, bracketed_contact, "contacts", "test", "youth_prosecutor")
    assert tested.exit_code == 0, tested.stderr
    assert f"{MARKUP_NAME} +32470000001: sent" in tested.stdout


def test_a_name_typed_where_a_reference_belongs_is_not_repeated(runner: CliRunner, home: Path) -> None:
    result = invoke(runner, home, "show", MINOR["alias"])
    assert result.exit_code == 2 and "like RR-2026-0001" in result.stderr
    assert MINOR["alias"].upper() not in result.stderr.upper()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-29 02:30", "skipped when the clocks go forward"),
        ("2026-10-25 02:30", "happens twice"),
    ],
)
def test_a_local_time_at_a_dst_change_is_not_guessed(text: str, expected: str) -> None:
    now = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    with pytest.raises(InputError, match=expected):
        parse_when(text, now=now, tz=BRUSSELS)


def test_the_hour_that_happens_twice_is_accepted_with_its_offset() -> None:
    now = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    first = parse_when("2026-10-25T02:30+02:00", now=now, tz=BRUSSELS)
    second = parse_when("2026-10-25T02:30+01:00", now=now, tz=BRUSSELS)
    assert second - first == timedelta(hours=1)
    assert parse_when("2026-10-25 03:30", now=now, tz=BRUSSELS) == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)
