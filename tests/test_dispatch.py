"""The outbox: which alerts may still go out, the claim lease, and the senders off the tick.

Driven in-process with the fake clock and a scripted transport; a second `App` on the same
home plays the other process (an officer resolving while a send is in flight).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import RecordingTransport, register_minor, tick, write_playbook
from processes import wait_for
from rapidresponse import dispatch, engine
from rapidresponse.app import App
from rapidresponse.clock import FakeClock
from rapidresponse.config import Settings, load_settings
from rapidresponse.contacts import normalise_number
from rapidresponse.engine import Context
from rapidresponse.errors import InputError
from rapidresponse.sms import Sent, TransientSendError
from rapidresponse.states import MessageState, StepState

YP1 = normalise_number("+32 470 00 00 01")
YP2 = normalise_number("+32 470 00 00 02")

#: The youth prosecutors one by one, a minute each, then nobody: the step exhausts.
SHORT_CHAIN = """\
name = "short"
title = "Short chain"

[[steps]]
id = "alert"
at = "0m"
role = "youth_prosecutor"
notify = "first"
message = "{case}: vermist. Bel {callback}. Antwoord ACK {ack}"
ack_within = "1m"

[on_resolved]
message = "{case}: teruggevonden. Geen actie meer nodig."
"""


def start_case(app: App, ctx: Context) -> str:
    write_playbook(app.home, "short", SHORT_CHAIN)
    return str(register_minor(ctx, app, playbook=app.playbook("short")).ref)


def start_case_texting_both(app: App, ctx: Context) -> None:
    """A case whose step texts both youth prosecutors at once."""
    write_playbook(app.home, "short", SHORT_CHAIN.replace('notify = "first"', 'notify = "all"'))
    register_minor(ctx, app, playbook=app.playbook("short"))


def texts_to(transport: RecordingTransport, number: str) -> list[str]:
    """What `number` received, in order: 'alert' or 'stand_down'."""
    return ["stand_down" if "teruggevonden" in body else "alert"
            for to, body in transport.sent if to == number]


def message_rows(ctx: Context, number: str) -> list[dict[str, Any]]:
    return ctx.store.all("SELECT * FROM messages WHERE to_number = ? ORDER BY id", [number])


class ScriptedTransport(RecordingTransport):
    """Records what it sent; `before_send[number]` runs first (and may raise) for that number."""

    def __init__(self) -> None:
        super().__init__()
        self.before_send: dict[str, Callable[[], None]] = {}

    def send(self, to: str, body: str) -> Any:
        hook = self.before_send.get(to)
        if hook is not None:
            hook()
        return super().send(to, body)


def exhaust_while_yp1_retries(ctx: Context, clock: FakeClock, transport: ScriptedTransport,
                              settings: Settings) -> None:
    """YP1's provider keeps answering 503; the chain goes on to YP2 and then runs out."""
    transport.fail[YP1] = TransientSendError("HTTP 503: down", "503")
    tick(ctx, transport, settings)
    for _ in range(2):
        clock.advance(seconds=61)
        tick(ctx, transport, settings)
    assert ctx.store.scalar("SELECT state FROM steps") == StepState.EXHAUSTED
    assert texts_to(transport, YP2) == ["alert"]
    assert message_rows(ctx, YP1)[0]["state"] == MessageState.QUEUED  # still being retried
    del transport.fail[YP1]


# ---------------------------------------------------------------- no alert after its stand-down


def test_an_exhausted_steps_alert_in_flight_at_the_resolve_is_never_sent_after_the_stand_down(
    app: App, ctx: Context, clock: FakeClock, settings: Settings, home: Path
) -> None:
    transport = ScriptedTransport()
    ref = start_case(app, ctx)
    exhaust_while_yp1_retries(ctx, clock, transport, settings)

    officer = App(home, "officer-two", clock)  # another process resolves while YP1's send is out

    def resolve_then_fail() -> None:
        del transport.before_send[YP1]
        engine.resolve(officer.context(), ref, "found")
        raise TransientSendError("HTTP 503: down", "503")

    transport.before_send[YP1] = resolve_then_fail
    for _ in range(5):
        clock.advance(seconds=61)
        tick(ctx, transport, settings)
    officer.close()

    assert texts_to(transport, YP1) == ["stand_down"]
    assert texts_to(transport, YP2) == ["alert", "stand_down"]
    assert message_rows(ctx, YP1)[0]["state"] == MessageState.CANCELLED  # a 503: never accepted


