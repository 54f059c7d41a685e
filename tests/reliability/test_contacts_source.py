"""A broken contacts file never stops the response (issue 7, failure 2).

Every process — register, run, run --once, contacts check, status — goes through one source:
contacts.toml is put in force only when it parses and has every role the playbooks use;
otherwise the last good copy runs, with a warning, and the last good copy is never replaced by
a file that did not pass.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import MINOR, write_playbook
from processes import events, query, wait_for

CLI = Callable[..., subprocess.CompletedProcess[str]]
COORDINATOR = "+32470000041"

#: The coordinator is needed two seconds in: a bad edit in between must not exhaust the step.
ESCALATING = """
name = "escalating"
title = "Escalation to the coordinator within seconds"

[[steps]]
id = "alert"
at = "0s"
role = "youth_prosecutor"
notify = "all"
message = "{case}: vermiste minderjarige. Antwoord ACK {ack}"
ack_within = "2s"
escalate_to = "coordinator"
"""


def misfit(home: Path) -> bytes:
    """The edit of the report: the coordinator's role renamed by a typo. It still parses."""
    path = home / "contacts.toml"
    path.write_text(path.read_text().replace("[roles.coordinator]", "[roles.coordinater]"))
    return path.read_bytes()


def unparseable(home: Path) -> None:
    path = home / "contacts.toml"
    path.write_text(path.read_text().replace("[roles.police]", "[roles.police"))


def register_args(*extra: str) -> list[str]:
    return ["register", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
            "--last-seen", MINOR["last_seen"], "--missing-since", "now", "--json", *extra]


def test_a_misfitting_file_registers_on_the_last_good_copy_and_never_replaces_it(
    home: Path, cli: CLI, stub: Any
) -> None:
    assert cli("contacts", "check").returncode == 0
    good = (home / "contacts.last-good.toml").read_bytes()
    misfit(home)

    result = cli(*register_args())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sent"], "the first alerts went out"
    assert "role 'coordinator' is used by" in result.stderr
    assert "running on the last good copy" in result.stderr
    assert (home / "contacts.last-good.toml").read_bytes() == good

    check = cli("contacts", "check")
    assert check.returncode == 2
    assert "'coordinator'" in check.stderr and "no entry" in check.stderr
    assert "role 'coordinater' is not used" in check.stdout + check.stderr
    assert "Contacts OK" not in check.stdout

    status = cli("status", "--json")
    assert status.returncode == 1
    assert "coordinator" in json.loads(status.stdout)["contacts_problem"]


def test_an_unparseable_file_is_reported_and_run_once_starts_on_the_last_good_copy(
    home: Path, cli: CLI, register: Callable[..., str], stub: Any
) -> None:
    ref = register()
    unparseable(home)

    check = cli("contacts", "check")
    assert check.returncode == 2 and "Contacts OK" not in check.stdout
    assert "not valid TOML" in check.stderr and "last good copy" in check.stderr

    once = cli("run", "--once")
    assert once.returncode == 0, once.stderr
    assert "running on the last good copy" in once.stderr
    assert query(home, "SELECT COUNT(*) AS n FROM cases WHERE ref = ?", [ref])[0]["n"] == 1


def test_run_starts_on_the_last_good_copy(
    home: Path, cli: CLI, daemon: Callable[..., Any], stub: Any
) -> None:
    assert cli("contacts", "check").returncode == 0
    unparseable(home)
    process = daemon()
    wait_for(lambda: "contacts.rejected" in process.stderr(), "the daemon to say it runs on the last good copy")
    assert "last good copy" in process.stderr()
    assert process.stop() == 0


def test_the_daemon_keeps_the_last_good_copy_when_a_role_vanishes_mid_chain(
    home: Path, cli: CLI, daemon: Callable[..., Any], stub: Any
) -> None:
    write_playbook(home, "escalating", ESCALATING)
    assert cli("contacts", "check").returncode == 0
    process = daemon()
    registered = cli(*register_args("--playbook", "escalating"))
    assert registered.returncode == 0, registered.stderr
    ref = json.loads(registered.stdout)["case"]
    misfit(home)  # while the step waits for the youth prosecutor

    wait_for(lambda: events(home, "step.escalated", ref), "the escalation to the coordinator")
    assert stub.wait_for(lambda s: s.accepted(COORDINATOR)), "the coordinator was texted"
    assert not events(home, "step.exhausted", ref)
    assert "contacts.rejected" in process.stderr()
    assert process.stop() == 0


def test_with_no_usable_copy_the_case_is_recorded_and_its_alerts_wait(
    home: Path, cli: CLI, stub: Any
) -> None:
    unparseable(home)  # never a good copy: a fresh home with a broken file
    result = cli(*register_args())
    assert result.returncode == 1, result.stderr
    ref = json.loads(result.stdout)["case"]
    assert "no usable copy" in result.stderr and not stub.received()
    status = cli("status", "--json")
    assert status.returncode == 1
    assert "no usable copy" in json.loads(status.stdout)["contacts_problem"]

    once = cli("run", "--once")  # still broken: nothing is sent, nothing is exhausted
    assert once.returncode == 0 and not stub.received()
    assert not events(home, "step.exhausted", ref)

    path = home / "contacts.toml"
    path.write_text(path.read_text().replace("[roles.police", "[roles.police]"))
    assert cli("run", "--once").returncode == 0
    assert stub.accepted(), "the alerts that waited went out once the file was fixed"
