"""Display that cannot mislead: whole references at 80 columns, the year on dates of other years,
local time everywhere a person reads (the daemon's lines too), the zone named once."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from conftest import MINOR
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.cli.common import table_lines, when
from rapidresponse.daemon import Daemon
from rapidresponse.sms import Sent
from rapidresponse.timeutil import to_iso

BRUSSELS = ZoneInfo("Europe/Brussels")
UTC_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def test_a_date_of_another_year_carries_its_year() -> None:
    this_year = datetime.now(BRUSSELS).year
    assert when(f"{this_year}-06-01T12:00:00.000Z", BRUSSELS) == f"{datetime(this_year, 6, 1):%a} 01 Jun 14:00:00"
    earlier = datetime(this_year - 1, 6, 1, 12, tzinfo=UTC)
    assert when(to_iso(earlier), BRUSSELS) == (
        f"{earlier:%a} 01 Jun {this_year - 1} 14:00:00")


@pytest.fixture
def old_case(runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A case whose minor went missing 400 days ago, viewed on an 80-column terminal."""
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(cli, ["--home", str(home), "register", "--alias", MINOR["alias"],
                                 "--birth-date", "2013-03-02", "--missing-since", "400d ago",
                                 "--last-seen", MINOR["last_seen"], "--indicator", "hotel", "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["case"]


def test_show_at_80_columns(runner: CliRunner, home: Path, old_case: str) -> None:
    out = runner.invoke(cli, ["--home", str(home), "show", old_case]).stdout
    assert all(len(line) <= 80 for line in out.splitlines())
    assert out.splitlines()[0].startswith(old_case + " ")
    stored = json.loads(runner.invoke(cli, ["--home", str(home), "show", old_case, "--json"]).stdout)
    long_ago = datetime.fromisoformat(stored["missing_since"]).astimezone(BRUSSELS)
    assert long_ago.year < datetime.now(BRUSSELS).year
    assert f"Missing since {long_ago:%a %d %b %Y}" in out
    assert "…" not in out  # nothing cut: step ids, roles, contacts fold instead
    assert not UTC_STAMP.search(out)  # stored UTC times are shown local
    assert out.rstrip().endswith("Times are Europe/Brussels local time.")


def test_log_at_80_columns_keeps_every_reference_whole(runner: CliRunner, home: Path, old_case: str) -> None:
    out = runner.invoke(cli, ["--home", str(home), "log"]).stdout
    assert all(len(line) <= 80 for line in out.splitlines())
    events = [line for line in out.splitlines() if re.match(r"^ +\d+  ", line)]
    assert events and all(line.split()[5] == old_case for line in events)  # seq, 4 of time, case
    assert not [line for line in out.splitlines() if "RR-" in line and old_case not in line]
    assert not UTC_STAMP.search(out)
    assert out.count("Times are Europe/Brussels local time.") == 1


def test_the_log_reads_as_words_not_as_python(runner: CliRunner, home: Path, old_case: str) -> None:
    out = runner.invoke(cli, ["--home", str(home), "log", old_case]).stdout
    events = [" ".join(e.split()) for e in re.split(r"\n(?= +\d+  )", out)]
    planned = next(e for e in events if "steps.planned" in e)
    assert "{" not in planned and "'" not in planned
    assert "alert-youth-prosecutor youth_prosecutor " in planned and "; " in planned
    assessed = next(e for e in events if "case.assessed" in e)
    assert "red_flags=[hotel]" in assessed


def test_the_daemon_prints_local_times_and_names_the_zone_once(app: App, home: Path) -> None:
    from conftest import register_minor

    class Null:
        name = "null"

        def check(self) -> None:
            return None

        def send(self, to: str, body: str) -> Sent:
            return Sent(sid="SM" + "0" * 32)

    register_minor(app.context(), app)  # 14:00 in Brussels on the fake clock
    out = io.StringIO()
    daemon = Daemon(home=home, store=app.store, settings=app.settings, transport=Null(), clock=app.clock,
                    out=out)
    assert daemon.once() and daemon.once()
    lines = out.getvalue().splitlines()
    assert lines[0] == "# rapidresponse: times are Europe/Brussels local time"
    assert sum(line.startswith("#") for line in lines) == 1
    assert len(lines) > 1 and all(line.startswith("2026-11-28 14:00:00.") for line in lines[1:])


def test_register_at_80_columns_keeps_every_step_id_role_and_number_whole(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(cli, ["--home", str(home), "register", "--alias", MINOR["alias"],
                                 "--birth-date", "2011-03-02", "--missing-since", "2h ago",
                                 "--last-seen", MINOR["last_seen"], "--indicator", "older-partner",
                                 "--placement", "institution", "--suspected-victim"])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("[sms console]")]
    assert [line for line in lines if line.endswith(" ")] == []
    # a reason's bullet wraps under its own text, as in `show`, never back to column 0
    reasons = lines[lines.index(next(x for x in lines if x.startswith("Acknowledgement code"))) + 1:]
    reasons = reasons[:reasons.index(next(x for x in reasons if not x.startswith("  ")))]
    assert len(reasons) > 7 and all(x.startswith(("  • ", "      ")) for x in reasons), reasons
    words = {word for line in result.stdout.splitlines() for word in line.split()}
    shown = json.loads(runner.invoke(cli, ["--home", str(home), "show", "1", "--json"]).stdout)
    steps = [s["id"] for s in shown["steps"]]
    assert "consult-reference-magistrate" in steps
    for step in steps:
        assert step in words, step
    assert {"reference_magistrate", "youth_prosecutor", "+32470000001"} <= words
    assert "…" not in result.stdout
    assert [line for line in result.stdout.splitlines() if len(line) > 80] == []


def test_a_table_too_wide_for_the_terminal_shows_each_row_as_a_block() -> None:
    header = ["role", "texts", "failed", "contact"]
    rows = [["reference_magistrate", "12", "0", "Referentiemagistraat permanentie (fictief)"]]
    wide = table_lines(header, rows, right=(1, 2), width=80)
    assert wide[1] == "reference_magistrate     12       0  Referentiemagistraat permanentie (fictief)"
    narrow = table_lines(header, rows, right=(1, 2), width=40)
    assert narrow == ["reference_magistrate", "  texts:   12", "  failed:  0",
                      "  contact: Referentiemagistraat", "           permanentie (fictief)"]
    assert all(len(line) <= 40 for line in narrow)


def test_a_glued_time_wraps_whole_and_prints_with_plain_spaces(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rapidresponse.cli.common import echo_wrapped, glued

    monkeypatch.setenv("COLUMNS", "40")
    echo_wrapped([f"Scheduled, not waited for: return-interview-due at {glued('Thu 03 Dec 01:27')}."])
    out = capsys.readouterr().out
    assert "\xa0" not in out and "Thu 03 Dec 01:27." in out.splitlines()[-1]
