"""Voice calls: a call when a text is not acknowledged, acknowledged by pressing a key.

The real twilio client places calls against the local stand-in (`twilio_stub.py`, which speaks
the Calls API); key presses and status callbacks go through the signed WSGI app; time moves on
the fake clock.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from twilio_stub import ACCOUNT_SID, FROM_NUMBER, TwilioStub

from conftest import assert_no_secrets
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
    assert rec.twiml is not None
    (gather,) = parse_twiml(rec.twiml).iter("Gather")
    assert gather.get("action") == f"{PUBLIC}{KEY_PATH}?m=7"
    assert not twilio_stub.texts()


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
