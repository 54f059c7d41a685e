"""Voice calls: a call when a text is not acknowledged, acknowledged by pressing a key.

The real twilio client places calls against the local stand-in (`twilio_stub.py`, which speaks
the Calls API); key presses and status callbacks go through the signed WSGI app; time moves on
the fake clock.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from twilio_stub import ACCOUNT_SID, FROM_NUMBER, TwilioStub

from conftest import CALL_PLAYBOOK, assert_no_secrets
from rapidresponse.contacts import parse_contacts
from rapidresponse.errors import InputError
from rapidresponse.playbooks import DEFAULT_VOICE, lint_template, parse_playbook
from rapidresponse.sms import PermanentSendError, TransientSendError
from rapidresponse.sms.console import ConsoleTransport
from rapidresponse.sms.twilio import TwilioTransport
from rapidresponse.voice import KEY_PATH, LANGUAGE, spoken_values, twiml

ROLES = ["youth_prosecutor", "coordinator"]
PUBLIC = "https://rr.example.org"
PROSECUTOR = "+32470000001"

STEP = """\
name = "test"

[[steps]]
id = "alert"
at = "0m"
role = "youth_prosecutor"
message = "{case}: graad {grade}. Bel {callback}. ACK {ack}"
ack_within = "15m"
escalate_to = "coordinator"
"""


def parse(extra: str, base: str = STEP) -> Any:
    return parse_playbook(base + extra, source="test.toml", stem="test", roles=ROLES)


def parse_twiml(text: str) -> ET.Element:
    return ET.fromstring(text)


# ---------------------------------------------------------------- playbooks and contacts


def test_call_after_and_a_voice_text_are_read() -> None:
    (step,) = parse('call_after = "5m"\nvoice = "Dossier {case}, graad {grade}. Bel {callback}."\n').steps
    assert step.call_after is not None and step.call_after.total_seconds() == 300
    assert not step.call and step.calls
    assert step.voice_template.startswith("Dossier {case}")


def test_call_at_once_uses_the_default_spoken_text() -> None:
    (step,) = parse("call = true\n").steps
    assert step.call and step.call_after is None and step.voice_template == DEFAULT_VOICE


def test_a_step_without_call_keys_never_calls() -> None:
    (step,) = parse("").steps
    assert not step.calls


def test_the_default_spoken_text_passes_the_privacy_lint() -> None:
    lint_template(DEFAULT_VOICE)


@pytest.mark.parametrize(
    ("extra", "field", "why"),
    [
        ('voice = "Dossier {case} voor {alias}."\ncall = true\n', "voice", "identify the minor"),
        ('voice = "Dossier {case}: loverboy."\ncall = true\n', "voice", "lock screen"),
        ('voice = "Bel {callback}."\ncall = true\n', "voice", "{case}"),
        ('voice = "Dossier {case} {onbekend}."\ncall = true\n', "voice", "unknown field"),
        ('voice = "Dossier {case}."\n', "voice", "never calls"),
        ('call = "ja"\n', "call", "true or false"),
        ('call = true\ncall_after = "5m"\n', "call_after", "at once"),
        ('call_after = "0m"\n', "call_after", "longer than zero"),
        ('call_after = 5\n', "call_after", "quoted duration"),
    ],
)
def test_call_mistakes_are_named(extra: str, field: str, why: str) -> None:
    with pytest.raises(InputError) as err:
        parse(extra)
    assert f"field '{field}'" in str(err.value) and why in str(err.value)
    assert "Zorbalina" not in str(err.value)


def test_a_call_needs_something_to_acknowledge() -> None:
    base = STEP.replace('ack_within = "15m"\nescalate_to = "coordinator"\n', "")
    with pytest.raises(InputError) as err:
        parse('call_after = "5m"\n', base=base)
    assert "ack_within" in str(err.value)


CONTACTS = """\
callback = "+32 470 00 00 99"
[roles.youth_prosecutor]
contacts = [
  { name = "Wakker", phone = "+32 470 00 00 01" },
  { name = "Alleen sms", phone = "+32 470 00 00 02", voice = false },
]
"""


def test_a_contact_may_opt_out_of_calls() -> None:
    book = parse_contacts(CONTACTS)
    first, second = book.roles["youth_prosecutor"].contacts
    assert first.voice and not second.voice
    assert book.callable("youth_prosecutor", first.phone)
    assert not book.callable("youth_prosecutor", second.phone)
    assert not book.callable("coordinator", first.phone)


def test_voice_must_be_true_or_false() -> None:
    with pytest.raises(InputError) as err:
        parse_contacts(CONTACTS.replace("voice = false", 'voice = "nee"'))
    assert "'voice' must be true or false" in str(err.value) and "line 5" in str(err.value)


# ---------------------------------------------------------------- what a call says


def test_references_and_numbers_are_spelled_out() -> None:
    said = spoken_values({"case": "RR-2026-0001", "callback": "+32 470 00 00 99", "ack": "1234",
                          "grade": "HIGH"})
    assert said["case"] == "R R, 2 0 2 6, 0 0 0 1"
    assert said["callback"] == "plus 3 2, 4 7 0, 0 0, 0 0, 9 9"
    assert said["ack"] == "1 2 3 4" and said["grade"] == "HIGH"


def test_the_twiml_gathers_one_key_and_speaks_dutch() -> None:
    root = parse_twiml(twiml("Dossier R R.", f"{PUBLIC}{KEY_PATH}?m=7"))
    (gather,) = root.iter("Gather")
    assert gather.get("numDigits") == "1" and gather.get("action") == f"{PUBLIC}{KEY_PATH}?m=7"
    assert gather.get("method") == "POST"
    says = list(root.iter("Say"))
    assert says and all(say.get("language") == LANGUAGE == "nl-BE" for say in says)
    assert "Dossier R R." in [s.text for s in gather.iter("Say")]
    assert "Druk 1" in "".join(s.text or "" for s in gather.iter("Say"))
    assert root[-1].tag == "Hangup"


def test_without_a_public_url_the_call_still_speaks() -> None:
    root = parse_twiml(twiml("Dossier R R.", None))
    assert not list(root.iter("Gather"))
    assert [s.text for s in root.iter("Say")].count("Dossier R R.") == 2


def test_the_console_prints_who_is_called_and_what_is_said() -> None:
    out = io.StringIO()
    sent = ConsoleTransport(out).call(PROSECUTOR, "Dossier R R.", 3)
    line = out.getvalue()
    assert line.startswith(f"[call console] to {PROSECUTOR}") and "Dossier R R." in line
    assert "Druk 1" in line and sent.sid.startswith("console-call-")


# ---------------------------------------------------------------- the Calls API


def test_a_call_goes_through_the_real_client(twilio_stub: TwilioStub) -> None:
    transport = TwilioTransport(twilio_stub.env(RAPIDRESPONSE_PUBLIC_URL=PUBLIC))
    sent = transport.call(PROSECUTOR, "Dossier R R.", 7)
    [rec] = twilio_stub.calls()
    assert rec.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json" and rec.authorised
    assert (rec.to, rec.from_) == (PROSECUTOR, FROM_NUMBER)
    assert sent.sid == rec.sid and rec.sid.startswith("CA") and len(rec.sid) == 34
    assert rec.status_callback == f"{PUBLIC}/twilio/voice/status"
    assert rec.form["StatusCallbackEvent"] == "completed"
    assert rec.form["MachineDetection"] == "DetectMessageEnd"  # so a voicemail says AnsweredBy
    # what to say is fetched from the signed webhook when the call is answered
    assert rec.form["Url"] == f"{PUBLIC}/twilio/voice/twiml?m=7" and rec.form["Method"] == "POST"
    assert rec.twiml is None
    assert not twilio_stub.texts()


def test_without_a_public_url_the_twiml_goes_inline(twilio_stub: TwilioStub) -> None:
    TwilioTransport(twilio_stub.env()).call(PROSECUTOR, "Dossier R R.", 7)
    [rec] = twilio_stub.calls()
    assert rec.twiml is not None and "Url" not in rec.form and rec.status_callback is None
    root = parse_twiml(rec.twiml)
    assert not list(root.iter("Gather")) and "Dossier R R." in [s.text for s in root.iter("Say")]


def test_calls_come_from_the_caller_id_when_texts_come_from_a_name(twilio_stub: TwilioStub) -> None:
    env = twilio_stub.env(TWILIO_FROM="RapidResp", TWILIO_CALLER_ID="+3232000000")
    TwilioTransport(env).call(PROSECUTOR, "Dossier R R.", 1)
    assert twilio_stub.calls()[0].from_ == "+3232000000"


def test_without_a_number_to_call_from_the_call_waits(twilio_stub: TwilioStub) -> None:
    env = twilio_stub.env(TWILIO_FROM="RapidResp")
    with pytest.raises(TransientSendError) as err:
        TwilioTransport(env).call(PROSECUTOR, "Dossier R R.", 1)
    assert "TWILIO_CALLER_ID" in str(err.value) and not twilio_stub.received()


def test_a_bad_number_fails_the_call_and_an_outage_retries_it(twilio_stub: TwilioStub) -> None:
    transport = TwilioTransport(twilio_stub.env())
    twilio_stub.fail_call(PROSECUTOR, 21211)
    with pytest.raises(PermanentSendError) as err:
        transport.call(PROSECUTOR, "Dossier R R.", 1)
    assert err.value.code == "21211"
    twilio_stub.fail_call(PROSECUTOR, 20500, status=503)
    with pytest.raises(TransientSendError):
        transport.call(PROSECUTOR, "Dossier R R.", 1)
    transport.send(PROSECUTOR, "RR-TEST")  # texts keep their own script: this one goes
    assert len(twilio_stub.texts()) == 1


def test_a_caller_id_that_is_not_a_number_is_a_configuration_error() -> None:
    from rapidresponse.errors import OperationalFailure

    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "x" * 32,
           "TWILIO_FROM": FROM_NUMBER, "TWILIO_CALLER_ID": "bel ons"}
    with pytest.raises(OperationalFailure) as err:
        TwilioTransport(env).check()
    assert "TWILIO_CALLER_ID" in str(err.value) and "bel ons" not in str(err.value)
    assert_no_secrets(str(err.value))


# ---------------------------------------------------------------- calls in a running chain

BACKUP = "+32470000002"
COORDINATOR = "+32470000041"


@pytest.fixture
def voice_env(twilio_stub: TwilioStub, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = twilio_stub.env(RAPIDRESPONSE_PUBLIC_URL=PUBLIC, RAPIDRESPONSE_TWILIO_TIMEOUT="2")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def phone(voice_env: dict[str, str]) -> TwilioTransport:
    return TwilioTransport(voice_env)


@pytest.fixture
def webapp(home: Any, clock: Any, voice_env: dict[str, str]) -> Any:
    from rapidresponse.webhooks import make_app

    application = make_app(home, clock=clock, unknown_sid_wait=0)
    yield application
    application.close()


@pytest.fixture
def calls_case(app: Any, ctx: Any, settings: Any, phone: TwilioTransport) -> Any:
    """A case whose first text went out; nobody has answered yet."""
    from conftest import register_minor, tick, use_playbook_text

    reg = register_minor(ctx, app, playbook=use_playbook_text(app, "calls", CALL_PLAYBOOK))
    tick(ctx, phone, settings)
    return reg


def later(clock: Any, ctx: Any, phone: Any, settings: Any, **delta: float) -> None:
    from conftest import tick

    clock.advance(**delta)
    tick(ctx, phone, settings)


def events(ctx: Any, kind: str) -> list[dict[str, Any]]:
    from rapidresponse import audit

    return [e for e in audit.events(ctx.store) if e["kind"] == kind]


def step_state(ctx: Any, key: str = "alert") -> str:
    return str(ctx.store.scalar("SELECT state FROM steps WHERE step_key = ?", [key]))


def post(webapp: Any, path: str, params: dict[str, str], *, query: str = "",
         sign: bool = True) -> tuple[str, str]:
    """A request as Twilio makes it, signed over the public URL (with its query)."""
    from urllib.parse import urlencode
    from wsgiref.util import setup_testing_defaults

    from twilio.request_validator import RequestValidator
    from twilio_stub import AUTH_TOKEN

    body = urlencode(params).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": query,
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
    }
    setup_testing_defaults(environ)
    if sign:
        url = PUBLIC + path + (f"?{query}" if query else "")
        environ["HTTP_X_TWILIO_SIGNATURE"] = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    text = b"".join(webapp(environ, start_response)).decode()
    assert_no_secrets(text)
    return seen["status"], text


def answer(webapp: Any, call: Any, answered_by: str | None = None) -> str:
    """The callee picks up: Twilio fetches the call's TwiML from the URL it was given (with
    `AnsweredBy` once its answering machine detection has decided)."""
    path, query = call.form["Url"].removeprefix(PUBLIC).split("?", 1)
    params = {"CallSid": call.sid, "AccountSid": ACCOUNT_SID, "From": FROM_NUMBER, "To": call.to,
              "CallStatus": "in-progress", "Direction": "outbound-api"}
    if answered_by:
        params["AnsweredBy"] = answered_by
    status, text = post(webapp, path, params, query=query)
    assert status == "200 OK"
    return text


def key_request(webapp: Any, call: Any, digits: str) -> tuple[dict[str, str], str]:
    """Answer the call, and build the request its Gather's action URL gets for `digits`."""
    (gather,) = parse_twiml(answer(webapp, call)).iter("Gather")
    query = gather.get("action").split("?", 1)[1]
    params = {"CallSid": call.sid, "AccountSid": ACCOUNT_SID, "From": FROM_NUMBER, "To": call.to,
              "Digits": digits, "CallStatus": "in-progress", "Direction": "outbound-api"}
    return params, query


