"""The home folder, its settings file and the operator's identity."""

from __future__ import annotations

import getpass
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidresponse import tomlfile
from rapidresponse.errors import InputError
from rapidresponse.vocab import Vocabulary

DB_NAME = "rapidresponse.db"
CONTACTS_NAME = "contacts.toml"
CONFIG_NAME = "config.toml"
PLAYBOOKS_DIR = "playbooks"
LOCK_NAME = "daemon.lock"

TRANSPORTS = ("console", "twilio")
TRANSPORT_WORDS = Vocabulary.of("SMS transport", TRANSPORTS)
#: A claim shorter than a slow send (Twilio's time-out and retries) would let a second
#: process take the message over while it is still being sent.
MIN_CLAIM_SECONDS = 10
#: A day: a claim longer than that only delays the re-send after a crash (and overflows dates).
MAX_CLAIM_SECONDS = 86_400
#: The Twilio client's time-out, for connecting and again for the answer (the transport's own).
TWILIO_TIMEOUT_VAR = "RAPIDRESPONSE_TWILIO_TIMEOUT"
DEFAULT_TWILIO_TIMEOUT = 10.0
MAX_TWILIO_TIMEOUT = 120
#: What a claim must leave beyond the longest send: recording the result, a busy database.
LEASE_MARGIN_SECONDS = 2.0


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
    #: How often the daemon writes the log's head to the anchor file and syslog (0: never).
    anchor_seconds: float = 3600.0
    #: The anchor file's folder; relative to the home. Put it on another volume.
    anchor_folder: str = "."
    #: Days a closed case's personal data is kept after its last follow-up (then `purge --due`).
    retention_days: int = 90

    def anchor_path(self, home: Path) -> Path:
        """The folder of the anchor file: `anchor_folder`, relative to the home unless absolute."""
        return home / Path(self.anchor_folder).expanduser()


_CONFIG_KEYS = {
    "sms": {"transport", "claim_seconds", "max_attempts"},
    "daemon": {"tick_seconds", "heartbeat_seconds", "heartbeat_stale_seconds"},
    "audit": {"anchor_seconds", "anchor_folder"},
    "retention": {"retention_days"},
}


def load_settings(home: Path) -> Settings:
    """config.toml, then the environment; every value checked, each mistake one sentence."""
    path = home / CONFIG_NAME
    raw: dict[str, Any] = {}
    if path.exists():
        raw = tomlfile.load(path)
    values: dict[str, Any] = {}
    where: dict[str, str] = {}  # key → where it was set: the file and section, or the variable
    for section, table in raw.items():
        if section not in _CONFIG_KEYS or not isinstance(table, dict):
            raise InputError(f"{path}: unknown section [{section}]")
        for key, value in table.items():
            if key not in _CONFIG_KEYS[section]:
                raise InputError(f"{path}: unknown key '{key}' in [{section}]")
            values[key] = value
            where[key] = f"{path}: [{section}]"
    for name, key in _ENV_KEYS.items():
        text = os.environ.get(name)
        if text:
            values[key] = text if key == "transport" else _number(text, name)
            where[key] = f"{name}:"
    for key, value in values.items():
        values[key] = _check(key, value, where[key])
    settings = Settings(**values)
    _check_lease(settings, where.get("claim_seconds", "the default"), os.environ)
    if settings.heartbeat_stale_seconds <= settings.heartbeat_seconds:
        place = where.get("heartbeat_stale_seconds") or where["heartbeat_seconds"]
        raise InputError(
            f"{place} heartbeat_stale_seconds ({settings.heartbeat_stale_seconds:g}) must be more than"
            f" heartbeat_seconds ({settings.heartbeat_seconds:g}), or every heartbeat looks stale"
        )
    return settings


#: Environment variables that override the file.
_ENV_KEYS = {
    "RAPIDRESPONSE_SMS": "transport",
    "RAPIDRESPONSE_CLAIM_SECONDS": "claim_seconds",
    "RAPIDRESPONSE_TICK_SECONDS": "tick_seconds",
}


