"""Voice calls: what a call says, and what its one key does.

At 3 a.m. a text does not wake the magistrate on duty; a ringing phone does. A call speaks a
short Dutch text (`<Say language="nl-BE">`) and gathers one key: 1 acknowledges the step for
the contact's role, 2 repeats; silence or hanging up acknowledges nothing. The spoken text is
rendered from the playbook's `voice` template with the same fields and the same privacy lint
as a text, so a call says no more than a lock screen may show.

TwiML is built with twilio's own `VoiceResponse` (imported when a call is made, not before).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LANGUAGE = "nl-BE"
KEY_ACK = "1"
KEY_REPEAT = "2"
#: Seconds Twilio waits for a key after the prompt, and lets the phone ring.
GATHER_SECONDS = 8
RING_SECONDS = 30

TWIML_PATH = "/twilio/voice/twiml"
KEY_PATH = "/twilio/voice/key"
CALL_STATUS_PATH = "/twilio/voice/status"

PROMPT = "Druk 1 om te bevestigen. Druk 2 om te herhalen."
NO_KEY = "Er werd geen toets ingedrukt, er werd niets bevestigd. Tot ziens."
NO_KEYS_POSSIBLE = "Bevestig met een antwoord op de sms. Tot ziens."
SAY_ACKED = "Bevestigd. Dank u. Tot ziens."
SAY_NOTHING_WAITING = "Hiervoor wacht niets meer op uw bevestiging. Tot ziens."
SAY_UNKNOWN_KEY = "Die toets is niet gekend."
SAY_ALREADY = "Uw toets werd al verwerkt. Tot ziens."
SAY_NOT_NEEDED = ("Bericht van rapidresponse: deze oproep is niet meer nodig, de melding werd al"
                  " beantwoord of afgesloten. Tot ziens.")
SAY_TEST_OK = "Test geslaagd: uw toets kwam aan. Dank u. Tot ziens."

#: Twilio's answering machine detection (`MachineDetection`): a person is told apart at once,
#: a voicemail after its greeting, so what the voicemail records is the whole message.
MACHINE_DETECTION = "DetectMessageEnd"


def answered_by_machine(answered_by: str | None) -> bool:
    """Twilio's `AnsweredBy` says a machine took the call (machine_start, machine_end_beep,
    machine_end_silence, machine_end_other, fax): nobody heard it, nobody can press a key.
    `human`, `unknown` or no detection: perhaps a person, so the step waits for the key."""
    return bool(answered_by) and (answered_by.startswith("machine_") or answered_by == "fax")


#: Twilio's final call states → ours: answered counts as delivered; not answered moves the
#: chain on at once, like an undelivered text. Earlier states (queued, ringing…) change nothing.
CALL_STATES = {
    "completed": "delivered", "no-answer": "undelivered", "busy": "undelivered",
    "canceled": "undelivered", "failed": "failed",
}


def _spell(text: str) -> str:
    """Digits one by one, groups apart: a reference or number read out, not as a sum."""
    groups = [g for g in re.split(r"[\s\-]+", text) if g]
    return ", ".join(" ".join(ch for ch in group) for group in groups)


def spoken_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Template values as a voice should say them: `RR-2026-0001` as R R, 2 0 2 6, 0 0 0 1."""
    out = dict(values)
    for key in ("case", "ack"):
        if key in out:
            out[key] = _spell(str(out[key]))
    if "callback" in out:
        number = str(out["callback"])
        plus = number.startswith("+")
        out["callback"] = ("plus " if plus else "") + _spell(number.lstrip("+"))
    return out


def twiml_url(public_url: str, message_id: int) -> str:
    """Where Twilio fetches what the call says once it is answered (signed like every request)."""
    return f"{public_url.rstrip('/')}{TWIML_PATH}?m={message_id}"


def key_url(public_url: str, message_id: int) -> str:
    """Where the key press goes; Twilio signs every request to it (`X-Twilio-Signature`)."""
    return f"{public_url.rstrip('/')}{KEY_PATH}?m={message_id}"


def twiml(text: str, gather_url: str | None, *, before: str | None = None) -> str:
    """The call: the text and the prompt inside a one-key Gather, then goodbye.

    Without a URL to send keys to (no public webhook), the text is said twice and the callee
    is asked to answer the text message instead.
    """
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    if before:
        response.say(before, language=LANGUAGE)
    else:
        response.pause(length=1)  # the time it takes to bring the phone to the ear
    if gather_url:
        gather = response.gather(action=gather_url, method="POST", num_digits=1,
                                 timeout=GATHER_SECONDS, action_on_empty_result=False)
        gather.say(text, language=LANGUAGE)
        gather.say(PROMPT, language=LANGUAGE)
        response.say(NO_KEY, language=LANGUAGE)
    else:
        response.say(text, language=LANGUAGE)
        response.say(text, language=LANGUAGE)
        response.say(NO_KEYS_POSSIBLE, language=LANGUAGE)
    response.hangup()
    return str(response)


def goodbye(text: str) -> str:
    """Say one thing and hang up."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(text, language=LANGUAGE)
    response.hangup()
    return str(response)