def press(webapp: Any, call: Any, digits: str, *, sign: bool = True) -> tuple[str, str]:
    """The key press of an answered call, posted to its Gather's own action URL."""
    params, query = key_request(webapp, call, digits)
    return post(webapp, KEY_PATH, params, query=query, sign=sign)


def call_status(webapp: Any, call: Any, status: str, answered_by: str | None = None) -> tuple[str, str]:
    params = {"CallSid": call.sid, "AccountSid": ACCOUNT_SID, "From": FROM_NUMBER, "To": call.to,
              "CallStatus": status, "Direction": "outbound-api", "CallDuration": "0"}
    if answered_by:
        params["AnsweredBy"] = answered_by
    return post(webapp, "/twilio/voice/status", params)


def test_a_call_follows_an_unacknowledged_text_and_says_nothing_identifying(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR] and not twilio_stub.calls()
    later(clock, ctx, phone, settings, minutes=4, seconds=59)
    assert not twilio_stub.calls()
    later(clock, ctx, phone, settings, seconds=1)
    [call] = twilio_stub.calls()
    assert call.to == PROSECUTOR and call.from_ == FROM_NUMBER
    spoken_twiml = answer(webapp, call)
    root = parse_twiml(spoken_twiml)
    (gather,) = root.iter("Gather")
    assert gather.get("numDigits") == "1" and gather.get("action").startswith(PUBLIC + KEY_PATH)
    says = [s for s in root.iter("Say")]
    assert all(s.get("language") == "nl-BE" for s in says)
    spoken = " ".join(s.text or "" for s in gather.iter("Say"))
    assert "R R, 2 0 2 6, 0 0 0 1" in spoken and "plus 3 2, 4 7 0" in spoken
    assert_no_secrets(spoken_twiml)
    [picked_up] = events(ctx, "call.picked_up")
    assert picked_up["detail"]["still_wanted"] is True and picked_up["detail"]["sid"] == call.sid
    [calling] = events(ctx, "step.calling")
    assert calling["detail"]["reason"] == "text not acknowledged in time"
    [placed] = events(ctx, "call.placed")
    assert placed["detail"]["sid"] == call.sid and placed["detail"]["channel"] == "voice"
    # ack_within counts from the call: the backup gets the text 15 minutes after it
    later(clock, ctx, phone, settings, minutes=14, seconds=59)
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR]
    later(clock, ctx, phone, settings, seconds=1)
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR, BACKUP]
    assert len(twilio_stub.calls()) == 1  # the backup's own call waits its call_after


