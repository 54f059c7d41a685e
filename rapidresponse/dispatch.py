"""The outbox: claim queued messages atomically, send them in parallel, record what happened.

Delivery is at-least-once. A claim sets a deadline; a message still `sending` past its deadline
belonged to a process that died mid-send, so it is sent again and logged as a possible duplicate.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rapidresponse import audit, engine
from rapidresponse.config import Settings
from rapidresponse.engine import SYSTEM, Context
from rapidresponse.receipts import apply_held_receipts, case_ref, message_detail
from rapidresponse.sms import SendError, Sent, TransientSendError, Transport
from rapidresponse.states import MessageKind, MessageState
from rapidresponse.timeutil import from_iso, to_iso

MAX_PARALLEL = 32
BACKOFF_BASE = 2.0
BACKOFF_CAP = 60.0


@dataclass
class DispatchReport:
    sent: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    retrying: list[dict[str, Any]] = field(default_factory=list)

    def all(self) -> list[dict[str, Any]]:
        return self.sent + self.failed + self.retrying


def backoff(attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Exponential with jitter, bounded; never sooner than the provider asked."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempt - 1, 0))
    delay = ceiling * (0.5 + 0.5 * (rng or random).random())
    return max(delay, retry_after or 0.0)


def claim(ctx: Context, settings: Settings, limit: int = MAX_PARALLEL * 4) -> list[dict[str, Any]]:
    """queued → sending in one BEGIN IMMEDIATE transaction, with a deadline to finish by."""
    now = ctx.clock.now()
    stamp = to_iso(now)
    deadline = to_iso(now + timedelta(seconds=settings.claim_seconds))
    with ctx.store.transaction():
        rows = ctx.store.all(
            "SELECT * FROM messages WHERE state = ? AND not_before <= ? ORDER BY id LIMIT ?",
            [MessageState.QUEUED, stamp, limit],
        )
        stale = ctx.store.all(
            "SELECT * FROM messages WHERE state = ? AND claim_deadline <= ? ORDER BY id LIMIT ?",
            [MessageState.SENDING, stamp, limit],
        )
        # An alert nobody wants any more (its chain stopped, its case resolved) is not sent
        # again, whether it was interrupted or came back for a retry: after a stand-down it
        # would send its contact searching for a minor who has been found.
        for row in [r for r in rows + stale if not engine.alert_wanted(ctx.store, r)]:
            (stale if row in stale else rows).remove(row)
            engine.withdraw_alerts(ctx, "id = ?", [row["id"]])
            audit.append(
                ctx.store, at=now, kind="sms.cancelled", actor=SYSTEM, case=case_ref(ctx, row["case_id"]),
                detail={"message": row["id"], "was": row["state"],
                        "state": ctx.store.scalar("SELECT state FROM messages WHERE id = ?", [row["id"]]),
                        "why": "its step ended (resolved or acknowledged) before it was sent"},
            )
        # A stand-down waits while an alert to the same number is still in flight, so the two
        # can never arrive in the wrong order.
        rows = [r for r in rows if not _alert_in_flight(ctx, r, stamp)]
        for row in stale:
            row["possible_duplicate"] = 1
            audit.append(
                ctx.store, at=now, kind="sms.reclaimed", actor=SYSTEM, case=case_ref(ctx, row["case_id"]),
                detail={"message": row["id"], "possible_duplicate": True,
                        "why": "an earlier send was interrupted before its result was recorded"},
            )
        claimed = rows + stale
        for row in claimed:
            row["attempts"] += 1
            ctx.store.conn.execute(
                "UPDATE messages SET state = ?, attempts = ?, claim_deadline = ?,"
                " possible_duplicate = ? WHERE id = ?",
                [MessageState.SENDING, row["attempts"], deadline, row["possible_duplicate"], row["id"]],
            )
    return claimed


def _alert_in_flight(ctx: Context, row: dict[str, Any], stamp: str) -> bool:
    if row["kind"] != MessageKind.STAND_DOWN:
        return False
    return bool(ctx.store.scalar(
        "SELECT 1 FROM messages WHERE case_id = ? AND to_number = ? AND kind = ?"
        " AND state = ? AND claim_deadline > ?",
        [row["case_id"], row["to_number"], MessageKind.ALERT, MessageState.SENDING, stamp],
    ))


def send_claimed(
    ctx: Context, transport: Transport, settings: Settings, claimed: list[dict[str, Any]]
) -> DispatchReport:
    """Send in parallel (the network waits, not the CPU); record each result as it arrives."""
    report = DispatchReport()
    if not claimed:
        return report
    workers = min(MAX_PARALLEL, len(claimed))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sms") as pool:
        futures: dict[Future[Sent], dict[str, Any]] = {
            pool.submit(transport.send, row["to_number"], row["body"]): row for row in claimed
        }
        for future in as_completed(futures):
            row = futures[future]
            try:
                result: Sent | SendError = future.result()
            except SendError as exc:
                result = exc
            except Exception as exc:  # a transport bug must not lose the message
                result = TransientSendError(f"{type(exc).__name__} in the transport")
            _record(ctx, transport, settings, row, result, report)
    return report


def _record(
    ctx: Context,
    transport: Transport,
    settings: Settings,
    row: dict[str, Any],
    result: Sent | SendError,
    report: DispatchReport,
) -> None:
    """Record one send's result in its own transaction: accepted, try again later, or failed."""
    with ctx.store.transaction():
        detail = message_detail(ctx, row, transport=transport.name)
        detail["attempt"] = row["attempts"]
        if row["possible_duplicate"]:
            detail["possible_duplicate"] = True
        summary = {"id": row["id"], "role": row["role"], "contact": row["contact"],
                   "to": row["to_number"], "kind": row["kind"]}
        if isinstance(result, Sent):
            _accepted(ctx, transport, row, result, detail)
            report.sent.append({**summary, "state": MessageState.SENT, "sid": result.sid})
        elif isinstance(result, TransientSendError):
            _retry_later(ctx, transport, settings, row, result, detail)
            report.retrying.append({**summary, "state": MessageState.QUEUED, "error": result.text})
        else:
            _failed(ctx, transport, row, result, detail)
            report.failed.append({**summary, "state": MessageState.FAILED, "error": result.text,
                                  "code": result.code})


