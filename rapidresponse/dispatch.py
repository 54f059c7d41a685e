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
from rapidresponse.sms import SendError, Sent, TransientSendError, Transport
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
            "SELECT * FROM messages WHERE state = 'queued' AND not_before <= ?"
            " ORDER BY id LIMIT ?",
            [stamp, limit],
        )
        stale = ctx.store.all(
            "SELECT * FROM messages WHERE state = 'sending' AND claim_deadline <= ?"
            " ORDER BY id LIMIT ?",
            [stamp, limit],
        )
        # An alert whose step is over (the case resolved, or the role answered) is not sent again,
        # whether it was interrupted or came back for a retry: after a stand-down it would tell
        # its contact to search for a minor who has been found.
        for row in [r for r in rows + stale if _alert_of_finished_step(ctx, r)]:
            (stale if row in stale else rows).remove(row)
            ctx.store.conn.execute(
                "UPDATE messages SET state = 'cancelled', final_at = ?, claim_deadline = NULL WHERE id = ?",
                [stamp, row["id"]],
            )
            audit.append(
                ctx.store, at=now, kind="sms.cancelled", actor=SYSTEM, case=case_ref(ctx, row["case_id"]),
                detail={"message": row["id"], "was": row["state"],
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
                "UPDATE messages SET state = 'sending', attempts = ?, claim_deadline = ?,"
                " possible_duplicate = ? WHERE id = ?",
                [row["attempts"], deadline, row["possible_duplicate"], row["id"]],
            )
    return claimed


def message_detail(ctx: Context, row: dict[str, Any], transport: str | None = None) -> dict[str, Any]:
    """What every message event records: step, role, contact, number, body and transport."""
    step_key = None
    if row["step_id"] is not None:
        step_key = ctx.store.scalar("SELECT step_key FROM steps WHERE id = ?", [row["step_id"]])
    return {
        "message": row["id"], "step": step_key, "role": row["role"], "contact": row["contact"],
        "to": row["to_number"], "body": row["body"], "transport": transport or row["transport"],
    }


def _alert_of_finished_step(ctx: Context, row: dict[str, Any]) -> bool:
    if row["kind"] != "alert" or row["step_id"] is None:
        return False
    state = ctx.store.scalar("SELECT state FROM steps WHERE id = ?", [row["step_id"]])
    return state in ("cancelled", "acknowledged")


def _alert_in_flight(ctx: Context, row: dict[str, Any], stamp: str) -> bool:
    if row["kind"] != "stand_down":
        return False
    return bool(ctx.store.scalar(
        "SELECT 1 FROM messages WHERE case_id = ? AND to_number = ? AND kind = 'alert'"
        " AND state = 'sending' AND claim_deadline > ?",
        [row["case_id"], row["to_number"], stamp],
    ))


def case_ref(ctx: Context, case_id: int | None) -> str | None:
    if case_id is None:
        return None
    return str(ctx.store.scalar("SELECT ref FROM cases WHERE id = ?", [case_id]))


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
    now = ctx.clock.now()
    with ctx.store.transaction():
        ref = case_ref(ctx, row["case_id"])
        detail = message_detail(ctx, row, transport=transport.name)
        detail["attempt"] = row["attempts"]
        if row["possible_duplicate"]:
            detail["possible_duplicate"] = True
        summary = {"id": row["id"], "role": row["role"], "contact": row["contact"],
                   "to": row["to_number"], "kind": row["kind"]}
        if isinstance(result, Sent):
            updated = ctx.store.conn.execute(
                "UPDATE messages SET state = 'sent', sid = ?, transport = ?, sent_at = ?,"
                " claim_deadline = NULL WHERE id = ? AND state = 'sending'",
                [result.sid, transport.name, to_iso(now), row["id"]],
            ).rowcount
            detail["sid"] = result.sid
            kind = {"stand_down": "sms.stand_down", "test": "sms.test"}.get(row["kind"], "sms.sent")
            if not updated:
                detail["note"] = "the message had already been settled by another process"
            audit.append(ctx.store, at=now, kind=kind, actor=SYSTEM, case=ref, detail=detail)
            engine.on_message_outcome(ctx, row["id"])
            if updated:
                from rapidresponse.webhooks import apply_held_receipts  # webhooks imports us

                apply_held_receipts(ctx, result.sid)
            report.sent.append({**summary, "state": "sent", "sid": result.sid})
            return
        # A transient failure says nothing about the number: the provider or the network is down,
        # or our credentials are wrong. Moving the chain on would fail every backup the same way
        # and exhaust every step within minutes, so the message waits and is tried again (backoff
        # capped at a minute) for as long as it takes; `status` turns red after max_attempts.
        if isinstance(result, TransientSendError):
            delay = backoff(row["attempts"], result.retry_after)
            updated = ctx.store.conn.execute(
                "UPDATE messages SET state = 'queued', not_before = ?, claim_deadline = NULL,"
                " transport = ?, error_code = ?, error_text = ?,"
                " possible_duplicate = possible_duplicate OR ? WHERE id = ? AND state = 'sending'",
                [to_iso(now + timedelta(seconds=delay)), transport.name, result.code,
                 result.text, int(result.maybe_sent), row["id"]],
            ).rowcount
            if result.maybe_sent:
                detail["may_have_been_sent"] = True
            if row["attempts"] >= settings.max_attempts:
                detail["not_getting_through"] = True
            detail.update(error_code=result.code, error=result.text, retry_in=round(delay, 3))
            if not updated:
                detail["note"] = "the message had already been settled by another process"
            audit.append(ctx.store, at=now, kind="sms.retry", actor=SYSTEM, case=ref,
                         detail=detail)
            report.retrying.append({**summary, "state": "queued", "error": result.text})
            return
        text = result.text
        updated = ctx.store.conn.execute(
            "UPDATE messages SET state = 'failed', final_at = ?, claim_deadline = NULL,"
            " transport = ?, error_code = ?, error_text = ? WHERE id = ? AND state = 'sending'",
            [to_iso(now), transport.name, result.code, text, row["id"]],
        ).rowcount
        detail.update(error_code=result.code, error=text)
        if not updated:
            detail["note"] = "the message had already been settled by another process"
        audit.append(ctx.store, at=now, kind="sms.failed", actor=SYSTEM, case=ref,
                     detail=detail)
        engine.on_message_outcome(ctx, row["id"])
        report.failed.append({**summary, "state": "failed", "error": text, "code": result.code})


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
        next_due = ctx.store.scalar("SELECT MIN(not_before) FROM messages WHERE state = 'queued'")
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
