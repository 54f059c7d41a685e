"""`status` calls for a human when a text does not get through, a stand-down failed, or the
contacts file is broken; and a broken contacts file never stops a registration."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MINOR, register_minor, tick
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.engine import Context, resolve
from rapidresponse.review import status
from rapidresponse.sms import PermanentSendError

REGISTER = ["register", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
            "--missing-since", "now", "--last-seen", MINOR["last_seen"], "--json"]


def test_a_failed_stand_down_needs_a_human(app: App, ctx: Context, clock, transport, settings) -> None:  # type: ignore[no-untyped-def]
    reg = register_minor(ctx, app)
    tick(ctx, transport, settings)
    resolve(ctx, reg.ref, "found")
    transport.fail["+32470000001"] = PermanentSendError("unsubscribed", code="21610")
    tick(ctx, transport, settings)
    report = status(app.store, clock.now(), settings)
    [failed] = report["stand_down_failed"]
    assert failed["case_ref"] == reg.ref and failed["to_number"] == "+32470000001"
    assert report["needs_attention"]


def test_a_broken_contacts_file_falls_back_to_the_last_good_copy(home: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["--home", str(home), *REGISTER])
    assert first.exit_code == 0 and (home / "contacts.last-good.toml").exists()
    contacts = home / "contacts.toml"
    contacts.write_text(contacts.read_text().replace("+32 470 00 00 02", "+32 470"))  # a typo at 3 a.m.
    second = runner.invoke(cli, ["--home", str(home), *REGISTER, "--new-episode"])
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["sent"]  # the alerts went out
    assert "running on the last good copy" in second.stderr and "contacts.toml, line" in second.stderr
    shown = runner.invoke(cli, ["--home", str(home), "status", "--json"])
    assert shown.exit_code == 1
    assert "youth_prosecutor" in json.loads(shown.stdout)["contacts_problem"]


def test_without_any_usable_copy_the_case_is_registered_and_its_alerts_wait(home: Path) -> None:
    contacts = home / "contacts.toml"
    contacts.write_text(contacts.read_text().replace("+32 470 00 00 02", "+32 470"))
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(home), *REGISTER])
    assert result.exit_code == 1, result.stderr  # recorded, but nothing could be sent
    case = json.loads(result.stdout)
    assert case["case"].startswith("RR-") and case["sent"] == []
    assert "the case is registered but no alert was sent" in result.stderr
    assert "no usable copy: alerts wait until contacts.toml is fixed" in result.stderr
    assert not (home / "contacts.last-good.toml").exists()
    shown = runner.invoke(cli, ["--home", str(home), "status", "--json"])
    assert shown.exit_code == 1
    assert "no usable copy" in json.loads(shown.stdout)["contacts_problem"]


def test_what_needs_a_human_comes_before_what_waits_and_no_time_is_split_at_80_columns(
    home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time_machine

    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    with time_machine.travel(datetime(2026, 11, 28, 13, 0, tzinfo=UTC), tick=False) as traveller:
        runner.invoke(cli, ["--home", str(home), *REGISTER, "--indicator", "older-partner"])
        traveller.shift(timedelta(minutes=61))
        shown = runner.invoke(cli, ["--home", str(home), "status"])
    lines = shown.stdout.splitlines()
    labels = [line.split(":")[0].strip() for line in lines if line.startswith("  ") and ":" in line
              and not line.startswith("      ")]
    assert "waiting" in labels and "SOCIETAL NECESSITY UNDECIDED" in labels
    first_waiting = labels.index("waiting")
    assert all(label == "waiting" for label in labels[first_waiting:])  # nothing urgent below them
    assert all(len(line) <= 80 for line in lines)
    assert not [line for line in lines if re.search(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)( \d\d( \w{3})?)?$", line)]
    assert len(re.findall(r"\w{3} \d\d \w{3} \d\d:\d\d:\d\d", shown.stdout)) >= labels.count("waiting") + 1