def test_an_expired_claim_of_a_resolved_case_is_not_sent_again_nor_called_cancelled(
    app: App, ctx: Context, clock: FakeClock, settings: Settings
) -> None:
    transport = ScriptedTransport()
    ref = start_case(app, ctx)
    exhaust_while_yp1_retries(ctx, clock, transport, settings)
    clock.advance(seconds=120)
    claimed = dispatch.claim(ctx, settings)  # ... and the process dies mid-send
    assert [row["to_number"] for row in claimed] == [YP1]

    engine.resolve(ctx, ref, "found")
    clock.advance(seconds=settings.claim_seconds + 1)
    for _ in range(3):
        tick(ctx, transport, settings)
        clock.advance(seconds=61)

    assert texts_to(transport, YP1) == ["stand_down"]  # it may have had the alert: told to stop
    row = message_rows(ctx, YP1)[0]
    assert row["state"] == MessageState.UNCONFIRMED  # its send may have succeeded
    assert row["final_at"] is not None


def test_a_timed_out_send_of_a_resolved_case_is_unconfirmed_not_cancelled(
    app: App, ctx: Context, clock: FakeClock, settings: Settings
) -> None:
    transport = ScriptedTransport()
    ref = start_case(app, ctx)
    transport.fail[YP1] = TransientSendError("no answer", "timeout", maybe_sent=True)
    tick(ctx, transport, settings)
    engine.resolve(ctx, ref, "found")
    del transport.fail[YP1]
    clock.advance(seconds=120)
    tick(ctx, transport, settings)

    assert texts_to(transport, YP1) == ["stand_down"]
    assert message_rows(ctx, YP1)[0]["state"] == MessageState.UNCONFIRMED


def test_the_after_return_steps_of_a_resolved_case_still_send(
    app: App, ctx: Context, clock: FakeClock, settings: Settings
) -> None:
    text = SHORT_CHAIN + (
        '\n[[after_resolved]]\nid = "interview"\nat = "1m"\nrole = "coordinator"\n'
        'message = "{case}: terugkeergesprek. Antwoord ACK {ack}"\nack_within = "1h"\n'
    )
    write_playbook(app.home, "short", text)
    ref = register_minor(ctx, app, playbook=app.playbook("short")).ref
    transport = ScriptedTransport()
    tick(ctx, transport, settings)
    engine.resolve(ctx, ref, "found")
    clock.advance(seconds=61)
    tick(ctx, transport, settings)
    assert normalise_number("+32 470 00 00 41") in transport.numbers()


def test_a_stand_down_waits_for_the_alert_in_flight_to_its_number(
    app: App, ctx: Context, clock: FakeClock, settings: Settings
) -> None:
    transport = ScriptedTransport()
    ref = start_case(app, ctx)
    engine.activate_due(ctx)
    claimed = dispatch.claim(ctx, settings)  # YP1's alert is in a sender's hands
    engine.resolve(ctx, ref, "found")
    assert dispatch.claim(ctx, settings) == []  # the stand-down to YP1 waits
    dispatch.send_claimed(ctx, transport, settings, claimed)
    tick(ctx, transport, settings)
    assert texts_to(transport, YP1) == ["alert", "stand_down"]


# ---------------------------------------------------------------- the claim lease


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_a_claim_shorter_than_the_twilio_time_out_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(home, '[sms]\ntransport = "twilio"\nclaim_seconds = 10\n')
    monkeypatch.setenv("RAPIDRESPONSE_TWILIO_TIMEOUT", "60")
    with pytest.raises(InputError, match=r"claim_seconds \(10\) must be more than 122"):
        load_settings(home)
    monkeypatch.setenv("RAPIDRESPONSE_TWILIO_TIMEOUT", "2")
    assert load_settings(home).claim_seconds == 10


def test_the_default_twilio_time_out_needs_a_longer_claim(home: Path) -> None:
    write_config(home, '[sms]\ntransport = "twilio"\nclaim_seconds = 20\n')
    with pytest.raises(InputError, match="RAPIDRESPONSE_TWILIO_TIMEOUT"):
        load_settings(home)


def test_the_console_transport_takes_the_shortest_claim(home: Path) -> None:
    write_config(home, "[sms]\nclaim_seconds = 10\n")
    assert load_settings(home).claim_seconds == 10


@pytest.mark.parametrize("value", ["1e12", "86401", "1e308"])
def test_an_absurd_claim_is_refused(home: Path, value: str) -> None:
    write_config(home, f"[sms]\nclaim_seconds = {value}\n")
    with pytest.raises(InputError, match="claim_seconds must be at most 86400"):
        load_settings(home)


