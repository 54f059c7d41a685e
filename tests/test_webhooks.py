"""Twilio's webhooks: signed delivery receipts and signed ACK replies, through the WSGI app."""

from __future__ import annotations

import io
import itertools
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

import pytest
from click.testing import CliRunner
from twilio.request_validator import RequestValidator
from twilio_stub import AUTH_TOKEN, TwilioStub

from conftest import (
    CHAIN_PLAYBOOK,
    assert_no_secrets,
    register_minor,
    tick,
    use_playbook_text,
    write_playbook,
)
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.engine import Context, resolve
from rapidresponse.errors import OperationalFailure
from rapidresponse.sms.twilio import TwilioTransport
from rapidresponse.webhooks import WebhookApp, make_app, parse_ack, serve

PUBLIC = "https://rr.example.org"
PROSECUTOR = "+32470000001"
PROSECUTOR_BACKUP = "+32470000002"
COORDINATOR = "+32470000041"
STRANGER = "+32470999999"

CHAIN = CHAIN_PLAYBOOK + """

[[after_resolved]]
id = "return-interview"
at = "1h"
role = "coordinator"
message = "{case}: terugkeergesprek plannen. Antwoord ACK {ack}"
ack_within = "2h"
"""


@pytest.fixture
def webapp(home: Path, clock: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("RAPIDRESPONSE_PUBLIC_URL", PUBLIC)
    application = make_app(home, clock=clock, unknown_sid_wait=0)
    yield application
    application.close()


@pytest.fixture
def chain(app: App, home: Path) -> Any:
    write_playbook(home, "chain", CHAIN)
    return app.playbook("chain")


@pytest.fixture
def sent_case(ctx: Context, app: App, chain: Any, settings: Any, twilio_stub: TwilioStub) -> Any:
    """A case whose first alert went out through the stand-in: it has a real SID."""
    reg = register_minor(ctx, app, playbook=chain)
    tick(ctx, TwilioTransport(twilio_stub.env()), settings)
    return reg


def post(application: WebhookApp, path: str, params: dict[str, str], *, sign: bool = True,
         token: str = AUTH_TOKEN, signed_url: str | None = None, method: str = "POST",
         ctype: str = "application/x-www-form-urlencoded") -> tuple[str, str]:
    """One request through the WSGI callable, signed the way Twilio signs it."""
    body = urlencode(params).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_TYPE": ctype,
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
    }
    setup_testing_defaults(environ)
    if sign:
        signature = RequestValidator(token).compute_signature(signed_url or PUBLIC + path, params)
        environ["HTTP_X_TWILIO_SIGNATURE"] = signature
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    text = b"".join(application(environ, start_response)).decode()
    assert "Traceback" not in text and "Error" not in text
    assert_no_secrets(text)
    return seen["status"], text


#: One text to the prosecutors, no acknowledgement wanted: done once sent, unless it bounces.
NOTICE_PLAYBOOK = """\
name = "notice"
title = "Melding"

[[steps]]
id = "notice"
at = "0m"
role = "youth_prosecutor"
message = "{case}: ter info. Bel {callback}."
"""


def receipt(sid: str, status: str, error: str | None = None) -> dict[str, str]:
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
              "AccountSid": "AC" + "0" * 32, "To": PROSECUTOR, "From": "+32460000000",
              "ApiVersion": "2010-04-01"}
    if error:
        params["ErrorCode"] = error
    return params


_INBOUND_SIDS = itertools.count(1)


def inbound(sender: str, body: str) -> dict[str, str]:
    """A reply as Twilio posts it; each one a new text with its own MessageSid."""
    sid = f"SM{next(_INBOUND_SIDS):032x}"
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": "+32460000000", "Body": body, "NumMedia": "0"}


def msg_rows(ctx: Context) -> list[dict[str, Any]]:
    return ctx.store.all("SELECT * FROM messages ORDER BY id")


