"""Forgiving input at 3 a.m., never guessing: times and dates as people write them in Flanders,
case numbers, Dutch words, "did you mean" — and shell completion."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from conftest import MINOR, assert_no_secrets, run_cli
from rapidresponse.cli import cli
from rapidresponse.errors import InputError
from rapidresponse.refs import expand_ref
from rapidresponse.timeutil import parse_date, read_when

BRUSSELS = ZoneInfo("Europe/Brussels")
NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # Saturday 14:00 in Brussels (UTC+1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gisteren 22:00", utc(2026, 11, 27, 21, 0)),
        ("Gisteren 22u", utc(2026, 11, 27, 21, 0)),
        ("yesterday 22:00", utc(2026, 11, 27, 21, 0)),
        ("vandaag 13u05", utc(2026, 11, 28, 12, 5)),
        ("today 09:30", utc(2026, 11, 28, 8, 30)),
        ("eergisteren 23:15", utc(2026, 11, 26, 22, 15)),
        ("28/11/2026 13:05", utc(2026, 11, 28, 12, 5)),
        ("2/3/2026 8:00", utc(2026, 3, 2, 7, 0)),
        ("27-11-2026 22u30", utc(2026, 11, 27, 21, 30)),
        ("27.11.2026 22:30:15", utc(2026, 11, 27, 21, 30, 15)),
        ("2026-11-28 13:05", utc(2026, 11, 28, 12, 5)),
        ("2026-11-28T13:05+01:00", utc(2026, 11, 28, 12, 5)),
        ("1h ago", utc(2026, 11, 28, 12, 0)),
        ("2u geleden", utc(2026, 11, 28, 11, 0)),
        ("90m ago", utc(2026, 11, 28, 11, 30)),
        ("now", NOW),
        ("nu", NOW),
        ("  gisteren   22:00 ", utc(2026, 11, 27, 21, 0)),
    ],
)
def test_times_as_people_write_them(text: str, expected: datetime) -> None:
    reading = read_when(text, now=NOW, tz=BRUSSELS, name="--missing-since")
    assert reading.moment == expected and reading.note is None


def test_a_time_alone_earlier_today_is_today_and_says_so() -> None:
    reading = read_when("13:05", now=NOW, tz=BRUSSELS, name="--missing-since")
    assert reading.moment == utc(2026, 11, 28, 12, 5)
    assert reading.note == "--missing-since 13:05 read as today, Sat 28 Nov 2026 13:05 (Europe/Brussels)"


def test_a_time_alone_later_than_now_is_yesterday_and_says_so() -> None:
    reading = read_when("22u", now=NOW, tz=BRUSSELS, name="--missing-since")
    assert reading.moment == utc(2026, 11, 27, 21, 0)
    assert reading.note == "--missing-since 22:00 read as yesterday, Fri 27 Nov 2026 22:00 (Europe/Brussels)"


@pytest.mark.parametrize("text", ["28/11/2026", "2026-11-28", "gisteren", "yesterday", "vandaag", "today"])
def test_a_date_without_a_time_is_refused_with_how_to_add_one(text: str) -> None:
    with pytest.raises(InputError, match="has a date but no time: add the time, e.g. 'gisteren 22:00'"):
        read_when(text, now=NOW, tz=BRUSSELS, name="--missing-since")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gisteren 25:00", "no such time of day"),
        ("14:75", "no such time of day"),
        ("31/02/2026 10:00", "not a date in the calendar"),
        ("28/11/26 14:05", "year in four digits"),
        ("morgenavond", "is not a time: use 'gisteren 22:00'"),
        ("Zorbalina 22:00", "is not a time"),
        ("29/03/2026 02:30", "skipped when the clocks go forward"),
        ("25/10/2026 02:30", "happens twice"),
        ("25-10-2026 2u30", "happens twice"),
    ],
)
def test_what_cannot_be_read_is_refused_without_quoting_it(text: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected) as caught:
        read_when(text, now=NOW, tz=BRUSSELS, name="--missing-since")
    assert "Zorbalina" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("02/03/2011", date(2011, 3, 2)), ("2/3/2011", date(2011, 3, 2)), ("02-03-2011", date(2011, 3, 2)),
     ("02.03.2011", date(2011, 3, 2)), ("2011-03-02", date(2011, 3, 2))],
)
def test_dates_day_first_or_iso(text: str, expected: date) -> None:
    assert parse_date(text, "--birth-date") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("02/03/11", "four digits"), ("30/02/2011", "not a date in the calendar"),
     ("2 maart 2011", "is not a date: use DD/MM/YYYY"), ("2011-3-2", "is not a date")],
)
def test_dates_that_cannot_be_read_are_refused(text: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        parse_date(text, "--birth-date")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12", "RR-2026-0012"), ("rr12", "RR-2026-0012"), ("RR-7", "RR-2026-0007"),
     ("rr-2025-7", "RR-2025-0007"), (" RR-2026-0001 ", "RR-2026-0001"), ("Zorbalina", "ZORBALINA")],
)
def test_case_references_by_number(text: str, expected: str) -> None:
    assert expand_ref(text, 2026) == expected


# ---------------------------------------------------------------- through the CLI


def invoke(runner: CliRunner, home: Path, *args: str) -> Result:
    return runner.invoke(cli, ["--home", str(home), *args])


def register(runner: CliRunner, home: Path, *extra: str, **values: str) -> Result:
    args = {"--alias": MINOR["alias"], "--birth-date": "02/03/2011", "--missing-since": "gisteren 22:00",
            "--last-seen": MINOR["last_seen"], **values}
    flat = [x for pair in args.items() for x in pair]
    return invoke(runner, home, "register", *flat, *extra)


def rows(home: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(home / "rapidresponse.db")
    try:
        return conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
    finally:
        conn.close()


def test_register_takes_dutch_times_and_day_first_dates(runner: CliRunner, home: Path) -> None:
    result = register(runner, home, "--json", "--placement", "Pleeggezin")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    missing = datetime.fromisoformat(out["missing_since"].replace("Z", "+00:00")).astimezone(BRUSSELS)
    assert (missing.hour, missing.minute) == (22, 0)
    shown = json.loads(invoke(runner, home, "show", "1", "--json").stdout)
    assert shown["person"]["birth_date"] == "2011-03-02" and shown["placement"] == "foster"


def test_register_says_which_day_a_bare_time_was_taken_to_be(runner: CliRunner, home: Path) -> None:
    result = register(runner, home, **{"--missing-since": "00:01"})
    assert result.exit_code == 0, result.stderr
    assert "Note: --missing-since 00:01 read as today" in result.stdout


def test_a_date_alone_writes_nothing(runner: CliRunner, home: Path) -> None:
    result = register(runner, home, **{"--missing-since": "28/11/2026"})
    assert result.exit_code == 2 and rows(home) == 0
    assert result.stderr.count("\n") == 1 and "add the time" in result.stderr


@pytest.fixture
def case(runner: CliRunner, home: Path) -> str:
    result = register(runner, home, "--json", "--indicator", "Hotel")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["case"]


def test_commands_take_the_case_number(runner: CliRunner, home: Path, case: str) -> None:
    number = str(int(case.rsplit("-", 1)[1]))
    result = invoke(runner, home, "ack", number, "--role", "Child_Focus")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{case}: child_focus acknowledged")
    assert invoke(runner, home, "show", number, "--json").exit_code == 0
    assert invoke(runner, home, "note", f"rr{number}", "Called the mother").exit_code == 0


@pytest.mark.parametrize(("word", "outcome"), [("gevonden", "found"), ("Teruggekeerd", "returned"),
                                               ("INGETROKKEN", "withdrawn"), ("Found", "found")])
def test_outcomes_in_dutch_and_any_case(runner: CliRunner, home: Path, case: str, word: str, outcome: str) -> None:
    result = invoke(runner, home, "resolve", case, "--outcome", word, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == outcome


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ack", "1", "--role", "childfocus"], "did you mean 'child_focus'?"),
        (["resolve", "1", "--outcome", "gevondn"], "did you mean 'found'?"),
        (["reassess", "1", "--reason", "x", "--indicator", "hotell"], "did you mean 'hotel'?"),
    ],
)
def test_near_misses_get_did_you_mean_without_an_echo(
    runner: CliRunner, home: Path, case: str, args: list[str], expected: str
) -> None:
    result = invoke(runner, home, *args)
    assert result.exit_code == 2 and expected in result.stderr
    typed = args[-1]
    assert f"'{typed}'" not in result.stderr


def test_placement_in_dutch_with_did_you_mean(runner: CliRunner, home: Path) -> None:
    result = register(runner, home, "--placement", "voorzienin")
    assert result.exit_code == 2 and "did you mean 'institution'?" in result.stderr and rows(home) == 0


def complete(home: Path, words: str) -> list[str]:
    parts = words.split(" ")
    result = run_cli(home=home, env={"_RAPIDRESPONSE_COMPLETE": "bash_complete", "COMP_WORDS": words,
                                     "COMP_CWORD": str(len(parts) - 1)})
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_the_shell_completes_commands_options_cases_roles_indicators_outcomes(home: Path, case: str) -> None:
    assert "register" in complete(home, "rapidresponse reg")
    assert complete(home, "rapidresponse register --miss") == ["--missing-since"]
    assert complete(home, "rapidresponse ack ") == [case]
    assert complete(home, "rapidresponse ack 1 --role child") == ["child_focus"]
    assert complete(home, "rapidresponse register --indicator hot") == ["hotel"]
    assert "withdrawn" in complete(home, "rapidresponse resolve 1 --outcome ")


def test_completion_never_offers_what_identifies_the_minor(home: Path, case: Any) -> None:
    assert_no_secrets("\n".join(complete(home, "rapidresponse show ")))
