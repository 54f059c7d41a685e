"""Nothing identifying leaves the database: not in texts, the log, stderr, or other tables."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MINOR, SECRETS, assert_no_secrets, run_cli
from rapidresponse.app import init_home
from rapidresponse.cli import cli

REGISTER = ["register", "--alias", MINOR["alias"], "--name", MINOR["full_name"],
            "--birth-date", MINOR["birth_date"], "--missing-since", "30m ago",
            "--last-seen", MINOR["last_seen"], "--indicator", "older-partner", "--indicator", "hotel",
            "--suspected-victim"]


def full_scenario(home: Path) -> list[str]:
    """Register, ack, note, run the daemon once, resolve, review; collect every stream."""
    streams = []
    first = run_cli(*REGISTER, "--json", home=home)
    assert first.returncode == 0, first.stderr
    ref = json.loads(first.stdout)["case"]
    streams += [first.stderr, first.stdout]
    for args in (["ack", ref, "--role", "child_focus", "--note", f"{MINOR['alias']} seen"],
                 ["note", ref, f"{MINOR['alias']} was at {MINOR['last_seen']}"],
                 ["run", "--once"],
                 ["decide", ref, "--societal-necessity", "suspected", "--reason",
                  f"{MINOR['alias']} was picked up at {MINOR['last_seen']}"],
                 ["reassess", ref, "--no-suspected-victim", "--reason", f"{MINOR['alias']} is fine"],
                 REGISTER,  # the same minor again: refused by reference
                 ["run", "--once"],
                 ["resolve", ref, "--outcome", "found", "--note", f"found {MINOR['alias']}"],
                 ["run", "--once"],
                 ["log", "--json"], ["log", "--csv"], ["log"], ["status"], ["status", "--json"],
                 ["ack", ref, "--role", "police"],  # an error message
                 ["register", "--alias", MINOR["alias"], "--birth-date", "1990-01-01",
                  "--missing-since", "now", "--last-seen", MINOR["last_seen"]]):  # another
        result = run_cli(*args, home=home)
        streams.append(result.stderr)
        if args[0] in ("log", "status", "run"):
            streams.append(result.stdout)
    return streams


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    home = tmp_path_factory.mktemp("privacy") / "home"
    init_home(home)
    return home, full_scenario(home)


def test_no_stream_a_process_writes_outside_show_names_the_minor(scenario: tuple[Path, list[str]]) -> None:
    for stream in scenario[1]:
        assert_no_secrets(stream)


def test_sms_bodies_and_the_log_carry_the_reference_only(scenario: tuple[Path, list[str]]) -> None:
    conn = sqlite3.connect(scenario[0] / "rapidresponse.db")
    bodies = [row[0] for row in conn.execute("SELECT body FROM messages")]
    assert bodies and all(body.startswith("RR-") for body in bodies)
    for body in bodies:
        assert_no_secrets(body)
    for (detail,) in conn.execute("SELECT detail FROM events"):
        assert_no_secrets(detail)


def test_only_the_persons_and_notes_tables_hold_personal_data(scenario: tuple[Path, list[str]]) -> None:
    conn = sqlite3.connect(scenario[0] / "rapidresponse.db")
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        if table in ("persons", "notes"):
            continue
        for row in conn.execute(f"SELECT * FROM {table}"):
            assert_no_secrets(" ".join(str(v) for v in row))
    stored = " ".join(str(v) for row in conn.execute("SELECT * FROM persons") for v in row)
    assert all(secret in stored for secret in SECRETS)


def test_show_is_where_the_officer_sees_the_minor(home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(home), *REGISTER, "--json"])
    ref = json.loads(result.stdout)["case"]
    assert_no_secrets(result.stdout)
    assert_no_secrets(result.stderr)
    shown = runner.invoke(cli, ["--home", str(home), "show", ref])
    assert MINOR["alias"] in shown.stdout and MINOR["last_seen"] in shown.stdout