def kinds(ctx: Context, kind: str) -> list[dict[str, Any]]:
    return [e for e in audit.events(ctx.store) if e["kind"] == kind]


def step_state(ctx: Context, key: str = "alert") -> str:
    return str(ctx.store.scalar("SELECT state FROM steps WHERE step_key = ?", [key]))


# ---------------------------------------------------------------- delivery receipts


def test_delivered_is_recorded_once_and_a_late_sent_changes_nothing(
    ctx: Context, sent_case: Any, webapp: WebhookApp,
) -> None:
    [msg] = msg_rows(ctx)
    assert post(webapp, "/twilio/status", receipt(msg["sid"], "delivered")) == ("200 OK", "updated\n")
    assert post(webapp, "/twilio/status", receipt(msg["sid"], "sent"))[1] == "unchanged\n"
    assert post(webapp, "/twilio/status", receipt(msg["sid"], "delivered"))[1] == "unchanged\n"
    assert post(webapp, "/twilio/status", receipt(msg["sid"], "undelivered", "30003"))[1] == "unchanged\n"
    [msg] = msg_rows(ctx)
    assert msg["state"] == "delivered" and msg["final_at"]
    [event] = kinds(ctx, "sms.delivered")
    assert event["detail"]["sid"] == msg["sid"] and event["case"] == sent_case.ref
    assert step_state(ctx) == "active"  # delivered is not acknowledged
    assert audit.verify(ctx.store).ok


def test_undelivered_moves_the_step_on_at_once(
    ctx: Context, sent_case: Any, webapp: WebhookApp, settings: Any, twilio_stub: TwilioStub,
) -> None:
    [first] = msg_rows(ctx)
    status, _ = post(webapp, "/twilio/status", receipt(first["sid"], "undelivered", "30003"))
    assert status == "200 OK"
    first, second = msg_rows(ctx)
    assert (first["state"], first["error_code"]) == ("undelivered", "30003")
    assert "unreachable" in first["error_text"]
    assert (second["to_number"], second["state"]) == (PROSECUTOR_BACKUP, "queued")
    [event] = kinds(ctx, "sms.undelivered")
    assert event["detail"]["error_code"] == "30003"
    assert kinds(ctx, "step.next_contact")[0]["detail"]["reason"] == "message not delivered"
    tick(ctx, TwilioTransport(twilio_stub.env()), settings)  # the daemon's next tick sends it
    assert [r.to for r in twilio_stub.accepted()] == [PROSECUTOR, PROSECUTOR_BACKUP]


def test_failed_after_the_chain_moved_on_changes_only_the_message(
    ctx: Context, sent_case: Any, webapp: WebhookApp, clock: Any, settings: Any,
    twilio_stub: TwilioStub,
) -> None:
    clock.advance(minutes=16)
    tick(ctx, TwilioTransport(twilio_stub.env()), settings)  # timed out: on to the backup
    first, backup = msg_rows(ctx)
    assert backup["to_number"] == PROSECUTOR_BACKUP
    post(webapp, "/twilio/status", receipt(first["sid"], "failed", "30005"))
    rows = msg_rows(ctx)
    assert rows[0]["state"] == "failed" and len(rows) == 2  # the backup is not skipped
    assert kinds(ctx, "sms.failed")


def test_an_unknown_sid_is_answered_and_logged(ctx: Context, webapp: WebhookApp) -> None:
    status, text = post(webapp, "/twilio/status", receipt("SM" + "c" * 32, "undelivered", "30003"))
    assert (status, text) == ("200 OK", "unknown\n")
    [event] = kinds(ctx, "sms.receipt_unmatched")
    assert event["detail"]["status"] == "undelivered"


