"""Transports. A transport sends one text (or places one call) and says how it went;
dispatch does the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rapidresponse.config import Settings


class SendError(Exception):
    def __init__(
        self,
        text: str,
        code: str | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ):
        super().__init__(text)
        self.text = text
        self.code = code
        self.retry_after = retry_after
        #: The provider may have accepted the text before the answer was lost (a read time-out):
        #: the next attempt is logged as a possible duplicate.
        self.maybe_sent = maybe_sent


class TransientSendError(SendError):
    """Worth another try later: rate limits, server errors, time-outs."""


class PermanentSendError(SendError):
    """Will never work for this number: move on to the next contact at once."""


@dataclass(frozen=True)
class Sent:
    sid: str


class Transport(Protocol):
    name: str

    def check(self) -> None:
        """Raise OperationalFailure if the transport cannot work, before anything is claimed."""

    def send(self, to: str, body: str) -> Sent: ...

    def call(self, to: str, speech: str, message_id: int) -> Sent:
        """Place a call that speaks `speech` and gathers one key for message `message_id`."""
        ...

    def hang_up(self, sid: str, answered: bool) -> str:
        """End call `sid` (cancel it while it rings); returns the status asked for."""
        ...


def make_transport(settings: Settings) -> Transport:
    if settings.transport == "twilio":
        from rapidresponse.sms.twilio import TwilioTransport

        return TwilioTransport.from_environment()
    from rapidresponse.sms.console import ConsoleTransport

    return ConsoleTransport()