#: The range of each number, so a typo (an extra zero, 1e12) is refused before anything runs.
RANGES: dict[str, tuple[float, float]] = {
    "tick_seconds": (0.01, 1.0),
    "heartbeat_seconds": (0.1, 60.0),
    "heartbeat_stale_seconds": (0.2, 3600.0),
    "max_attempts": (1, 50),
}


def _check(key: str, value: Any, where: str) -> Any:
    """One setting's type and range, its value as used; `where` is the file and section, or the variable."""
    if key == "transport":
        if not isinstance(value, str):
            raise InputError(f"{where} transport must be text: one of {', '.join(TRANSPORTS)}")
        return TRANSPORT_WORDS.pick(value, what=f"{where} the transport")
    if key == "anchor_folder":
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where} anchor_folder must be a folder path, like \"/mnt/anchors\"")
        return value
    if key == "anchor_seconds":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"{where} anchor_seconds must be a number of seconds (0: no anchors)")
        if value != 0 and not 10 <= value <= 86400:
            raise InputError(f"{where} anchor_seconds must be 0 (no anchors) or between 10 and 86400")
        return value
    if key == "retention_days":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
            raise InputError(f"{where} retention_days must be a whole number of days from 1 to 3650")
        return value
    if key == "max_attempts":
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # from the environment
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where} max_attempts must be a whole number of attempts, like 6")
    elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where} {key} must be a number of seconds")
    if key in RANGES:
        low, high = RANGES[key]
        if not low <= value <= high:
            raise InputError(f"{where} {key} must be from {low:g} to {high:g}")
    if key == "claim_seconds" and value < MIN_CLAIM_SECONDS:
        raise InputError(
            f"{where} claim_seconds must be at least {MIN_CLAIM_SECONDS}: a send that takes longer"
            " than its claim is sent twice"
        )
    if key == "claim_seconds" and value > MAX_CLAIM_SECONDS:
        raise InputError(
            f"{where} claim_seconds must be at most {MAX_CLAIM_SECONDS} (a day): it is how long"
            " a crashed send waits before it is sent again"
        )
    return value


def twilio_timeout(env: Mapping[str, str]) -> float:
    """The Twilio client's time-out from the environment (default 10 s); InputError if it is not
    a number of seconds in 0 < t <= 120 — refused with the settings, before anything is written."""
    text = env.get(TWILIO_TIMEOUT_VAR, "").strip()
    if not text:
        return DEFAULT_TWILIO_TIMEOUT
    try:
        timeout = float(text)
    except ValueError:
        timeout = math.nan
    if not 0 < timeout <= MAX_TWILIO_TIMEOUT:  # false for nan
        raise InputError(f"{TWILIO_TIMEOUT_VAR} must be a number of seconds"
                         f" (0 < t <= {MAX_TWILIO_TIMEOUT})")
    return timeout


def longest_send_seconds(transport: str, env: Mapping[str, str]) -> float:
    """How long one send can take: the Twilio client waits its time-out to connect and again
    for the answer."""
    return 2 * twilio_timeout(env) if transport == "twilio" else 0.0


def _check_lease(settings: Settings, where: str, env: Mapping[str, str]) -> None:
    """The claim must outlast any send: a claim that runs out mid-send lets another process
    send the text again, or mark `cancelled` a text the phone then receives."""
    longest = longest_send_seconds(settings.transport, env)
    floor = longest + LEASE_MARGIN_SECONDS
    if settings.claim_seconds <= floor:
        raise InputError(
            f"{where} claim_seconds ({settings.claim_seconds:g}) must be more than {floor:g}: a send"
            f" through {settings.transport} can take {longest:g} s ({TWILIO_TIMEOUT_VAR} to connect"
            " and again for the answer), and a claim that runs out mid-send sends the text twice"
        )


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{name} must be a number, like 120") from None
