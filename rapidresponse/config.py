"""The home folder, its settings file and the operator's identity."""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidresponse.errors import InputError

DB_NAME = "rapidresponse.db"
CONTACTS_NAME = "contacts.toml"
CONFIG_NAME = "config.toml"
PLAYBOOKS_DIR = "playbooks"
LOCK_NAME = "daemon.lock"

TRANSPORTS = ("console", "twilio")


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("rapidresponse", appauthor=False))


def resolve_home(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("RAPIDRESPONSE_HOME")
    return Path(env).expanduser() if env else default_home()


def resolve_operator(explicit: str | None) -> str:
    """Who is acting: every event records it."""
    name = explicit or os.environ.get("RAPIDRESPONSE_OPERATOR")
    if not name:
        try:
            name = getpass.getuser()
        except Exception:
            name = "unknown"
    name = name.strip()
    if not name:
        raise InputError("the operator name is empty: pass --operator NAME")
    return name


@dataclass(frozen=True)
class Settings:
    """What config.toml may set; the environment wins over the file."""

    transport: str = "console"
    tick_seconds: float = 0.5
    heartbeat_seconds: float = 2.0
    heartbeat_stale_seconds: float = 15.0
    claim_seconds: float = 120.0
    max_attempts: int = 6
    extra: dict[str, Any] = field(default_factory=dict)


_CONFIG_KEYS = {
    "sms": {"transport", "claim_seconds", "max_attempts"},
    "daemon": {"tick_seconds", "heartbeat_seconds", "heartbeat_stale_seconds"},
}


def load_settings(home: Path) -> Settings:
    path = home / CONFIG_NAME
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: {exc}") from None
    values: dict[str, Any] = {}
    for section, table in raw.items():
        if section not in _CONFIG_KEYS or not isinstance(table, dict):
            raise InputError(f"{path}: unknown section [{section}]")
        for key, value in table.items():
            if key not in _CONFIG_KEYS[section]:
                raise InputError(f"{path}: unknown key '{key}' in [{section}]")
            values[key] = value
    env_transport = os.environ.get("RAPIDRESPONSE_SMS")
    if env_transport:
        values["transport"] = env_transport
    env_claim = os.environ.get("RAPIDRESPONSE_CLAIM_SECONDS")
    if env_claim:
        values["claim_seconds"] = _number(env_claim, "RAPIDRESPONSE_CLAIM_SECONDS")
    env_tick = os.environ.get("RAPIDRESPONSE_TICK_SECONDS")
    if env_tick:
        values["tick_seconds"] = _number(env_tick, "RAPIDRESPONSE_TICK_SECONDS")
    settings = Settings(**values)
    if settings.transport not in TRANSPORTS:
        raise InputError(
            f"unknown SMS transport '{settings.transport}': choose one of {', '.join(TRANSPORTS)}"
        )
    if not 0 < settings.tick_seconds <= 1:
        raise InputError("tick_seconds must be more than 0 and at most 1")
    return settings


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{name} must be a number of seconds, not '{text}'") from None