def test_a_failure_receipt_that_overtakes_the_send_is_applied_when_the_sid_is_recorded(
    ctx: Context, app: App, webapp: WebhookApp, settings: Any, transport: Any,
) -> None:
    """Twilio may call back before the sender has written the SID: the receipt waits, and the
    step still moves on once the SID is known."""
    playbook = use_playbook_text(app, "notice", NOTICE_PLAYBOOK)
    register_minor(ctx, app, playbook=playbook)
    first_sid = f"SM{1:032d}"  # the RecordingTransport's first SID
    status, text = post(webapp, "/twilio/status", receipt(first_sid, "undelivered", "30003"))
    assert (status, text) == ("200 OK", "unknown\n")
    tick(ctx, transport, settings)  # the send is recorded; the held receipt applies at once
    rows = msg_rows(ctx)
    assert rows[0]["state"] == "undelivered" and rows[0]["sid"] == first_sid
    assert [r["to_number"] for r in rows] == [PROSECUTOR, PROSECUTOR_BACKUP]  # moved on
    assert ctx.store.scalar("SELECT COUNT(*) FROM early_receipts") == 0


def test_intermediate_states_are_ignored(ctx: Context, sent_case: Any, webapp: WebhookApp) -> None:
    [msg] = msg_rows(ctx)
    assert post(webapp, "/twilio/status", receipt(msg["sid"], "queued"))[1] == "ignored\n"
    assert msg_rows(ctx)[0]["state"] == "sent"


# ---------------------------------------------------------------- signatures and bad requests


@pytest.mark.parametrize("path", ["/twilio/status", "/twilio/inbound"])
def test_unsigned_and_forged_requests_are_refused(
    ctx: Context, sent_case: Any, webapp: WebhookApp, path: str,
) -> None:
    [msg] = msg_rows(ctx)
    params = (receipt(msg["sid"], "undelivered", "30003") if path.endswith("status")
              else inbound(PROSECUTOR, f"ACK {sent_case.ack_code}"))
    assert post(webapp, path, params, sign=False)[0] == "403 Forbidden"
    assert post(webapp, path, params, token="0" * 32)[0] == "403 Forbidden"
    assert post(webapp, path, params, signed_url="https://evil.example.org" + path)[0] == "403 Forbidden"
    events_before = len(list(audit.events(ctx.store)))
    assert msg_rows(ctx)[0]["state"] == "sent" and step_state(ctx) == "active"
    assert len(list(audit.events(ctx.store))) == events_before