def test_key_1_acknowledges_the_step_for_the_contacts_role(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    status, answer = press(webapp, call, "1")
    assert status == "200 OK" and "Bevestigd" in answer and "<Hangup" in answer
    assert step_state(ctx) == "acknowledged"
    [ack] = events(ctx, "step.acknowledged")
    assert ack["detail"]["via"] == "voice" and ack["actor"] == "Parket permanentie (fictief)"
    [key] = events(ctx, "call.key")
    assert key["detail"]["key"] == "1" and key["detail"]["result"] == "acknowledged"
    later(clock, ctx, phone, settings, minutes=20)
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR] and len(twilio_stub.calls()) == 1


def test_key_2_repeats_and_acknowledges_nothing(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    status, answer = press(webapp, call, "2")
    assert status == "200 OK"
    (gather,) = parse_twiml(answer).iter("Gather")
    assert "Dringend bericht" in " ".join(s.text or "" for s in gather.iter("Say"))
    assert step_state(ctx) == "active"
    assert [e["detail"]["result"] for e in events(ctx, "call.key")] == ["repeated"]


def test_no_key_acknowledges_nothing_and_the_chain_waits_out_ack_within(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    assert call_status(webapp, call, "completed")[1] == "updated\n"  # answered, hung up, no key
    assert step_state(ctx) == "active"
    [answered] = events(ctx, "call.answered")
    assert answered["detail"]["status"] == "completed"
    later(clock, ctx, phone, settings, minutes=15)
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR, BACKUP]


def test_a_call_not_answered_moves_the_chain_on_at_once(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    assert call_status(webapp, call, "no-answer")[1] == "updated\n"
    later(clock, ctx, phone, settings, seconds=1)
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR, BACKUP]
    [moved] = events(ctx, "step.next_contact")
    assert moved["detail"]["reason"] == "call not answered"
    [missed] = events(ctx, "call.not_answered")
    assert missed["detail"]["status"] == "no-answer"
    msg = ctx.store.one("SELECT * FROM messages WHERE sid = ?", [call.sid])
    assert (msg["state"], msg["error_text"]) == ("undelivered", "call no-answer")


@pytest.mark.parametrize("said_when", ["status", "pickup", "both"])
def test_a_call_answered_by_voicemail_acknowledges_nothing_and_moves_the_chain_on_at_once(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any, said_when: str
) -> None:
    """Twilio's `AnsweredBy` (on the TwiML request, the status callback, or both) says a
    machine took the call: logged as such, not as answered, and the backup is texted at once."""
    from rapidresponse.timeline import timeline

    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    machine = "machine_end_beep"
    said = answer(webapp, call, machine if said_when != "status" else None)
    if said_when != "status":  # the voicemail records the text, and where to answer it
        root = parse_twiml(said)
        assert not list(root.iter("Gather"))
        assert "Dringend bericht" in " ".join(s.text or "" for s in root.iter("Say"))
        assert "antwoord op de sms" in said
        [picked_up] = events(ctx, "call.picked_up")
        assert picked_up["detail"]["answered_by"] == machine
    assert call_status(webapp, call, "completed", machine if said_when != "pickup" else None)[1] == "updated\n"
    assert step_state(ctx) == "active" and not events(ctx, "step.acknowledged")
    assert not events(ctx, "call.answered")
    [missed] = events(ctx, "call.not_answered")
    assert missed["detail"]["answered_by"] == machine and missed["detail"]["status"] == "completed"
    assert missed["detail"]["error"] == f"call answered by a machine ({machine})"
    msg = ctx.store.one("SELECT * FROM messages WHERE sid = ?", [call.sid])
    assert msg["state"] == "undelivered"
    later(clock, ctx, phone, settings, seconds=1)
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR, BACKUP]  # not 15 minutes later
    [moved] = events(ctx, "step.next_contact")
    assert moved["detail"]["reason"] == "call not answered"
    [placed] = [e for e in timeline(ctx.store, calls_case.ref).entries if e.kind == "message.call"]
    assert placed.state == "answered by a machine"
    assert_no_secrets(str(events(ctx, "call.not_answered")) + str(events(ctx, "call.picked_up")))


