"""Instant start: commands import only what they use; the command list needs no command module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rapidresponse.cli import COMMAND_MODULES, SHORT_HELP, cli

#: What `rapidresponse --help` must not load: every command module, the wiring, the engine,
#: the heavy libraries.
NOT_FOR_HELP = (
    "rapidresponse.cli.cases", "rapidresponse.cli.coordinator", "rapidresponse.cli.ops",
    "rapidresponse.cli.webhook", "rapidresponse.app", "rapidresponse.engine", "rapidresponse.store",
    "rapidresponse.config", "rapidresponse.contacts", "rapidresponse.timeutil", "tomllib", "difflib",
    "rich", "phonenumbers", "sqlite3", "sqlite_utils", "twilio", "apscheduler",
)
#: Listing cases reads the store: no engine, no rich table per row, no phone-number metadata.
NOT_FOR_CASES = ("rapidresponse.engine", "rapidresponse.playbooks", "rapidresponse.audit", "rich",
                 "phonenumbers",
                 "sqlite_utils", "twilio", "apscheduler")
#: Showing one case needs the engine's view of a step, but sends nothing and validates no number
#: (it reads the contacts' numbers as written to say who a waiting step reaches next).
NOT_FOR_SHOW = ("rich", "phonenumbers", "sqlite_utils", "twilio", "apscheduler", "rapidresponse.dispatch",
                "rapidresponse.daemon")

_PROBE = """
import sys
from rapidresponse.cli import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n")
"""


def modules_loaded_by(*args: str, home: Path) -> set[str]:
    env = {**os.environ, "RAPIDRESPONSE_HOME": str(home)}
    result = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                            env=env, timeout=60)
    line = next(x for x in result.stderr.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


def loaded(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_help_imports_no_command_module_nor_heavy_library(home: Path) -> None:
    assert loaded(modules_loaded_by("--help", home=home), NOT_FOR_HELP) == []


def test_cases_imports_only_what_a_list_needs(home: Path) -> None:
    modules = modules_loaded_by("cases", home=home)
    assert "rapidresponse.cli.cases" in modules  # the probe really ran the command
    assert loaded(modules, NOT_FOR_CASES) == []


def test_show_imports_only_what_one_case_needs(home: Path, runner: CliRunner) -> None:
    from conftest import MINOR

    result = runner.invoke(cli, ["--home", str(home), "register", "--alias", MINOR["alias"],
                                 "--birth-date", MINOR["birth_date"], "--missing-since", "1h ago",
                                 "--last-seen", MINOR["last_seen"], "--json"])
    ref = json.loads(result.stdout)["case"]
    modules = modules_loaded_by("show", ref, home=home)
    assert "rapidresponse.engine" in modules  # the probe really showed the case
    assert loaded(modules, NOT_FOR_SHOW) == []


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_the_static_command_list_says_what_each_command_says(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert SHORT_HELP.get(name) == command.get_short_help_str(limit=1000), (
        f"update SHORT_HELP[{name!r}] in rapidresponse/cli/__init__.py"
    )


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMAND_MODULES:
        assert f"  {name} " in result.stdout


@pytest.mark.parametrize(("typed", "meant"), [("regsiter", "register"), ("Status", "status"),
                                              ("resolv", "resolve"), ("shwo", "show")])
def test_a_mistyped_command_gets_did_you_mean(runner: CliRunner, typed: str, meant: str) -> None:
    result = runner.invoke(cli, [typed])
    assert result.exit_code == 2
    assert result.stderr == f"Error: no such command; did you mean '{meant}'?\n"


def test_an_unknown_command_is_not_echoed(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["Zorbalina"])
    assert result.exit_code == 2
    assert "Zorbalina" not in result.output and "--help" in result.stderr