def test_a_tampered_body_breaks_the_signature(ctx: Context, sent_case: Any, webapp: WebhookApp) -> None:
    [msg] = msg_rows(ctx)
    params = receipt(msg["sid"], "delivered")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/status", params)
    tampered = {**params, "MessageStatus": "undelivered"}
    body = urlencode(tampered).encode()
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/twilio/status",
                               "CONTENT_TYPE": "application/x-www-form-urlencoded",
                               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                               "HTTP_X_TWILIO_SIGNATURE": signature}
    setup_testing_defaults(environ)
    statuses: list[str] = []
    webapp(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["403 Forbidden"] and msg_rows(ctx)[0]["state"] == "sent"


def test_bad_requests_get_a_short_answer(webapp: WebhookApp) -> None:
    assert post(webapp, "/twilio/status", {"MessageStatus": "delivered"}) == (
        "400 Bad Request", "MessageSid is missing or malformed\n")
    assert post(webapp, "/twilio/status", receipt("SM" + "a" * 32, "DROP TABLE"))[0] == "400 Bad Request"
    assert post(webapp, "/twilio/inbound", {"Body": "ACK 1234"})[0] == "400 Bad Request"
    assert post(webapp, "/elsewhere", {})[0] == "404 Not Found"
    assert post(webapp, "/twilio/status", {}, method="GET")[0] == "405 Method Not Allowed"
    assert post(webapp, "/twilio/status", {}, ctype="application/json")[0] == "415 Unsupported Media Type"


def test_an_oversized_body_is_refused(webapp: WebhookApp) -> None:
    assert post(webapp, "/twilio/inbound", inbound(PROSECUTOR, "x" * 70_000))[0].startswith("413")


def test_the_app_refuses_to_start_without_what_signatures_need(home: Path) -> None:
    with pytest.raises(OperationalFailure, match="RAPIDRESPONSE_PUBLIC_URL"):
        make_app(home, env={"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    with pytest.raises(OperationalFailure, match="TWILIO_AUTH_TOKEN"):
        make_app(home, env={"RAPIDRESPONSE_PUBLIC_URL": PUBLIC})
    result = CliRunner().invoke(cli, ["--home", str(home), "webhook", "--port", "0"])
    assert result.exit_code in (1, 2)


# ---------------------------------------------------------------- acknowledging by reply


@pytest.mark.parametrize("template", ["ACK {code}", "ack{code}", " {code} ", "Ack: {code}."])
def test_a_reply_with_the_code_acknowledges(
    ctx: Context, sent_case: Any, webapp: WebhookApp, template: str,
) -> None:
    status, twiml = post(webapp, "/twilio/inbound",
                         inbound(PROSECUTOR, template.format(code=sent_case.ack_code)))
    assert status == "200 OK"
    assert twiml.startswith("<?xml") and "<Response><Message>" in twiml
    assert sent_case.ref in twiml and "bevestigd" in twiml
    assert step_state(ctx) == "acknowledged"
    [event] = kinds(ctx, "step.acknowledged")
    assert event["detail"]["via"] == "sms" and event["actor"] == "Parket permanentie (fictief)"
    assert ctx.store.scalar("SELECT finished_by FROM steps WHERE step_key = 'alert'") == event["actor"]


def test_a_backup_may_acknowledge_for_the_role(ctx: Context, sent_case: Any, webapp: WebhookApp) -> None:
    post(webapp, "/twilio/inbound", inbound(PROSECUTOR_BACKUP, f"ACK {sent_case.ack_code}"))
    assert step_state(ctx) == "acknowledged"


def test_the_escalation_target_acknowledges_an_escalated_step(
    ctx: Context, sent_case: Any, webapp: WebhookApp, clock: Any, settings: Any,
    twilio_stub: TwilioStub,
) -> None:
    transport = TwilioTransport(twilio_stub.env())
    post(webapp, "/twilio/inbound", inbound(COORDINATOR, f"ACK {sent_case.ack_code}"))
    assert step_state(ctx) == "active"  # not escalated yet: nothing waits for the coordinator
    for _ in range(2):
        clock.advance(minutes=16)
        tick(ctx, transport, settings)
    _, twiml = post(webapp, "/twilio/inbound", inbound(COORDINATOR, f"ACK {sent_case.ack_code}"))
    assert step_state(ctx) == "acknowledged" and "coordinator" in twiml


def test_an_unknown_code_acknowledges_nothing(ctx: Context, sent_case: Any, webapp: WebhookApp) -> None:
    wrong = "0000" if sent_case.ack_code != "0000" else "1111"
    status, twiml = post(webapp, "/twilio/inbound", inbound(PROSECUTOR, f"ACK {wrong}"))
    assert status == "200 OK" and "onbekend" in twiml and wrong in twiml
    assert sent_case.ref not in twiml
    assert step_state(ctx) == "active"
    [event] = kinds(ctx, "sms.inbound_rejected")
    assert event["detail"]["why"] == "unknown acknowledgement code"


def test_an_unknown_number_acknowledges_nothing_and_is_logged(
    ctx: Context, sent_case: Any, webapp: WebhookApp,
) -> None:
    status, twiml = post(webapp, "/twilio/inbound", inbound(STRANGER, f"ACK {sent_case.ack_code}"))
    assert status == "200 OK" and "niet gekend" in twiml
    assert sent_case.ref not in twiml and sent_case.ack_code not in twiml
    assert step_state(ctx) == "active"
    [event] = kinds(ctx, "sms.inbound_rejected")
    assert event["detail"] == {"from": STRANGER, "why": "the number is not in the contacts file"}


def test_free_text_is_answered_with_help_and_never_logged(
    ctx: Context, sent_case: Any, webapp: WebhookApp,
) -> None:
    _, twiml = post(webapp, "/twilio/inbound", inbound(PROSECUTOR, "wie is Quixtersen?"))
    assert "ACK" in twiml and step_state(ctx) == "active"
    assert "Quixtersen" not in ctx.store.scalar("SELECT group_concat(detail) FROM events")


def test_a_second_ack_is_answered_politely(ctx: Context, sent_case: Any, webapp: WebhookApp) -> None:
    post(webapp, "/twilio/inbound", inbound(PROSECUTOR, sent_case.ack_code))
    status, twiml = post(webapp, "/twilio/inbound", inbound(PROSECUTOR, sent_case.ack_code))
    assert status == "200 OK" and "wacht niets" in twiml and sent_case.ref in twiml
    assert len(kinds(ctx, "step.acknowledged")) == 1


def test_a_replayed_reply_acknowledges_nothing_and_answers_nothing(
    ctx: Context, sent_case: Any, webapp: WebhookApp,
) -> None:
    reply = inbound(PROSECUTOR, f"ACK {sent_case.ack_code}")
    _, first = post(webapp, "/twilio/inbound", reply)
    assert "bevestigd" in first and step_state(ctx) == "acknowledged"
    events_before = len(list(audit.events(ctx.store)))
    status, again = post(webapp, "/twilio/inbound", reply)
    assert status == "200 OK" and "<Message>" not in again  # no second text to the magistrate
    assert len(kinds(ctx, "step.acknowledged")) == 1 and kinds(ctx, "sms.inbound_rejected") == []
    [duplicate] = kinds(ctx, "sms.inbound_duplicate")
    assert duplicate["detail"] == {"from": PROSECUTOR, "sid": reply["MessageSid"]}
    assert len(list(audit.events(ctx.store))) == events_before + 1 and audit.verify(ctx.store).ok


def test_a_replayed_reply_cannot_acknowledge_a_step_that_started_waiting_since(
    ctx: Context, sent_case: Any, webapp: WebhookApp, clock: Any, settings: Any,
    twilio_stub: TwilioStub,
) -> None:
    """The coordinator's early ACK was refused; replayed after the escalation, it must stay refused."""
    early = inbound(COORDINATOR, f"ACK {sent_case.ack_code}")
    _, first = post(webapp, "/twilio/inbound", early)
    assert "wacht niets" in first
    transport = TwilioTransport(twilio_stub.env())
    for _ in range(2):
        clock.advance(minutes=16)
        tick(ctx, transport, settings)
    assert ctx.store.scalar("SELECT escalated FROM steps WHERE step_key = 'alert'") == 1
    _, replayed = post(webapp, "/twilio/inbound", early)
    assert "<Message>" not in replayed and step_state(ctx) == "active"
    assert kinds(ctx, "step.acknowledged") == []
    _, fresh = post(webapp, "/twilio/inbound", inbound(COORDINATOR, f"ACK {sent_case.ack_code}"))
    assert "bevestigd" in fresh and step_state(ctx) == "acknowledged"


def test_the_handled_sid_is_kept_with_what_the_reply_did(
    ctx: Context, sent_case: Any, webapp: WebhookApp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reply whose handling fails is not marked handled: Twilio's retry gets a real answer."""
    import rapidresponse.engine as engine

    acknowledge = engine.acknowledge

    def acknowledge_then_disk_full(*args: Any, **kwargs: Any) -> None:
        acknowledge(*args, **kwargs)
        raise OSError("disk full")

    reply = inbound(PROSECUTOR, f"ACK {sent_case.ack_code}")
    with monkeypatch.context() as patched:
        patched.setattr(engine, "acknowledge", acknowledge_then_disk_full)
        assert post(webapp, "/twilio/inbound", reply)[0] == "500 Internal Server Error"
    assert ctx.store.scalar("SELECT COUNT(*) FROM inbound_messages") == 0 and step_state(ctx) == "active"
    _, retried = post(webapp, "/twilio/inbound", reply)
    assert "bevestigd" in retried and step_state(ctx) == "acknowledged"
    assert ctx.store.scalar("SELECT sid FROM inbound_messages") == reply["MessageSid"]


def test_an_inbound_text_without_a_sid_is_refused(ctx: Context, sent_case: Any, webapp: WebhookApp) -> None:
    reply = inbound(PROSECUTOR, f"ACK {sent_case.ack_code}")
    del reply["MessageSid"], reply["SmsSid"]
    assert post(webapp, "/twilio/inbound", reply) == ("400 Bad Request", "MessageSid is missing or malformed\n")
    assert step_state(ctx) == "active"


def test_an_open_case_wins_over_a_resolved_one_with_the_same_code(
    ctx: Context, app: App, chain: Any, webapp: WebhookApp,
) -> None:
    old = register_minor(ctx, app, playbook=chain)
    resolve(ctx, old.ref, "found")  # its after-return step is still pending
    new = register_minor(ctx, app, playbook=chain)
    ctx.store.conn.execute("UPDATE cases SET ack_code = ? WHERE ref = ?", [old.ack_code, new.ref])
    from rapidresponse.engine import activate_due

    activate_due(ctx)
    _, twiml = post(webapp, "/twilio/inbound", inbound(PROSECUTOR, f"ACK {old.ack_code}"))
    assert new.ref in twiml
    assert ctx.store.scalar(
        "SELECT s.state FROM steps s JOIN cases c ON c.id = s.case_id WHERE c.ref = ?"
        " AND s.step_key = 'alert'", [new.ref]) == "acknowledged"


@pytest.mark.parametrize(("text", "code"), [
    ("ACK 1234", "1234"), ("ack1234", "1234"), (" 1234 ", "1234"), ("Ack #123456", "123456"),
    ("ACK", None), ("ACK 12", None), ("yes", None), ("ACK 1234 5678", None), ("", None),
])
def test_parse_ack(text: str, code: str | None) -> None:
    assert parse_ack(text) == code


# ---------------------------------------------------------------- over real HTTP


def test_served_over_http_by_waitress(ctx: Context, sent_case: Any, webapp: WebhookApp) -> None:
    servers: list[Any] = []
    ready = threading.Event()

    def on_ready(server: Any) -> None:
        servers.append(server)
        ready.set()

    thread = threading.Thread(target=serve, args=(webapp, "127.0.0.1", 0),
                              kwargs={"ready": on_ready}, daemon=True)
    thread.start()
    assert ready.wait(5)
    port = servers[0].effective_port
    params = inbound(PROSECUTOR, f"ACK {sent_case.ack_code}")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/inbound", params)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/twilio/inbound",
                                     data=urlencode(params).encode(),
                                     headers={"X-Twilio-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            assert sent_case.ref in response.read().decode()
        forged = urllib.request.Request(request.full_url, data=request.data,
                                        headers={"X-Twilio-Signature": "bm9wZQ=="})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(forged, timeout=5)
        assert err.value.code == 403
    finally:
        servers[0].close()
        thread.join(5)
    assert not thread.is_alive()
    assert step_state(ctx) == "acknowledged"


def test_the_webhook_command_refuses_a_broken_config(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("RAPIDRESPONSE_PUBLIC_URL", PUBLIC)
    (home / "config.toml").write_text('[sms]\nclaim_seconds = "2m"\n')
    result = CliRunner().invoke(cli, ["--home", str(home), "webhook", "--port", "8099"])
    assert result.exit_code == 2 and "claim_seconds" in result.stderr
