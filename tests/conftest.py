"""Shared fixtures: a real home folder with a real SQLite file, a fake clock, the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rapidresponse.app import App, init_home
from rapidresponse.clock import FakeClock
from rapidresponse.config import load_settings
from rapidresponse.dispatch import run_pass
from rapidresponse.engine import Context, Person, register

#: A fictitious minor. Each value is distinctive so a leak anywhere is easy to find.
MINOR = {
    "alias": "Zorbalina",
    "full_name": "Zorbalina Quixtersen",
    "birth_date": "2011-03-02",
    "last_seen": "Kwikstaartplein Vlinderdorp",
}
SECRETS = (MINOR["alias"], "Quixtersen", MINOR["birth_date"], "Kwikstaartplein", "Vlinderdorp")

START = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # a Saturday, 14:00 in Brussels


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"personal data {secret!r} leaked"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("RAPIDRESPONSE_", "TWILIO_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RAPIDRESPONSE_OPERATOR", "officer-test")
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    init_home(folder)
    return folder


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app(home: Path, clock: FakeClock) -> Iterator[App]:
    application = App(home, "officer-test", clock)
    yield application
    application.close()


@pytest.fixture
def ctx(app: App) -> Context:
    return app.context()


class RecordingTransport:
    """A transport that keeps what it sent and called; scripted failures per number."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, Exception] = {}
        self.fail_calls: dict[str, Exception] = {}

    def check(self) -> None:
        return None

    def send(self, to: str, body: str) -> Any:
        from rapidresponse.sms import Sent

        if to in self.fail:
            raise self.fail[to]
        self.sent.append((to, body))
        return Sent(sid=f"SM{len(self.sent):032d}")

    def call(self, to: str, speech: str, message_id: int) -> Any:
        from rapidresponse.sms import Sent

        if to in self.fail_calls:
            raise self.fail_calls[to]
        self.calls.append((to, speech))
        return Sent(sid=f"CA{len(self.calls):032d}")

    def numbers(self) -> list[str]:
        return [to for to, _ in self.sent]

    def called(self) -> list[str]:
        return [to for to, _ in self.calls]


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def settings(home: Path) -> Any:
    return load_settings(home)


def register_minor(ctx: Context, app: App, **overrides: Any) -> Any:
    """Register the fictitious minor, as an officer would, with overrides."""
    values: dict[str, Any] = {
        "missing_since": ctx.clock.now(),
        "indicators": ("older-partner",),
        "suspected_victim": None,
        "societal_necessity": "undecided",
        "playbook": None,
    }
    values.update(overrides)
    person = Person(
        alias=MINOR["alias"], full_name=MINOR["full_name"],
        birth_date=date.fromisoformat(MINOR["birth_date"]), last_seen=MINOR["last_seen"],
    )
    return register(ctx, person=person, playbooks_for=app.playbook_for, **values)


