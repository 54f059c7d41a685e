"""The provider misbehaves: down, 500 for a minute, slower than its time-out, answering garbage.

The real `twilio` client talks HTTP to the local stand-in; time is the injected clock, so a
minute of outage takes no minute. What must hold: no alert is lost or burnt through the chain,
retries stay bounded, and a text that may have arrived twice is flagged.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from conftest import CHAIN_PLAYBOOK, register_minor, use_playbook_text
from rapidresponse.app import App
from rapidresponse.clock import FakeClock
from rapidresponse.config import Settings
from rapidresponse.contacts import normalise_number
from rapidresponse.dispatch import BACKOFF_CAP, run_pass
from rapidresponse.engine import Context
from rapidresponse.sms.twilio import TwilioTransport

YP1 = normalise_number("+32 470 00 00 01")


def transport_for(stub: Any, **extra: str) -> TwilioTransport:
    transport = TwilioTransport(stub.env(**extra))
    transport.check()
    return transport


def run_for(ctx: Context, clock: FakeClock, transport: TwilioTransport, settings: Settings,
            seconds: float, step: float = 5.0) -> None:
    """Passes every `step` seconds of the injected clock, as the daemon's ticks would."""
    end = clock.now() + timedelta(seconds=seconds)
    while clock.now() < end:
        run_pass(ctx, transport, settings)
        clock.advance(seconds=step)


def alert_rows(ctx: Context) -> list[dict[str, Any]]:
    return ctx.store.all("SELECT * FROM messages WHERE kind = 'alert' ORDER BY id")


def retries(ctx: Context) -> list[dict[str, Any]]:
    import json

    return [json.loads(r["detail"]) for r in ctx.store.all(
        "SELECT detail FROM events WHERE kind = 'sms.retry' ORDER BY seq")]


@pytest.fixture
def case(app: App, ctx: Context) -> str:
    return str(register_minor(ctx, app, playbook=use_playbook_text(app, "chain", CHAIN_PLAYBOOK)).ref)


def test_a_provider_down_for_twenty_minutes_loses_no_alert(
    ctx: Context, clock: FakeClock, settings: Settings, stub: Any, case: str,
) -> None:
    from twilio_stub import TwilioStub

    with TwilioStub() as gone:
        down = transport_for(gone)
    run_for(ctx, clock, down, settings, seconds=20 * 60, step=30)  # connection refused throughout
    rows = alert_rows(ctx)
    assert [r["state"] for r in rows] == ["queued", "queued"]  # YP1, then YP2 on time: none burnt
    assert all(r["attempts"] >= 5 for r in rows[:1])
    assert any(d.get("not_getting_through") for d in retries(ctx))  # status turns red

    run_for(ctx, clock, transport_for(stub), settings, seconds=65)  # back (backoff is capped at 60 s)
    assert [r["state"] for r in alert_rows(ctx)] == ["sent", "sent"]
    assert Counter(r.to for r in stub.accepted()) == {YP1: 1, normalise_number("+32 470 00 00 02"): 1}


def test_500_for_a_minute_is_retried_with_bounded_backoff_then_sent_once(
    ctx: Context, clock: FakeClock, settings: Settings, stub: Any, case: str,
) -> None:
    from twilio_stub import Reply

    stub.script(YP1, *(Reply(status=500) for _ in range(1000)))
    transport = transport_for(stub)
    run_for(ctx, clock, transport, settings, seconds=60, step=1)
    during = len(stub.received(YP1))
    assert 4 <= during <= 8  # backoff 2, 4, 8, 16, 32 s (with jitter): no hammering, no giving up
    stub.clear(YP1)
    # The last failure may have come just before the minute was up, with the longest backoff
    # (the cap, jittered up to it): passes for the cap and two more, or the retry is not yet due.
    run_for(ctx, clock, transport, settings, seconds=BACKOFF_CAP + 10, step=5)
    [row, *_] = alert_rows(ctx)
    assert row["state"] == "sent" and not row["possible_duplicate"]  # a 500 was never accepted
    assert len(stub.accepted(YP1)) == 1
    assert ctx.store.scalar("SELECT state FROM steps") == "active"  # the chain kept its timing


def test_a_provider_slower_than_its_time_out_is_retried_and_the_duplicate_flagged(
    ctx: Context, clock: FakeClock, settings: Settings, stub: Any, case: str,
) -> None:
    from twilio_stub import Reply

    stub.script(YP1, Reply(delay=1.5))  # it takes the text, but answers after the client gave up
    transport = transport_for(stub, RAPIDRESPONSE_TWILIO_TIMEOUT="1")
    run_pass(ctx, transport, settings)
    assert stub.wait_for(lambda s: s.received(YP1)[0].answered, timeout=5)
    clock.advance(seconds=10)
    run_pass(ctx, transport, settings)
    [row, *_] = alert_rows(ctx)
    assert row["state"] == "sent" and row["possible_duplicate"]
    assert len(stub.accepted(YP1)) == 2  # it arrived twice, and the row says it may have
    assert retries(ctx)[0]["may_have_been_sent"]


@pytest.mark.parametrize("garbage", [
    {"status": 200, "raw": "<html>gateway</html>"},
    {"status": 201, "raw": '{"status": "queued"}'},
    {"status": 502, "raw": "<html>bad gateway</html>"},
])
def test_garbage_answers_are_retried_never_lost(
    ctx: Context, clock: FakeClock, settings: Settings, stub: Any, case: str,
    garbage: dict[str, Any],
) -> None:
    from twilio_stub import Reply

    stub.script(YP1, Reply(**garbage), Reply(**garbage))
    transport = transport_for(stub)
    run_for(ctx, clock, transport, settings, seconds=60, step=5)
    [row, *_] = alert_rows(ctx)
    assert row["state"] == "sent"
    assert len(stub.received(YP1)) == 3
    # a 2xx we could not read may have been a text accepted: the re-send is flagged
    assert bool(row["possible_duplicate"]) == (garbage["status"] < 300)