SETTLED_ELSEWHERE = "the message had already been settled by another process"


def _accepted(ctx: Context, transport: Transport, row: dict[str, Any], result: Sent,
              detail: dict[str, Any]) -> None:
    """The provider took it: record the SID, let the step react, apply receipts that overtook it."""
    now = ctx.clock.now()
    updated = ctx.store.conn.execute(
        "UPDATE messages SET state = ?, sid = ?, transport = ?, sent_at = ?, final_at = NULL,"
        " claim_deadline = NULL WHERE id = ? AND state IN (?, ?)",
        [MessageState.SENT, result.sid, transport.name, to_iso(now), row["id"], MessageState.SENDING,
         MessageState.UNCONFIRMED],
    ).rowcount
    detail["sid"] = result.sid
    kind = {MessageKind.STAND_DOWN: "sms.stand_down", MessageKind.TEST: "sms.test"}.get(
        row["kind"], "sms.sent")
    if not updated:
        detail["note"] = SETTLED_ELSEWHERE
    audit.append(ctx.store, at=now, kind=kind, actor=SYSTEM, case=case_ref(ctx, row["case_id"]),
                 detail=detail)
    engine.on_message_outcome(ctx, row["id"])
    if updated:
        apply_held_receipts(ctx, result.sid)


def _retry_later(ctx: Context, transport: Transport, settings: Settings, row: dict[str, Any],
                 result: TransientSendError, detail: dict[str, Any]) -> None:
    """A transient failure says nothing about the number: the provider or the network is down,
    or our credentials are wrong. Moving the chain on would fail every backup the same way and
    exhaust every step within minutes, so the message waits and is tried again (backoff capped
    at a minute) for as long as it takes; `status` turns red after max_attempts."""
    now = ctx.clock.now()
    delay = backoff(row["attempts"], result.retry_after)
    updated = ctx.store.conn.execute(
        "UPDATE messages SET state = ?, not_before = ?, claim_deadline = NULL,"
        " transport = ?, error_code = ?, error_text = ?,"
        " possible_duplicate = possible_duplicate OR ? WHERE id = ? AND state = ?",
        [MessageState.QUEUED, to_iso(now + timedelta(seconds=delay)), transport.name, result.code,
         result.text, int(result.maybe_sent), row["id"], MessageState.SENDING],
    ).rowcount
    if result.maybe_sent:
        detail["may_have_been_sent"] = True
    if row["attempts"] >= settings.max_attempts:
        detail["not_getting_through"] = True
    detail.update(error_code=result.code, error=result.text, retry_in=round(delay, 3))
    if not updated:
        detail["note"] = SETTLED_ELSEWHERE
    audit.append(ctx.store, at=now, kind="sms.retry", actor=SYSTEM,
                 case=case_ref(ctx, row["case_id"]), detail=detail)