def tick(ctx: Context, transport: Any, settings: Any) -> Any:
    return run_pass(ctx, transport, settings)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run_cli(*args: str, home: Path, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI as a real process, as a duty officer runs it."""
    full_env = {**os.environ, "RAPIDRESPONSE_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rapidresponse", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout,
    )


def run_cli_at_a_terminal(*args: str, home: Path, typed: str,
                          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI as a real process whose input is a terminal (a pseudo-terminal) on which the
    officer types `typed`; its output streams are pipes, as with `run_cli`."""
    import pty

    controller, terminal = pty.openpty()
    try:
        os.write(controller, typed.encode())
        return subprocess.run(
            [sys.executable, "-m", "rapidresponse", *args], stdin=terminal, capture_output=True,
            text=True, env={**os.environ, "RAPIDRESPONSE_HOME": str(home)}, timeout=timeout,
        )
    finally:
        os.close(terminal)
        os.close(controller)


def write_playbook(home: Path, name: str, text: str) -> Path:
    path = home / "playbooks" / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path




# ---------------------------------------------------------------- Twilio stand-in (issue 4)


@pytest.fixture
def twilio_stub() -> Iterator[Any]:
    """A real local HTTP server speaking Twilio's Messages API; checks every body it got."""
    from twilio_stub import TwilioStub

    stub = TwilioStub().start()
    yield stub
    stub.stop()
    for rec in stub.received():
        assert_no_secrets(f"{rec.body} {rec.status_callback} {rec.twiml}")


@pytest.fixture
def twilio_env(twilio_stub: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """RAPIDRESPONSE_SMS=twilio and TWILIO_* pointing at the stub (2 s request time-out)."""
    env = twilio_stub.env(RAPIDRESPONSE_TWILIO_TIMEOUT="2")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def twilio_transport(twilio_env: dict[str, str]) -> Any:
    from rapidresponse.sms.twilio import TwilioTransport

    transport = TwilioTransport(twilio_env)
    transport.check()
    return transport


#: One step down the youth prosecutor's chain, then the coordinator, and a stand-down.
CHAIN_PLAYBOOK = """\
name = "chain"
title = "Keten"

[[steps]]
id = "alert"
at = "0m"
role = "youth_prosecutor"
notify = "first"
message = "{case}: vermiste minderjarige, graad {grade}. Bel {callback}. Antwoord ACK {ack}"
ack_within = "15m"
escalate_to = "coordinator"

[on_resolved]
message = "{case}: teruggevonden. Geen verdere actie nodig."
"""


def use_playbook_text(app: App, name: str, text: str) -> Any:
    """Write a playbook into the home and load it, validated against the home's contacts."""
    write_playbook(app.home, name, text)
    return app.playbook(name)


#: A step that calls the prosecutor five minutes after an unanswered text, then escalates.
CALL_PLAYBOOK = """\
name = "calls"
title = "Bellen"

[[steps]]
id = "alert"
at = "0m"
role = "youth_prosecutor"
notify = "first"
message = "{case}: vermiste minderjarige, graad {grade}. Bel {callback}. Antwoord ACK {ack}"
ack_within = "15m"
call_after = "5m"
voice = "Dringend bericht. Dossier {case}, graad {grade}. Bel {callback}."
escalate_to = "coordinator"

[[steps]]
id = "later"
at = "30m"
role = "youth_prosecutor"
message = "{case}: stand van zaken? Antwoord ACK {ack}"
ack_within = "15m"

[on_resolved]
message = "{case}: zoekactie afgerond. Opvolging via {callback}."
"""


#: For the supervisor's views (timeline, report, export): a chain that escalates, one that is
#: exhausted, one without acknowledgement, one overdue at registration, one after the return.
REVIEW_PLAYBOOK = """\
name = "review"
title = "Review"

[[steps]]
id = "alert-prosecutor"
at = "0m"
role = "youth_prosecutor"
notify = "first"
message = "{case}: vermiste minderjarige. Bel {callback}. Antwoord ACK {ack}"
ack_within = "15m"
escalate_to = "coordinator"

[[steps]]
id = "alert-child-focus"
at = "0m"
role = "child_focus"
notify = "first"
message = "{case}: vermiste minderjarige. Bel {callback}. Antwoord ACK {ack}"
ack_within = "15m"

[[steps]]
id = "inform-police"
at = "0m"
role = "police"
notify = "all"
message = "{case}: vermiste minderjarige. Coordinatie via {callback}."

[[steps]]
id = "check-missing"
at = "1h"
from = "missing"
role = "coordinator"
message = "{case}: {missing_for} vermist. Antwoord ACK {ack}"
ack_within = "30m"

[on_resolved]
message = "{case}: zoekactie afgerond, opvolging loopt via {callback}."

[[after_resolved]]
id = "refer-reference-centre"
at = "0m"
role = "reference_centre"
message = "{case}: doorverwijzing voor beoordeling. Bel {callback}."

[[after_resolved]]
id = "return-interview"
at = "72h"
role = "coordinator"
message = "{case}: terugkeergesprek binnen 72u. Antwoord ACK {ack}"
ack_within = "2h"
"""


POLICE_FAILS, POLICE_BOUNCES = "+32470000032", "+32470000031"


def build_two_cases(app: App, ctx: Context, clock: Any, transport: Any, settings: Any) -> tuple[str, str]:
    """The two cases of tests/test_report.py's docstring, through the engine on the fake clock."""
    from rapidresponse.engine import acknowledge, resolve
    from rapidresponse.sms import PermanentSendError
    from rapidresponse.webhooks import record_receipt

    playbook = use_playbook_text(app, "review", REVIEW_PLAYBOOK)
    first = register_minor(ctx, app, playbook=playbook, missing_since=clock.now() - timedelta(hours=2)).ref
    tick(ctx, transport, settings)
    clock.advance(minutes=4)
    acknowledge(ctx, first, "child_focus", via="cli", contact="Child Focus backup (fictief)")
    clock.advance(minutes=11)
    tick(ctx, transport, settings)                                  # t=15
    clock.advance(minutes=15)
    tick(ctx, transport, settings)                                  # t=30
    clock.advance(minutes=5)
    acknowledge(ctx, first, "coordinator")                          # t=35
    clock.advance(minutes=25)
    resolve(ctx, first, "found")                                    # t=60
    tick(ctx, transport, settings)
    second = register_minor(ctx, app, playbook=playbook).ref
    transport.fail[POLICE_FAILS] = PermanentSendError("not a mobile number", code="21614")
    tick(ctx, transport, settings)                                  # t=60
    bounced = app.store.one("SELECT sid FROM messages WHERE to_number = ? ORDER BY id DESC", [POLICE_BOUNCES])
    record_receipt(ctx, bounced["sid"], "undelivered", "30003")
    for _ in range(3):                                              # t=75, 90, 105
        clock.advance(minutes=15)
        tick(ctx, transport, settings)
    clock.advance(minutes=5)
    acknowledge(ctx, second, "child_focus")                         # t=110, late
    clock.advance(minutes=20)
    tick(ctx, transport, settings)                                  # t=130
    return first, second