def test_a_person_who_answers_without_a_key_acknowledges_nothing(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    """`AnsweredBy` human: answered, logged so, and the step still waits for the key (or an
    ACK by text) until ack_within, then moves on."""
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    assert list(parse_twiml(answer(webapp, call, "human")).iter("Gather"))  # a person can press
    assert call_status(webapp, call, "completed", "human")[1] == "updated\n"
    [answered] = events(ctx, "call.answered")
    assert answered["detail"]["answered_by"] == "human"
    assert step_state(ctx) == "active" and not events(ctx, "step.acknowledged")
    later(clock, ctx, phone, settings, minutes=14)
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR]
    later(clock, ctx, phone, settings, minutes=1)
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR, BACKUP]


def test_a_malformed_answered_by_is_refused(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    status, _ = call_status(webapp, call, "completed", "Zorbalina Quixtersen")
    assert status.startswith("400")
    assert not events(ctx, "call.answered") and not events(ctx, "call.not_answered")


def test_a_forged_key_press_is_refused(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    status, _ = press(webapp, call, "1", sign=False)
    assert status.startswith("403")
    assert step_state(ctx) == "active" and not events(ctx, "call.key")


def test_a_replayed_key_press_changes_nothing(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    params, query = key_request(webapp, call, "1")
    post(webapp, KEY_PATH, params, query=query)
    later(clock, ctx, phone, settings, minutes=25)  # the next step for the same role waits
    assert step_state(ctx, "later") == "active"
    status, answer = post(webapp, KEY_PATH, params, query=query)  # the same request again
    assert status == "200 OK" and "al verwerkt" in answer
    assert step_state(ctx, "later") == "active"
    assert len(events(ctx, "step.acknowledged")) == 1
    assert len(events(ctx, "call.key_duplicate")) == 1


def test_a_call_interrupted_by_a_crash_is_placed_again_as_a_possible_duplicate(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any
) -> None:
    from rapidresponse import dispatch, engine

    clock.advance(minutes=5)
    engine.expire_deadlines(ctx)
    [claimed] = dispatch.claim(ctx, settings)  # ... and the process dies before calling
    assert claimed["channel"] == "voice"
    later(clock, ctx, phone, settings, seconds=settings.claim_seconds - 1)
    assert not twilio_stub.calls()
    later(clock, ctx, phone, settings, seconds=1)
    [call] = twilio_stub.calls()
    msg = ctx.store.one("SELECT * FROM messages WHERE id = ?", [claimed["id"]])
    assert (msg["state"], msg["sid"], msg["possible_duplicate"]) == ("sent", call.sid, 1)
    [reclaimed] = events(ctx, "call.reclaimed")
    assert reclaimed["detail"]["possible_duplicate"] is True
    [placed] = events(ctx, "call.placed")
    assert placed["detail"]["possible_duplicate"] is True


def test_no_call_after_the_case_is_resolved(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any
) -> None:
    from rapidresponse import dispatch, engine

    clock.advance(minutes=5)
    engine.expire_deadlines(ctx)
    dispatch.claim(ctx, settings)  # a call in the hands of a sender that dies ...
    engine.resolve(ctx, calls_case.ref, "found")  # ... while the minor is found
    later(clock, ctx, phone, settings, seconds=settings.claim_seconds, minutes=30)
    assert not twilio_stub.calls()
    assert [r.to for r in twilio_stub.texts()] == [PROSECUTOR, PROSECUTOR]  # alert, stand-down
    assert events(ctx, "call.cancelled")


def test_a_call_answered_after_the_stand_down_says_only_that_it_is_not_needed(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    from rapidresponse import engine

    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()  # ringing ...
    engine.resolve(ctx, calls_case.ref, "found")  # ... while the minor is found
    said = answer(webapp, call)
    root = parse_twiml(said)
    assert not list(root.iter("Gather")) and "niet meer nodig" in said
    assert "Dringend bericht" not in said
    [picked_up] = events(ctx, "call.picked_up")
    assert picked_up["detail"]["still_wanted"] is False


def test_a_resolved_case_is_never_called_for(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any
) -> None:
    from rapidresponse import engine

    engine.resolve(ctx, calls_case.ref, "found")
    later(clock, ctx, phone, settings, hours=1)
    assert not twilio_stub.calls()


def test_a_failed_number_moves_on_and_an_outage_is_retried(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any
) -> None:
    twilio_stub.fail_call(PROSECUTOR, 20500, status=503)
    later(clock, ctx, phone, settings, minutes=5)
    assert not twilio_stub.calls() and events(ctx, "call.retry")
    later(clock, ctx, phone, settings, minutes=1)
    assert [c.to for c in twilio_stub.calls()] == [PROSECUTOR]
    # the backup's number cannot be called at all: on to the coordinator at once
    later(clock, ctx, phone, settings, minutes=15)
    assert twilio_stub.texts()[-1].to == BACKUP
    twilio_stub.fail_call(BACKUP, 21211)
    later(clock, ctx, phone, settings, minutes=5)
    [failed] = events(ctx, "call.failed")
    assert failed["detail"]["error_code"] == "21211"
    assert COORDINATOR in [t.to for t in twilio_stub.texts()[-2:]]


def test_an_undelivered_text_is_followed_by_a_call_at_once(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    [text] = twilio_stub.texts()
    params = {"MessageSid": text.sid, "MessageStatus": "undelivered", "ErrorCode": "30003",
              "AccountSid": ACCOUNT_SID, "To": PROSECUTOR}
    assert post(webapp, "/twilio/status", params)[1] == "updated\n"
    later(clock, ctx, phone, settings, seconds=1)
    assert [c.to for c in twilio_stub.calls()] == [PROSECUTOR]
    [calling] = events(ctx, "step.calling")
    assert calling["detail"]["reason"] == "text not delivered"


CALL_AT_ONCE = CALL_PLAYBOOK.replace('call_after = "5m"\n', "call = true\n")


def test_call_true_calls_alongside_the_text_and_voice_false_is_only_texted(
    app: Any, ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub
) -> None:
    from dataclasses import replace

    from conftest import register_minor, tick, use_playbook_text
    from rapidresponse.contacts import load_contacts

    contacts = app.home / "contacts.toml"
    contacts.write_text(contacts.read_text(encoding="utf-8").replace(
        '"+32 470 00 00 02" }', '"+32 470 00 00 02", voice = false }'), encoding="utf-8")
    ctx = replace(ctx, contacts=load_contacts(contacts))
    assert not ctx.contacts.callable("youth_prosecutor", BACKUP)
    register_minor(ctx, app, playbook=use_playbook_text(app, "calls", CALL_AT_ONCE))
    tick(ctx, phone, settings)
    assert [c.to for c in twilio_stub.calls()] == [PROSECUTOR]
    assert [t.to for t in twilio_stub.texts()] == [PROSECUTOR]
    later(clock, ctx, phone, settings, minutes=15)
    assert [t.to for t in twilio_stub.texts()] == [PROSECUTOR, BACKUP]
    assert [c.to for c in twilio_stub.calls()] == [PROSECUTOR]  # the backup opted out


def test_the_console_transport_shows_the_call(
    app: Any, ctx: Any, clock: Any, settings: Any
) -> None:
    from conftest import register_minor, tick, use_playbook_text

    out = io.StringIO()
    console = ConsoleTransport(out)
    register_minor(ctx, app, playbook=use_playbook_text(app, "calls", CALL_PLAYBOOK))
    tick(ctx, console, settings)
    clock.advance(minutes=5)
    tick(ctx, console, settings)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"[sms console] to {PROSECUTOR}")
    assert lines[1].startswith(f"[call console] to {PROSECUTOR}, says: Dringend bericht")
    assert_no_secrets(out.getvalue())
    [msg] = ctx.store.all("SELECT * FROM messages WHERE channel = 'voice'")
    assert msg["state"] == "sent" and msg["transport"] == "console"


# ---------------------------------------------------------------- shipped playbook, CLI, review


def test_the_worrying_playbook_calls_the_prosecutor_then_the_coordinator_after_5_minutes(
    app: Any, ctx: Any, clock: Any, settings: Any, transport: Any
) -> None:
    from conftest import register_minor, tick

    playbook = app.playbook("worrying-situation")
    steps = {s.id: s for s in playbook.steps}
    prosecutor, check = steps["alert-youth-prosecutor"], steps["coordinator-check"]
    assert prosecutor.call_after.total_seconds() == 300 and prosecutor.escalate_to == "coordinator"
    assert check.call_after.total_seconds() == 300 and check.role == "coordinator"
    for step in (prosecutor, check):
        lint_template(step.voice_template)
    register_minor(ctx, app)
    tick(ctx, transport, settings)
    assert not transport.calls
    clock.advance(minutes=5)
    tick(ctx, transport, settings)
    assert PROSECUTOR in transport.called() and "+32470000011" not in transport.called()
    for _, speech in transport.calls:
        assert_no_secrets(speech)


def test_contacts_test_call_places_one_call_per_contact(
    home: Any, runner: Any, twilio_stub: TwilioStub, webapp: Any
) -> None:
    from rapidresponse.cli import cli

    contacts = home / "contacts.toml"
    contacts.write_text(contacts.read_text(encoding="utf-8").replace(
        '"+32 470 00 00 02" }', '"+32 470 00 00 02", voice = false }'), encoding="utf-8")
    result = runner.invoke(cli, ["--home", str(home), "contacts", "test", "youth_prosecutor", "--call"])
    assert result.exit_code == 0, result.output
    assert [c.to for c in twilio_stub.calls()] == [PROSECUTOR] and not twilio_stub.texts()
    assert "Testoproep" in answer(webapp, twilio_stub.calls()[0])
    assert "not called (voice = false)" in result.output and f"{PROSECUTOR}: call placed" in result.output
    assert ": sent" not in result.output


def test_a_test_call_key_press_proves_the_webhook_works(
    home: Any, runner: Any, ctx: Any, twilio_stub: TwilioStub, webapp: Any
) -> None:
    from rapidresponse.cli import cli

    runner.invoke(cli, ["--home", str(home), "contacts", "test", "coordinator", "--call"])
    call = twilio_stub.calls()[0]
    status, answer = press(webapp, call, "1")
    assert status == "200 OK" and "Test geslaagd" in answer
    assert [e["detail"]["result"] for e in events(ctx, "call.key")] == ["test"]


def test_an_acknowledgement_by_voice_shows_in_show_and_report(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any, home: Any, runner: Any
) -> None:
    from datetime import timedelta

    from rapidresponse.figures import Period, report
    from rapidresponse.review import show_case

    later(clock, ctx, phone, settings, minutes=5)
    press(webapp, twilio_stub.calls()[0], "1")
    view = show_case(ctx.store, calls_case.ref, clock.now())
    alert = next(s for s in view["steps"] if s["id"] == "alert")
    assert [m["channel"] for m in alert["messages"]] == ["sms", "voice"]
    assert alert["state"] == "acknowledged"
    figures = report(ctx.store, Period(clock.now() - timedelta(days=1), clock.now() + timedelta(seconds=1)))
    [prosecutor] = [r for r in figures["roles"] if r["role"] == "youth_prosecutor"]
    assert prosecutor["by_channel"]["voice"] == {"acknowledgements": 1, "median_minutes": 5.0}


def test_the_timeline_tells_the_call_its_status_and_the_key(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any
) -> None:
    from rapidresponse.timeline import timeline

    later(clock, ctx, phone, settings, minutes=5)
    call = twilio_stub.calls()[0]
    press(webapp, call, "1")
    call_status(webapp, call, "completed")
    entries = timeline(ctx.store, calls_case.ref).entries
    [placed] = [e for e in entries if e.kind == "message.call"]
    assert placed.what == "call (alert) placed to youth_prosecutor" and placed.state == "answered"
    assert any(e.kind == "step.calling" for e in entries)
    [key] = [e for e in entries if e.kind == "call.key"]
    assert key.what == "key 1 pressed on the call to youth_prosecutor: acknowledged"
    [ack] = [e for e in entries if e.kind == "step.acknowledged"]
    assert ack.via == "voice" and ack.delay_seconds == 300


def test_register_places_an_immediate_call_and_says_so(home: Any, runner: Any) -> None:
    from conftest import MINOR, write_playbook
    from rapidresponse.cli import cli

    write_playbook(home, "calls", CALL_AT_ONCE)
    result = runner.invoke(cli, ["--home", str(home), "register", "--alias", MINOR["alias"],
                                 "--birth-date", MINOR["birth_date"], "--missing-since", "1h ago",
                                 "--last-seen", MINOR["last_seen"], "--indicator", "older-partner",
                                 "--playbook", "calls", "--json"])
    assert result.exit_code == 0, result.output
    import json

    sent = json.loads(result.stdout)["sent"]
    assert [(m["to"], m["channel"], m["state"]) for m in sent] == [
        (PROSECUTOR, "sms", "sent"), (PROSECUTOR, "voice", "sent")]
    assert "[call console] to +32470000001, says: Dringend bericht" in result.stderr
    assert_no_secrets(result.stderr)


def test_playbooks_show_says_when_a_step_calls_and_what_the_call_says(home: Any, runner: Any) -> None:
    from rapidresponse.cli import cli

    result = runner.invoke(cli, ["--home", str(home), "playbooks", "show", "worrying-situation"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    first = lines.index(next(line for line in lines if "alert-youth-prosecutor" in line))
    block = "\n".join(lines[first:first + 8])
    assert "no ACK within 5m: calls the same contact" in block
    assert "says: “Dringend bericht van rapidresponse" in block
    assert re.search(r"R R, \d \d \d \d", block)  # the reference is spelled out, whatever the year
    assert "waits 15m after the call for ACK" in block
    child_focus = lines.index(next(line for line in lines if "alert-child-focus" in line))
    assert "calls" not in "\n".join(lines[child_focus:child_focus + 5])


# ---------------------------------------------------------------- hanging up a call nobody needs


def hangup_events(ctx: Any) -> list[dict[str, Any]]:
    return events(ctx, "call.hung_up")


@pytest.fixture
def ringing(ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub,
            calls_case: Any) -> Any:
    """The call placed five minutes after the unacknowledged text: it rings."""
    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()
    return call


def test_a_call_ringing_when_its_step_is_acknowledged_is_hung_up(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any, ringing: Any
) -> None:
    from rapidresponse import engine

    later(clock, ctx, phone, settings, minutes=5)
    [call] = twilio_stub.calls()  # ringing ...
    engine.acknowledge(ctx, calls_case.ref, "youth_prosecutor", via="sms")  # ... answered by text
    assert not [r for r in twilio_stub.received() if r.kind == "hangup"]  # not from the stop
    later(clock, ctx, phone, settings, seconds=1)
    [hangup] = twilio_stub.hangups()
    assert hangup.sid == call.sid and hangup.form["Status"] == "canceled"
    [logged] = hangup_events(ctx)
    assert logged["detail"]["sid"] == call.sid and logged["detail"]["status"] == "canceled"
    assert_no_secrets(str(logged))
    later(clock, ctx, phone, settings, minutes=5)
    assert len(twilio_stub.hangups()) == 1  # once is enough


def test_a_call_ringing_when_the_case_is_resolved_is_hung_up(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any, ringing: Any
) -> None:
    from rapidresponse import engine

    call = ringing
    engine.resolve(ctx, calls_case.ref, "found")
    later(clock, ctx, phone, settings, seconds=1)
    assert [(h.sid, h.form["Status"]) for h in twilio_stub.hangups()] == [(call.sid, "canceled")]
    assert len(hangup_events(ctx)) == 1


def test_a_call_in_progress_is_completed_rather_than_cancelled(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any, ringing: Any
) -> None:
    from rapidresponse import engine

    call = ringing
    answer(webapp, call)  # picked up, listening ...
    engine.resolve(ctx, calls_case.ref, "found")  # ... while the minor is found
    later(clock, ctx, phone, settings, seconds=1)
    assert [(h.sid, h.form["Status"]) for h in twilio_stub.hangups()] == [(call.sid, "completed")]


def test_a_call_that_already_ended_is_not_hung_up(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any, ringing: Any
) -> None:
    from rapidresponse import engine

    call = ringing
    call_status(webapp, call, "completed")
    engine.resolve(ctx, calls_case.ref, "found")
    later(clock, ctx, phone, settings, minutes=5)
    assert not [r for r in twilio_stub.received() if r.kind == "hangup"]
    assert not hangup_events(ctx)


def test_a_call_acknowledged_by_its_own_key_hangs_up_by_itself(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, webapp: Any,
    calls_case: Any, ringing: Any
) -> None:
    call = ringing
    _, said = press(webapp, call, "1")
    assert "<Hangup" in said
    later(clock, ctx, phone, settings, minutes=5)
    assert not [r for r in twilio_stub.received() if r.kind == "hangup"]


def test_a_hang_up_refused_with_503_is_retried(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any, ringing: Any
) -> None:
    from twilio_stub import Reply

    from rapidresponse import engine

    call = ringing
    twilio_stub.script_hangups(Reply(status=503, code=20503))
    engine.resolve(ctx, calls_case.ref, "found")
    later(clock, ctx, phone, settings, seconds=1)
    assert [r.status for r in twilio_stub.received() if r.kind == "hangup"] == [503]
    [retry] = events(ctx, "call.hangup_retry")
    assert retry["detail"]["error_code"] == "20503" and not hangup_events(ctx)
    later(clock, ctx, phone, settings, seconds=retry["detail"]["retry_in"] + 1)
    assert [(h.sid, h.form["Status"]) for h in twilio_stub.hangups()] == [(call.sid, "canceled")]
    assert len(hangup_events(ctx)) == 1


def test_a_sender_that_dies_before_hanging_up_leaves_it_for_the_next_run(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any, ringing: Any
) -> None:
    from rapidresponse import dispatch, engine

    call = ringing
    engine.resolve(ctx, calls_case.ref, "found")
    assert dispatch.claim_hangups(ctx, settings)  # claimed by a sender that dies ...
    later(clock, ctx, phone, settings, seconds=1)
    assert not twilio_stub.hangups()  # ... its lease still runs
    later(clock, ctx, phone, settings, seconds=settings.claim_seconds)
    assert [h.sid for h in twilio_stub.hangups()] == [call.sid]


def test_the_daemons_senders_hang_up(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any, ringing: Any
) -> None:
    from rapidresponse import dispatch, engine

    call = ringing
    engine.resolve(ctx, calls_case.ref, "found")
    pool = dispatch.SenderPool(db_path=ctx.store.path, clock=clock, contacts=lambda: ctx.contacts,
                               transport=phone, settings=settings, workers=2)
    try:
        cycle = dispatch.process_all(ctx, settings, capacity=pool.capacity())
        pool.submit(cycle.claimed)
        pool.submit_hangups(cycle.hangups)
    finally:
        pool.shutdown()
    assert [h.sid for h in twilio_stub.hangups()] == [call.sid] and len(hangup_events(ctx)) == 1


def test_a_call_the_provider_does_not_know_is_logged_and_left(
    ctx: Any, clock: Any, settings: Any, phone: Any, twilio_stub: TwilioStub, calls_case: Any, ringing: Any
) -> None:
    from rapidresponse import engine

    assert ringing
    ctx.store.conn.execute("UPDATE messages SET sid = ? WHERE channel = 'voice'", ["CA" + "0" * 32])
    engine.resolve(ctx, calls_case.ref, "found")
    later(clock, ctx, phone, settings, seconds=1)
    later(clock, ctx, phone, settings, minutes=5)
    assert [r.status for r in twilio_stub.received() if r.kind == "hangup"] == [404]
    [failed] = events(ctx, "call.hangup_failed")
    assert failed["detail"]["error_code"] == "20404"


def test_the_console_prints_the_hang_up(app: Any, ctx: Any, clock: Any, settings: Any) -> None:
    from conftest import register_minor, tick, use_playbook_text
    from rapidresponse import engine

    out = io.StringIO()
    console = ConsoleTransport(out)
    reg = register_minor(ctx, app, playbook=use_playbook_text(app, "calls", CALL_PLAYBOOK))
    tick(ctx, console, settings)
    clock.advance(minutes=5)
    tick(ctx, console, settings)
    engine.acknowledge(ctx, reg.ref, "youth_prosecutor", via="sms")
    tick(ctx, console, settings)
    [sid] = [r["sid"] for r in ctx.store.all("SELECT sid FROM messages WHERE channel = 'voice'")]
    assert f"[call console] hang up {sid} (canceled)" in out.getvalue().splitlines()
    assert len(hangup_events(ctx)) == 1


# ---------------------------------------------------------------- what `show` says comes next


def test_show_says_what_each_deadline_brings_a_call_the_next_contact_escalation(
    app: Any, ctx: Any, clock: Any, settings: Any, phone: Any, calls_case: Any, runner: Any
) -> None:
    from rapidresponse.cli import cli
    from rapidresponse.review import show_case

    def upcoming() -> dict[str, Any]:
        view = show_case(ctx.store, calls_case.ref, clock.now(), ctx.contacts)
        return next(s for s in view["steps"] if s["id"] == "alert")["next"]

    first, backup = (c.name for c in ctx.contacts.roles["youth_prosecutor"].contacts[:2])
    coordinators = ", ".join(c.name for c in ctx.contacts.on_duty("coordinator", clock.now()))
    nxt = upcoming()
    assert nxt["what"] == f"calls {first} (youth_prosecutor) if not acknowledged"
    assert nxt["then"]["what"] == f"texts {backup} (youth_prosecutor) if the call is not acknowledged within 15m"
    shown = runner.invoke(cli, ["--home", str(app.home), "show", calls_case.ref])
    assert f"next: calls {first} (youth_prosecutor) if not acknowledged" in shown.output
    assert "then: texts" in shown.output and "escalates if not acknowledged" not in shown.output
    later(clock, ctx, phone, settings, minutes=5)              # the call rings: next, the backup
    assert upcoming()["what"] == f"texts {backup} (youth_prosecutor) if not acknowledged"
    assert upcoming()["then"] is None
    later(clock, ctx, phone, settings, minutes=15)             # the backup's text: then their call
    assert upcoming()["what"] == f"calls {backup} (youth_prosecutor) if not acknowledged"
    assert upcoming()["then"]["action"] == "escalate"
    later(clock, ctx, phone, settings, minutes=5)              # the backup's call: then escalation
    assert upcoming()["what"] == f"escalates to coordinator ({coordinators}) if not acknowledged"
    later(clock, ctx, phone, settings, minutes=15)             # escalated: its call, then nobody left
    assert upcoming()["action"] == "call"
    assert upcoming()["then"]["what"] == ("is exhausted (nobody left to try) if the call is not acknowledged"
                                          " within 15m")


def test_show_says_a_call_was_placed_not_sent(
    app: Any, ctx: Any, clock: Any, settings: Any, phone: Any, calls_case: Any, runner: Any
) -> None:
    from rapidresponse.cli import cli

    later(clock, ctx, phone, settings, minutes=5)  # the text, then the call rings
    shown = runner.invoke(cli, ["--home", str(app.home), "show", calls_case.ref]).output
    first = ctx.contacts.roles["youth_prosecutor"].contacts[0].name
    assert f"{first} call placed" in shown and "call sent" not in shown
    assert f"{first} sent" in shown  # the text before it is still a text
