"""The clock jumps an hour forward, then back: nothing fires twice, nothing is lost, and the
backward jump delays no escalation and no retry by its size."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from conftest import RecordingTransport, register_minor, tick, use_playbook_text
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.clock import FakeClock
from rapidresponse.config import Settings
from rapidresponse.contacts import normalise_number
from rapidresponse.engine import Context
from rapidresponse.sms import TransientSendError

YP1 = normalise_number("+32 470 00 00 01")
YP2 = normalise_number("+32 470 00 00 02")
CO1 = normalise_number("+32 470 00 00 41")

PLAYBOOK = """
name = "jumps"
title = "Clock jumps"

[[steps]]
id = "chain"
at = "0m"
role = "youth_prosecutor"
message = "{case}: vermist. Bel {callback}. Antwoord ACK {ack}"
ack_within = "15m"
escalate_to = "coordinator"

[[steps]]
id = "later"
at = "30m"
role = "police"
notify = "all"
message = "{case}: na een half uur."
"""


def kinds(ctx: Context, kind: str) -> list[dict[str, Any]]:
    return [e for e in audit.events(ctx.store) if e["kind"] == kind]


def test_an_hour_forward_then_back_fires_each_step_once_and_delays_nothing(
    app: App, ctx: Context, clock: FakeClock, settings: Settings,
) -> None:
    transport = RecordingTransport()
    register_minor(ctx, app, playbook=use_playbook_text(app, "jumps", PLAYBOOK))
    start = clock.now()
    tick(ctx, transport, settings)
    assert transport.numbers() == [YP1]

    clock.advance(hours=1)  # forward: everything overdue happens once, logged late
    tick(ctx, transport, settings)
    late = {e["detail"]["step"]: e["detail"]["late_seconds"] for e in kinds(ctx, "step.due")}
    assert late["later"] == 30 * 60
    assert Counter(transport.numbers())[YP2] == 1

    clock.set(start + timedelta(minutes=1))  # ... and back
    for _ in range(3):
        tick(ctx, transport, settings)
    assert len(kinds(ctx, "step.due")) == 2  # nothing fired again
    sent_before = len(transport.sent)

    clock.advance(minutes=15, seconds=1)  # YP2's 15 minutes, counted again from the jump back
    tick(ctx, transport, settings)
    assert CO1 in transport.numbers()[sent_before:]  # escalated 15 min later, not 75
    assert kinds(ctx, "step.clock_went_back")
    assert all(n == 1 for n in Counter(transport.sent).values())  # no text twice


def test_a_retry_planned_before_the_clock_went_back_is_not_delayed_an_hour(
    app: App, ctx: Context, clock: FakeClock, settings: Settings,
) -> None:
    transport = RecordingTransport()
    register_minor(ctx, app, playbook=use_playbook_text(app, "jumps", PLAYBOOK))
    transport.fail[YP1] = TransientSendError("HTTP 503: down", "503")
    tick(ctx, transport, settings)
    del transport.fail[YP1]
    clock.advance(hours=-1)
    tick(ctx, transport, settings)
    assert transport.numbers() == [YP1]
