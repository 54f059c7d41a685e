"""The named states of cases, steps and messages, and the groups the rules reason about.

They are `StrEnum`s, so they are the very strings stored in SQLite (and accepted by it as
parameters); `sql(...)` spells a group for an `IN (...)` clause without quoting by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class CaseState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    PURGED = "purged"


class Phase(StrEnum):
    MAIN = "main"
    AFTER_RESOLVED = "after_resolved"


class StepState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    EXHAUSTED = "exhausted"
    DONE = "done"
    CANCELLED = "cancelled"
    #: Nobody to message on this case (a case role the case names no one for): not done, not
    #: failed; the `step.skipped` event says why.
    SKIPPED = "skipped"


class MessageKind(StrEnum):
    ALERT = "alert"
    STAND_DOWN = "stand_down"
    TEST = "test"


class Channel(StrEnum):
    """How an outbox row reaches its contact: a text, or a voice call that speaks its body."""

    SMS = "sms"
    VOICE = "voice"


class MessageState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    CANCELLED = "cancelled"
    #: Its send may have reached the provider (the answer was lost), and its alert is no longer
    #: wanted: never sent again, never called cancelled, and its number gets the stand-down.
    UNCONFIRMED = "unconfirmed"


#: A step that can still send: planned, or waiting for an acknowledgement.
RUNNING_STEPS = (StepState.PENDING, StepState.ACTIVE)
#: A step whose chain has been stopped by a person (an answer) or by the case (found, moved).
STOPPED_STEPS = (StepState.CANCELLED, StepState.ACKNOWLEDGED)

#: Not settled yet: waiting in the outbox, or in the hands of a sender.
UNSENT = (MessageState.QUEUED, MessageState.SENDING)
#: The provider took it.
ACCEPTED = (MessageState.SENT, MessageState.DELIVERED)
#: It will not arrive.
NOT_DELIVERED = (MessageState.FAILED, MessageState.UNDELIVERED)
#: Nothing changes a message in one of these any more.
FINAL_MESSAGES = (MessageState.DELIVERED, MessageState.UNDELIVERED, MessageState.FAILED,
                  MessageState.CANCELLED, MessageState.UNCONFIRMED)


#: How a case ends. Found and returned: the minor is back, and the after-return steps run
#: (welfare check, return interview, referral); withdrawn: the report was a mistake or a duplicate.
OUTCOMES = ("found", "returned", "withdrawn", "other")
RETURNED_OUTCOMES = ("found", "returned")


def sql(states: Iterable[str]) -> str:
    """`('pending', 'active')`: a group for an SQL `IN` clause (the values are our constants)."""
    return "(" + ", ".join(f"'{s}'" for s in states) + ")"