def test_register_refuses_an_absurd_claim_before_writing_the_case(home: Path) -> None:
    """Issue 7, failure 6: `claim_seconds = 1e12` passed, and register died after writing."""
    from conftest import MINOR, run_cli

    write_config(home, "[sms]\nclaim_seconds = 1e12\n")
    result = run_cli("register", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
                     "--last-seen", MINOR["last_seen"], "--missing-since", "1h ago",
                     "--indicator", "hotel", home=home)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "claim_seconds" in result.stderr
    assert "Traceback" not in result.stderr
    app = App(home, "officer-test")
    try:
        assert app.store.scalar("SELECT COUNT(*) FROM cases") == 0
    finally:
        app.close()


# ---------------------------------------------------------------- results


def test_a_late_success_of_an_unconfirmed_row_is_recorded_as_sent(
    app: App, ctx: Context, clock: FakeClock, settings: Settings
) -> None:
    transport = ScriptedTransport()
    ref = start_case(app, ctx)
    engine.activate_due(ctx)
    claimed = dispatch.claim(ctx, settings)
    engine.resolve(ctx, ref, "found")
    clock.advance(seconds=settings.claim_seconds + 1)
    dispatch.claim(ctx, settings)  # the claim ran out: unconfirmed
    assert message_rows(ctx, YP1)[0]["state"] == MessageState.UNCONFIRMED
    dispatch.send_claimed(ctx, transport, settings, claimed)  # ... and then the provider answered
    row = message_rows(ctx, YP1)[0]
    assert row["state"] == MessageState.SENT and row["sid"]


def test_a_transport_bug_keeps_the_message(
    app: App, ctx: Context, settings: Settings
) -> None:
    class Broken(RecordingTransport):
        def send(self, to: str, body: str) -> Sent:
            raise ZeroDivisionError

    start_case(app, ctx)
    report = tick(ctx, Broken(), settings)
    assert [r["to"] for r in report.retrying] == [YP1]
    assert message_rows(ctx, YP1)[0]["state"] == MessageState.QUEUED


def test_parallel_sends_record_each_result(app: App, ctx: Context, settings: Settings) -> None:
    start_case_texting_both(app, ctx)
    gate = threading.Barrier(2, timeout=5)  # both sends are in flight at once, or this hangs

    class Together(RecordingTransport):
        def send(self, to: str, body: str) -> Sent:
            gate.wait()
            return super().send(to, body)

    report = tick(ctx, Together(), settings)
    assert sorted(r["to"] for r in report.sent) == sorted([YP1, YP2])
    assert json.loads(json.dumps(report.sent))  # the report is plain data for --json


# ---------------------------------------------------------------- the senders off the tick


def test_a_send_that_hangs_holds_one_sender_and_no_other_message(
    app: App, ctx: Context, settings: Settings,
) -> None:
    start_case_texting_both(app, ctx)
    release = threading.Event()

    class Hangs(RecordingTransport):
        def send(self, to: str, body: str) -> Sent:
            if to == YP1:
                assert release.wait(10)
            return super().send(to, body)

    transport = Hangs()
    senders = dispatch.SenderPool(db_path=ctx.store.path, clock=ctx.clock, contacts=lambda: ctx.contacts,
                                  transport=transport, settings=settings, workers=4)
    try:
        cycle = dispatch.process_all(ctx, settings, capacity=senders.capacity())
        assert (cycle.fired, len(cycle.claimed)) == (1, 2)
        senders.submit(cycle.claimed)  # returns at once: the cycle never waits for the network
        wait_for(lambda: message_rows(ctx, YP2)[0]["state"] == MessageState.SENT,
                 "YP2's text, not held behind YP1's", timeout=5)
        assert message_rows(ctx, YP1)[0]["state"] == MessageState.SENDING
        assert senders.capacity() == 3  # one sender held, the rest free
        release.set()
    finally:
        release.set()
        senders.shutdown()
    assert message_rows(ctx, YP1)[0]["state"] == MessageState.SENT
    assert senders.capacity() == 4


def test_the_cycle_claims_no_more_than_the_free_senders(
    app: App, ctx: Context, settings: Settings,
) -> None:
    start_case_texting_both(app, ctx)
    cycle = dispatch.process_all(ctx, settings, capacity=1)
    assert len(cycle.claimed) == 1
    queued = ctx.store.scalar("SELECT COUNT(*) FROM messages WHERE state = 'queued'")
    assert queued == 1  # waits in the outbox, its lease not yet running
    assert dispatch.process_all(ctx, settings, capacity=0).claimed == []
