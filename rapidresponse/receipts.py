"""What the provider tells us after a send: delivery receipts (and a call's final status),
held receipts, message events.

Below both `dispatch` (which records the SID and applies receipts that overtook it) and
`webhooks` (which receives them), so neither imports the other.
"""

from __future__ import annotations

import json
from typing import Any

from rapidresponse import audit, engine
from rapidresponse.casecontacts import logged_number
from rapidresponse.engine import SYSTEM, Context
from rapidresponse.states import FINAL_MESSAGES, NOT_DELIVERED, Channel, MessageState
from rapidresponse.timeutil import to_iso
from rapidresponse.voice import CALL_STATES, answered_by_machine

#: Twilio's message states → ours. Others (queued, accepted, sending, ...) change nothing.
RECEIPT_STATES = {
    "sent": MessageState.SENT, "delivered": MessageState.DELIVERED,
    "read": MessageState.DELIVERED, "undelivered": MessageState.UNDELIVERED,
    "failed": MessageState.FAILED,
}
_RANK = {MessageState.QUEUED: 0, MessageState.SENDING: 1, MessageState.SENT: 2}
FINAL_STATES = FINAL_MESSAGES

#: Common delivery error codes, so a supervisor reads a reason, not a number.
DELIVERY_ERRORS = {
    "30001": "queue overflow", "30002": "account suspended", "30003": "unreachable handset",
    "30004": "message blocked", "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier", "30007": "filtered by the carrier",
    "30008": "unknown error", "30034": "sender not registered",
}


def case_ref(ctx: Context, case_id: int | None) -> str | None:
    if case_id is None:
        return None
    return str(ctx.store.scalar("SELECT ref FROM cases WHERE id = ?", [case_id]))


def message_detail(ctx: Context, row: dict[str, Any], transport: str | None = None) -> dict[str, Any]:
    """What every message event records: step, role, contact, number, body and transport
    (and, for a call, its channel: the body is then what the call says)."""
    step_key = None
    if row["step_id"] is not None:
        step_key = ctx.store.scalar("SELECT step_key FROM steps WHERE id = ?", [row["step_id"]])
    detail = {
        "message": row["id"], "step": step_key, "role": row["role"], "contact": row["contact"],
        "to": logged_number(row["role"], row["to_number"]), "body": row["body"],
        "transport": transport or row["transport"],
    }
    if row.get("channel") == Channel.VOICE:
        detail["channel"] = "voice"
    return detail


#: A call's fate in its own words: placed (ringing), answered, not answered (no-answer, busy).
_CALL_WORDS = {"sent": "placed", "delivered": "answered", "undelivered": "not_answered"}


def call_state(state: str) -> str:
    """A call's message state as said of a call: `sent` is placed (it rings), `delivered` answered."""
    return _CALL_WORDS.get(state, state).replace("_", " ")


def event_kind(row: dict[str, Any], what: str) -> str:
    """`sms.sent`, `call.placed`, `sms.retry`, `call.retry`…: a call's events say it is one."""
    if row.get("channel") == Channel.VOICE:
        return f"call.{_CALL_WORDS.get(what, what)}"
    return f"sms.{what}"


def call_pickup(ctx: Context, case_id: int | None, sid: str) -> dict[str, Any] | None:
    """The `call.picked_up` event's detail of call `sid`: Twilio fetched what it says, so the
    call was answered (by `answered_by`, when Twilio detected who); None if it never was."""
    row = ctx.store.one(
        "SELECT detail FROM events WHERE case_ref IS ? AND kind = 'call.picked_up'"
        " AND json_extract(detail, '$.sid') = ? ORDER BY seq DESC LIMIT 1",
        [case_ref(ctx, case_id), sid])
    return json.loads(row["detail"]) if row else None


def record_receipt(ctx: Context, sid: str, status: str, error_code: str | None = None,
                   answered_by: str | None = None) -> str:
    """Apply one delivery receipt. Returns 'updated', 'unchanged', 'ignored' or 'unknown'.

    Idempotent and monotonic: a late `sent` never overwrites `delivered`, final states stay
    final. `undelivered` and `failed` move the step on at once, in the same transaction.
    A call `completed` by an answering machine (`answered_by`, from this callback or from the
    request for what the call says) is not answered: nobody heard it, so it moves on too.
    """
    if status not in RECEIPT_STATES and status not in CALL_STATES:
        return "ignored"
    now = ctx.clock.now()
    with ctx.store.transaction():
        msg = ctx.store.one("SELECT * FROM messages WHERE sid = ?", [sid])
        if msg is None:
            return "unknown"
        new = (CALL_STATES if msg["channel"] == Channel.VOICE else RECEIPT_STATES).get(status)
        if new is None:
            return "ignored"
        current = msg["state"]
        if current in FINAL_STATES or _RANK.get(new, 3) <= _RANK.get(current, 3):
            return "unchanged"
        if msg["channel"] == Channel.VOICE and status == "completed" and not answered_by:
            answered_by = (call_pickup(ctx, msg["case_id"], sid) or {}).get("answered_by")
        machine = msg["channel"] == Channel.VOICE and answered_by_machine(answered_by)
        if machine:
            new = MessageState.UNDELIVERED
        error_text = None
        if machine:
            error_text = f"call answered by a machine ({answered_by})"
        elif new in NOT_DELIVERED and msg["channel"] == Channel.VOICE:
            error_text = f"call {status}"  # no-answer, busy, canceled, failed
        elif new in NOT_DELIVERED:
            error_text = DELIVERY_ERRORS.get(error_code or "", "not delivered")
            if error_code:
                error_text = f"Twilio {error_code}: {error_text}"
        ctx.store.conn.execute(
            "UPDATE messages SET state = ?, final_at = ?, error_code = COALESCE(?, error_code),"
            " error_text = COALESCE(?, error_text) WHERE id = ?",
            [new, to_iso(now) if new != MessageState.SENT else None, error_code or None,
             error_text, msg["id"]],
        )
        if new != MessageState.SENT:
            detail = {**message_detail(ctx, msg), "sid": sid, "status": status}
            if answered_by and msg["channel"] == Channel.VOICE:
                detail["answered_by"] = answered_by
            if error_code:
                detail["error_code"] = error_code
            if error_code or machine:
                detail["error"] = error_text
            audit.append(ctx.store, at=now, kind=event_kind(msg, new), actor=SYSTEM,
                         case=case_ref(ctx, msg["case_id"]), detail=detail)
            if new in NOT_DELIVERED:
                engine.on_message_outcome(ctx, msg["id"])
    return "updated"


def hold_receipt(ctx: Context, sid: str, status: str, error_code: str | None) -> None:
    """Keep a receipt for a SID nobody has recorded yet; dispatch applies it when it does."""
    with ctx.store.transaction():
        ctx.store.conn.execute(
            "INSERT INTO early_receipts (sid, status, error_code, received_at) VALUES (?, ?, ?, ?)",
            [sid, status, error_code, to_iso(ctx.clock.now())],
        )
        audit.append(ctx.store, at=ctx.clock.now(), kind="sms.receipt_unmatched", actor=SYSTEM,
                     detail={"sid": sid, "status": status, "error_code": error_code, "held": True})


def apply_held_receipts(ctx: Context, sid: str) -> None:
    """Apply, in order, the receipts that arrived before `sid` was recorded."""
    held = ctx.store.all("SELECT * FROM early_receipts WHERE sid = ? ORDER BY id", [sid])
    for row in held:
        record_receipt(ctx, sid, row["status"], row["error_code"])
    if held:
        ctx.store.conn.execute("DELETE FROM early_receipts WHERE sid = ?", [sid])