def _failed(ctx: Context, transport: Transport, row: dict[str, Any], result: SendError,
            detail: dict[str, Any]) -> None:
    """It will never work for this number: the step moves on to the next contact at once."""
    now = ctx.clock.now()
    updated = ctx.store.conn.execute(
        "UPDATE messages SET state = ?, final_at = ?, claim_deadline = NULL,"
        " transport = ?, error_code = ?, error_text = ? WHERE id = ? AND state = ?",
        [MessageState.FAILED, to_iso(now), transport.name, result.code, result.text, row["id"],
         MessageState.SENDING],
    ).rowcount
    detail.update(error_code=result.code, error=result.text)
    if not updated:
        detail["note"] = SETTLED_ELSEWHERE
    audit.append(ctx.store, at=now, kind="sms.failed", actor=SYSTEM,
                 case=case_ref(ctx, row["case_id"]), detail=detail)
    engine.on_message_outcome(ctx, row["id"])


def dispatch(
    ctx: Context, transport: Transport, settings: Settings, *, wait_for_retries: float = 0.0
) -> DispatchReport:
    """Send everything sendable; optionally wait (on the clock) for retries due soon."""
    total = DispatchReport()
    retrying: dict[int, dict[str, Any]] = {}
    waited_until = ctx.clock.now() + timedelta(seconds=wait_for_retries)
    while True:
        report = send_claimed(ctx, transport, settings, claim(ctx, settings))
        total.sent += report.sent
        total.failed += report.failed
        for settled in report.sent + report.failed:
            retrying.pop(settled["id"], None)
        retrying.update((r["id"], r) for r in report.retrying)
        total.retrying = list(retrying.values())
        if report.sent or report.failed or report.retrying:
            continue  # a result may have queued the next contact already
        next_due = ctx.store.scalar("SELECT MIN(not_before) FROM messages WHERE state = ?",
                                    [MessageState.QUEUED])
        if next_due is None or from_iso(next_due) > waited_until:
            return total
        if from_iso(next_due) <= ctx.clock.now():
            return total  # due but held (a stand-down behind an alert in flight): a later pass
        ctx.clock.sleep(max((from_iso(next_due) - ctx.clock.now()).total_seconds(), 0.0))


def run_pass(
    ctx: Context,
    transport: Transport,
    settings: Settings,
    *,
    wait_for_retries: float = 0.0,
    stop: threading.Event | None = None,
) -> DispatchReport:
    """One pass of the whole machine: fire due steps, apply time-outs, send, until quiet.

    `stop` ends a long catch-up between batches; the rows keep what is left for the next run.
    """
    total = DispatchReport()
    while stop is None or not stop.is_set():
        fired = engine.activate_due(ctx)
        moved = engine.expire_deadlines(ctx)
        report = dispatch(ctx, transport, settings, wait_for_retries=wait_for_retries)
        total.sent += report.sent
        total.failed += report.failed
        total.retrying = report.retrying or total.retrying
        if not (fired or moved or report.sent or report.failed):
            break
    return total
