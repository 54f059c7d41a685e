"""The outbox: claim queued messages atomically, send them in parallel, record what happened.

Delivery is at-least-once. A claim sets a deadline; a message still `sending` past its deadline
belonged to a process that died mid-send, so it is sent again and logged as a possible duplicate.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rapidresponse import audit, engine
from rapidresponse.casecontacts import logged_number
from rapidresponse.clock import Clock
from rapidresponse.config import Settings
from rapidresponse.contacts import Contacts
from rapidresponse.engine import SYSTEM, Context
from rapidresponse.receipts import (
    apply_held_receipts,
    call_pickup,
    case_ref,
    event_kind,
    message_detail,
)
from rapidresponse.sms import PermanentSendError, SendError, Sent, TransientSendError, Transport
from rapidresponse.states import Channel, MessageKind, MessageState
from rapidresponse.store import Store
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


#: The longest a message ever waits for its next attempt, whatever a provider's Retry-After
#: says. A `not_before` further ahead than this means the clock went back: due now.
MAX_RETRY_WAIT = 600.0


def backoff(attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Exponential with jitter, bounded; never sooner than the provider asked (up to 10 min)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempt - 1, 0))
    delay = ceiling * (0.5 + 0.5 * (rng or random).random())
    return max(delay, min(retry_after or 0.0, MAX_RETRY_WAIT))


def claim(ctx: Context, settings: Settings, limit: int = MAX_PARALLEL * 4) -> list[dict[str, Any]]:
    """queued → sending in one BEGIN IMMEDIATE transaction, with a deadline to finish by."""
    now = ctx.clock.now()
    stamp = to_iso(now)
    deadline = to_iso(now + timedelta(seconds=settings.claim_seconds))
    with ctx.store.transaction():
        rows = ctx.store.all(
            "SELECT * FROM messages WHERE state = ? AND (not_before <= ? OR not_before > ?)"
            " ORDER BY id LIMIT ?",
            [MessageState.QUEUED, stamp, to_iso(now + timedelta(seconds=MAX_RETRY_WAIT + 1)), limit],
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
                ctx.store, at=now, kind=event_kind(row, "cancelled"), actor=SYSTEM,
                case=case_ref(ctx, row["case_id"]),
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
                ctx.store, at=now, kind=event_kind(row, "reclaimed"), actor=SYSTEM,
                case=case_ref(ctx, row["case_id"]),
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


def attempt(transport: Transport, row: dict[str, Any]) -> Sent | SendError:
    """One send; whatever goes wrong comes back as a result, never as an exception."""
    try:
        return _deliver(transport, row)
    except SendError as exc:
        return exc
    except Exception as exc:  # a transport bug must not lose the message
        return TransientSendError(f"{type(exc).__name__} in the transport")


def send_claimed(
    ctx: Context, transport: Transport, settings: Settings, claimed: list[dict[str, Any]]
) -> DispatchReport:
    """Send in parallel (the network waits, not the CPU); record each result as it arrives."""
    report = DispatchReport()
    if not claimed:
        return report
    workers = min(MAX_PARALLEL, len(claimed))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sms") as pool:
        futures: dict[Future[Sent | SendError], dict[str, Any]] = {
            pool.submit(attempt, transport, row): row for row in claimed
        }
        for future in as_completed(futures):
            _record(ctx, transport, settings, futures[future], future.result(), report)
    return report


def _deliver(transport: Transport, row: dict[str, Any]) -> Sent:
    """Send the text, or place the call, that a claimed row holds."""
    if row.get("channel") == Channel.VOICE:
        if not hasattr(transport, "call"):
            raise PermanentSendError(f"the {transport.name} transport cannot place calls", "no-voice")
        return transport.call(row["to_number"], row["body"], row["id"])
    return transport.send(row["to_number"], row["body"])


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
                   "to": logged_number(row["role"], row["to_number"]), "kind": row["kind"],
                   "channel": row["channel"]}
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
    kind = event_kind(row, {MessageKind.STAND_DOWN: "stand_down", MessageKind.TEST: "test"}.get(
        row["kind"], "sent"))
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
    audit.append(ctx.store, at=now, kind=event_kind(row, "retry"), actor=SYSTEM,
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
    audit.append(ctx.store, at=now, kind=event_kind(row, "failed"), actor=SYSTEM,
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


def claim_hangups(ctx: Context, settings: Settings, limit: int = MAX_PARALLEL) -> list[dict[str, Any]]:
    """The calls marked to be hung up (`engine.hang_up_calls`) whose request is due, leased
    for `claim_seconds` like a message: a sender that dies leaves them due again after it.

    A call whose final status arrived meanwhile has ended by itself and is not touched."""
    now = ctx.clock.now()
    stamp = to_iso(now)
    lease = to_iso(now + timedelta(seconds=settings.claim_seconds))
    with ctx.store.transaction():
        rows = ctx.store.all(
            "SELECT * FROM messages WHERE hangup = 'due' AND state = ? AND sid IS NOT NULL"
            " AND (hangup_after IS NULL OR hangup_after <= ?) ORDER BY id LIMIT ?",
            [MessageState.SENT, stamp, limit],
        )
        for row in rows:
            row["hangup_attempts"] += 1
            row["answered"] = call_pickup(ctx, row["case_id"], row["sid"]) is not None
            ctx.store.conn.execute(
                "UPDATE messages SET hangup_after = ?, hangup_attempts = ? WHERE id = ?",
                [lease, row["hangup_attempts"], row["id"]],
            )
    return rows


def hang_up(ctx: Context, transport: Transport, settings: Settings, row: dict[str, Any]) -> None:
    """One hang-up request, then its result recorded: done, try again later, or refused."""
    try:
        result: str | SendError = transport.hang_up(row["sid"], row["answered"])
    except SendError as exc:
        result = exc
    except Exception as exc:  # a transport bug must not lose the hang-up
        result = TransientSendError(f"{type(exc).__name__} in the transport")
    now = ctx.clock.now()
    with ctx.store.transaction():
        detail = message_detail(ctx, row, transport=transport.name)
        detail.update(sid=row["sid"], attempt=row["hangup_attempts"])
        if isinstance(result, str):
            ctx.store.conn.execute("UPDATE messages SET hangup = 'done', hangup_after = NULL"
                                   " WHERE id = ?", [row["id"]])
            kind, detail["status"] = "call.hung_up", result
        elif isinstance(result, TransientSendError):
            delay = backoff(row["hangup_attempts"], result.retry_after)
            ctx.store.conn.execute("UPDATE messages SET hangup_after = ? WHERE id = ?",
                                   [to_iso(now + timedelta(seconds=delay)), row["id"]])
            kind = "call.hangup_retry"
            detail.update(error_code=result.code, error=result.text, retry_in=round(delay, 3))
        else:  # e.g. the call had already ended by itself
            ctx.store.conn.execute("UPDATE messages SET hangup = 'failed', hangup_after = NULL"
                                   " WHERE id = ?", [row["id"]])
            kind = "call.hangup_failed"
            detail.update(error_code=result.code, error=result.text)
        audit.append(ctx.store, at=now, kind=kind, actor=SYSTEM, case=case_ref(ctx, row["case_id"]),
                     detail=detail)


@dataclass
class Cycle:
    fired: int
    timed_out: int
    claimed: list[dict[str, Any]]
    hangups: list[dict[str, Any]] = field(default_factory=list)


def process_all(ctx: Context, settings: Settings, *, capacity: int = MAX_PARALLEL * 4) -> Cycle:
    """One cycle of the engine, its stages in the order that matters (as GoAlert's processAll):

    1. fire the steps that fell due: their first alerts are queued;
    2. time out the waits that ran out: the next contacts (or the escalation) are queued;
    3. claim what may be sent now, at most `capacity` messages (as many as there are free
       senders, so a claim's lease starts when its send does);
    4. claim the hang-ups due, for the senders left free.

    Every stage is its own transactions; nothing here waits for the network. Whoever calls it
    sends the claimed messages: `run_pass` at once, the daemon on its pool of senders.
    """
    fired = engine.activate_due(ctx)
    timed_out = engine.expire_deadlines(ctx)
    claimed = claim(ctx, settings, limit=capacity) if capacity > 0 else []
    room = capacity - len(claimed)
    hangups = claim_hangups(ctx, settings, limit=room) if room > 0 else []
    return Cycle(fired, timed_out, claimed, hangups)


def run_pass(
    ctx: Context,
    transport: Transport,
    settings: Settings,
    *,
    wait_for_retries: float = 0.0,
    stop: threading.Event | None = None,
) -> DispatchReport:
    """Cycles until quiet, sending in this call: for the short commands and `run --once`.

    `stop` ends a long catch-up between batches; the rows keep what is left for the next run.
    """
    total = DispatchReport()
    while stop is None or not stop.is_set():
        cycle = process_all(ctx, settings)
        first = send_claimed(ctx, transport, settings, cycle.claimed)
        for row in cycle.hangups:
            hang_up(ctx, transport, settings, row)
        rest = dispatch(ctx, transport, settings, wait_for_retries=wait_for_retries)
        total.sent += first.sent + rest.sent
        total.failed += first.failed + rest.failed
        total.retrying = rest.retrying or first.retrying or total.retrying
        if not (cycle.fired or cycle.timed_out or first.sent or first.failed):
            break
    return total


class SenderPool:
    """Senders off the tick: a claimed message is sent and its result recorded on a worker
    thread with its own database connection, so a provider that hangs for one number holds one
    sender for at most the transport's time-out, and never the tick or another step.

    The tick claims only as many messages as there are free senders (`capacity()`), so a
    message never waits in a queue while its claim's lease runs.
    """

    def __init__(self, *, db_path: Path, clock: Clock, contacts: Callable[[], Contacts],
                 transport: Transport, settings: Settings, workers: int = MAX_PARALLEL,
                 report: Callable[[str], None] | None = None) -> None:
        self.db_path = db_path
        self.clock = clock
        self.contacts = contacts
        self.transport = transport
        self.settings = settings
        self.workers = workers
        self._report = report
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sender")
        self._lock = threading.Lock()
        self._busy = 0
        self._local = threading.local()
        self._stores: list[Store] = []

    def capacity(self) -> int:
        with self._lock:
            return self.workers - self._busy

    def submit(self, claimed: list[dict[str, Any]]) -> None:
        for row in claimed:
            with self._lock:
                self._busy += 1
            self._executor.submit(self._send, row)

    def submit_hangups(self, hangups: list[dict[str, Any]]) -> None:
        for row in hangups:
            with self._lock:
                self._busy += 1
            self._executor.submit(self._hang_up, row)

    def _hang_up(self, row: dict[str, Any]) -> None:
        # Unrecorded, its lease runs out and a later tick hangs up again.
        self._on_worker("hangup", row, lambda ctx: hang_up(ctx, self.transport, self.settings, row))

    def _store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.db_path, migrate=False)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def _send(self, row: dict[str, Any]) -> None:
        # Unrecorded, the row stays `sending`; when its claim runs out it is sent again,
        # flagged as a possible duplicate.
        self._on_worker("send", row, lambda ctx: _record(
            ctx, self.transport, self.settings, row, attempt(self.transport, row), DispatchReport()))

    def _on_worker(self, what: str, row: dict[str, Any], work: Callable[[Context], None]) -> None:
        """Run `work` on this sender's connection; a failure is reported, never raised, and the
        sender is free again either way."""
        try:
            work(Context(self._store(), self.clock, self.contacts(), SYSTEM))
        except Exception as exc:  # only our own sentences are safe to print
            store = getattr(self._local, "store", None)
            if store is not None and store.conn.in_transaction:
                store.conn.execute("ROLLBACK")
            if self._report is not None:
                self._report(f"{to_iso(self.clock.now())} {what}.unrecorded message={row['id']}"
                             f" {type(exc).__name__}")
        finally:
            with self._lock:
                self._busy -= 1

    def shutdown(self) -> None:
        """Let the sends in flight finish (each bounded by the transport's time-out)."""
        self._executor.shutdown(wait=True)
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()
