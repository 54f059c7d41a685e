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
        ('[sms]\ntransport = "pigeon"\n', "unknown SMS transport 'pigeon'"),
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


def test_home_and_operator_come_from_options_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAPIDRESPONSE_HOME", str(tmp_path / "env-home"))
    assert resolve_home(None) == tmp_path / "env-home"
    assert resolve_home(str(tmp_path / "flag")) == tmp_path / "flag"
    assert resolve_operator("Inspecteur Peeters") == "Inspecteur Peeters"
    assert resolve_operator(None) == "officer-test"  # RAPIDRESPONSE_OPERATOR, set by conftest
    with pytest.raises(InputError):
        resolve_operator("   ")
