"""`rapidresponse cases`: the most urgent open cases first, a screen's worth, references whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import MINOR, RecordingTransport, register_minor, write_playbook
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.clock import FakeClock
from rapidresponse.dispatch import run_pass

NOBODY_ANSWERS = """
name = "nobody-answers"
title = "One text, one minute to answer, nobody after"

[[steps]]
id = "alert"
at = "0m"
role = "child_focus"
notify = "all"
message = "RR {case}: bel {callback}. Antwoord ACK {ack}"
ack_within = "1m"
"""


def listed(runner: CliRunner, home: Path, *args: str) -> list[dict[str, Any]]:
    result = runner.invoke(cli, ["--home", str(home), "cases", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def three_cases(app: App, ctx: Any, clock: FakeClock, home: Path, transport: RecordingTransport,
                settings: Any) -> dict[str, str]:
    """A low-grade case, a high-grade one, and one whose alert nobody answered: in that order."""
    write_playbook(home, "nobody-answers", NOBODY_ANSWERS)
    low = register_minor(ctx, app, indicators=()).ref
    clock.advance(minutes=1)
    high = register_minor(ctx, app, indicators=("older-partner", "hotel"), new_episode=True).ref
    clock.advance(minutes=1)
    unanswered = register_minor(ctx, app, indicators=(), playbook=app.playbook("nobody-answers"),
                                new_episode=True).ref
    run_pass(ctx, transport, settings)
    clock.advance(minutes=5)
    run_pass(ctx, transport, settings)
    return {"low": low, "high": high, "unanswered": unanswered}


def test_the_most_urgent_case_comes_first(runner: CliRunner, home: Path, three_cases: dict[str, str]) -> None:
    rows = listed(runner, home)
    assert [r["case"] for r in rows] == [three_cases["unanswered"], three_cases["high"], three_cases["low"]]
    assert rows[0]["exhausted"] == 1


def test_limit_and_all(runner: CliRunner, home: Path, three_cases: dict[str, str]) -> None:
    assert [r["case"] for r in listed(runner, home, "--limit", "1")] == [three_cases["unanswered"]]
    text = runner.invoke(cli, ["--home", str(home), "cases", "--limit", "2"]).stdout
    assert "2 of 3 open cases shown" in text and three_cases["low"] not in text
    runner.invoke(cli, ["--home", str(home), "resolve", three_cases["low"], "--outcome", "found"])
    assert len(listed(runner, home)) == 2
    assert len(listed(runner, home, "--all")) == 3


def test_limit_must_be_positive(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(cli, ["--home", str(home), "cases", "--limit", "0"])
    assert result.exit_code == 2


def test_references_are_whole_in_80_columns(
    runner: CliRunner, home: Path, three_cases: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(cli, ["--home", str(home), "cases", "--all"])
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for ref in three_cases.values():
        assert any(line.startswith(ref + " ") for line in lines)
    assert "Times are Europe/Brussels local time." in result.stdout


def test_a_date_of_another_year_takes_the_alias_column_not_the_80_column_limit(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(cli, ["--home", str(home), "register", "--alias", MINOR["alias"],
                                 "--birth-date", "2011-03-02", "--missing-since", "400d ago",
                                 "--last-seen", MINOR["last_seen"], "--json"])
    ref = json.loads(result.stdout)["case"]
    runner.invoke(cli, ["--home", str(home), "resolve", ref, "--outcome", "found"])
    lines = runner.invoke(cli, ["--home", str(home), "cases", "--all"]).stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split() == ["case", "grade", "missing", "since", "waiting", "exhausted", "age", "state"]
    assert lines[1].startswith(ref + " ") and MINOR["alias"][:3] not in lines[1]
    wide = runner.invoke(cli, ["--home", str(home), "cases", "--all"], env={"COLUMNS": "120"}).stdout
    assert wide.splitlines()[0].split()[-1] == "alias" and MINOR["alias"] in wide


def test_a_long_alias_gives_way_with_an_ellipsis(
    runner: CliRunner, home: Path, app: App, ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from rapidresponse.engine import Person, register

    person = Person(alias="A" * 120, birth_date=date.fromisoformat(MINOR["birth_date"]), last_seen="x")
    ref = register(ctx, person=person, missing_since=ctx.clock.now(), playbooks_for=app.playbook_for,
                   indicators=(), playbook=None).ref
    monkeypatch.setenv("COLUMNS", "80")
    [line] = [x for x in runner.invoke(cli, ["--home", str(home), "cases"]).stdout.splitlines()
              if x.startswith(ref)]
    assert len(line) <= 80 and line.endswith("…")
