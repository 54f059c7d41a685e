"""Settings: config.toml in the home, the environment over the file, mistakes as sentences."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rapidresponse.config import load_settings, resolve_home, resolve_operator
from rapidresponse.errors import InputError
from rapidresponse.sms import make_transport


def test_console_is_the_default_transport(home: Path) -> None:
    settings = load_settings(home)
    assert settings.transport == "console" and make_transport(settings).name == "console"


def test_config_toml_selects_twilio(home: Path) -> None:
    (home / "config.toml").write_text('[sms]\ntransport = "twilio"\n')
    settings = load_settings(home)
    assert settings.transport == "twilio" and make_transport(settings).name == "twilio"


def test_the_environment_wins_over_the_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "config.toml").write_text('[sms]\ntransport = "twilio"\n')
    monkeypatch.setenv("RAPIDRESPONSE_SMS", "console")
    assert load_settings(home).transport == "console"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[sms]\ntransport = "pigeon"\n', "the transport is not a known SMS transport"),
        ('[sms]\nspeed = 3\n', "unknown key 'speed' in [sms]"),
        ('[mail]\nto = "x"\n', "unknown section [mail]"),
        ('[daemon]\ntick_seconds = 5\n', "tick_seconds must be"),
        ("[sms\n", "config.toml"),
    ],
)
def test_config_mistakes_are_refused(home: Path, text: str, expected: str) -> None:
    (home / "config.toml").write_text(text)
    with pytest.raises(InputError, match=re.escape(expected)):
        load_settings(home)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[sms]\nclaim_seconds = "2m"\n', "[sms] claim_seconds must be a number of seconds"),
        ("[sms]\nclaim_seconds = 5\n", "[sms] claim_seconds must be at least 10"),
        ("[sms]\nclaim_seconds = true\n", "[sms] claim_seconds must be a number of seconds"),
        ("[sms]\nclaim_seconds = inf\n", "[sms] claim_seconds must be a number of seconds"),
        ("[sms]\nmax_attempts = 0\n", "[sms] max_attempts must be from 1 to 50"),
        ("[sms]\nmax_attempts = 1000000\n", "[sms] max_attempts must be from 1 to 50"),
        ("[daemon]\nheartbeat_stale_seconds = 1e12\n", "[daemon] heartbeat_stale_seconds must be from 0.2 to 3600"),
        ("[daemon]\nheartbeat_seconds = 1e12\n", "[daemon] heartbeat_seconds must be from 0.1 to 60"),
        ("[sms]\nmax_attempts = 2.5\n", "[sms] max_attempts must be a whole number"),
        ("[sms]\nmax_attempts = true\n", "[sms] max_attempts must be a whole number"),
        ('[sms]\nmax_attempts = "6"\n', "[sms] max_attempts must be a whole number"),
        ("[sms]\ntransport = 1\n", "[sms] transport must be text: one of console, twilio"),
        ("[daemon]\ntick_seconds = 0\n", "[daemon] tick_seconds must be from 0.01 to 1"),
        ("[daemon]\ntick_seconds = false\n", "[daemon] tick_seconds must be a number of seconds"),
        ("[daemon]\ntick_seconds = nan\n", "[daemon] tick_seconds must be a number of seconds"),
        ("[daemon]\nheartbeat_seconds = 0\n", "[daemon] heartbeat_seconds must be from 0.1 to 60"),
        ('[daemon]\nheartbeat_seconds = "2s"\n', "[daemon] heartbeat_seconds must be a number of seconds"),
        ("[daemon]\nheartbeat_stale_seconds = 2\n",
         "[daemon] heartbeat_stale_seconds (2) must be more than heartbeat_seconds (2)"),
        ("[daemon]\nheartbeat_seconds = 20\n",
         "[daemon] heartbeat_stale_seconds (15) must be more than heartbeat_seconds (20)"),
    ],
)
def test_every_setting_has_its_type_and_range_checked(home: Path, text: str, expected: str) -> None:
    (home / "config.toml").write_text(text)
    with pytest.raises(InputError) as info:
        load_settings(home)
    assert str(info.value).startswith(f"{home / 'config.toml'}: {expected}")


def test_settings_in_range_are_kept(home: Path) -> None:
    (home / "config.toml").write_text(
        "[sms]\nclaim_seconds = 10\nmax_attempts = 1\n"
        "[daemon]\ntick_seconds = 1\nheartbeat_seconds = 0.5\nheartbeat_stale_seconds = 0.6\n"
    )
    settings = load_settings(home)
    assert (settings.claim_seconds, settings.max_attempts, settings.tick_seconds) == (10, 1, 1)
    assert (settings.heartbeat_seconds, settings.heartbeat_stale_seconds) == (0.5, 0.6)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("RAPIDRESPONSE_CLAIM_SECONDS", "2", "RAPIDRESPONSE_CLAIM_SECONDS: claim_seconds must be at least 10"),
        ("RAPIDRESPONSE_CLAIM_SECONDS", "soon", "RAPIDRESPONSE_CLAIM_SECONDS must be a number, like 120"),
        ("RAPIDRESPONSE_TICK_SECONDS", "nan", "RAPIDRESPONSE_TICK_SECONDS: tick_seconds must be a number"),
        ("RAPIDRESPONSE_SMS", "pigeon", "RAPIDRESPONSE_SMS: the transport is not a known SMS transport"),
    ],
)
def test_the_environment_is_checked_like_the_file(
    home: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str,
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=re.escape(expected)):
        load_settings(home)


def test_home_and_operator_come_from_options_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAPIDRESPONSE_HOME", str(tmp_path / "env-home"))
    assert resolve_home(None) == tmp_path / "env-home"
    assert resolve_home(str(tmp_path / "flag")) == tmp_path / "flag"
    assert resolve_operator("Inspecteur Peeters") == "Inspecteur Peeters"
    assert resolve_operator(None) == "officer-test"  # RAPIDRESPONSE_OPERATOR, set by conftest
    with pytest.raises(InputError):
        resolve_operator("   ")


@pytest.mark.parametrize("value", ["-1", "0", "abc", "soon", "nan", "1e12", "121"])
def test_a_twilio_time_out_out_of_range_is_refused_with_the_settings(
    home: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("RAPIDRESPONSE_SMS", "twilio")
    monkeypatch.setenv("RAPIDRESPONSE_TWILIO_TIMEOUT", value)
    with pytest.raises(InputError) as refused:
        load_settings(home)
    assert str(refused.value) == "RAPIDRESPONSE_TWILIO_TIMEOUT must be a number of seconds (0 < t <= 120)"
    monkeypatch.setenv("RAPIDRESPONSE_SMS", "console")  # only the Twilio transport uses it
    assert load_settings(home).transport == "console"


def test_register_refuses_a_bad_twilio_time_out_before_writing_the_case(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from click.testing import CliRunner

    from conftest import MINOR
    from rapidresponse.cli import cli

    for key, value in {"RAPIDRESPONSE_SMS": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
                       "TWILIO_AUTH_TOKEN": "x" * 32, "TWILIO_FROM": "+32470000099",
                       "RAPIDRESPONSE_TWILIO_TIMEOUT": "-1"}.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(cli, ["--home", str(home), "register", "--alias", MINOR["alias"],
                                      "--birth-date", MINOR["birth_date"], "--last-seen", MINOR["last_seen"],
                                      "--missing-since", "1h ago", "--indicator", "hotel"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "RAPIDRESPONSE_TWILIO_TIMEOUT" in result.stderr
    database = home / "rapidresponse.db"
    if database.exists():
        with sqlite3.connect(database) as conn:
            assert conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == 0
