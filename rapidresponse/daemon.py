"""The daemon: one APScheduler scheduler ticking the engine, a heartbeat, a lock, and signals.

APScheduler only decides *when* to look; the database decides *what* is due. Its job store is in
memory and holds nothing but the two recurring jobs, so a restart loses nothing.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from rapidresponse import audit, erasure
from rapidresponse.clock import Clock
from rapidresponse.config import CONTACTS_NAME, LOCK_NAME, Settings
from rapidresponse.contacts import Contacts, display_timezone
from rapidresponse.contactsource import ContactsSource
from rapidresponse.details import detail_summary
from rapidresponse.dispatch import SenderPool, process_all, run_pass
from rapidresponse.engine import SYSTEM, Context
from rapidresponse.errors import OperationalFailure, RapidResponseError
from rapidresponse.sms import Transport
from rapidresponse.store import Store, explain
from rapidresponse.timeutil import from_iso, local_stamp, to_iso


class DaemonLock:
    """An flock on the home's lock file: the kernel releases it when the holder dies."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OperationalFailure(
                f"another rapidresponse daemon is already running on this home (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def write_heartbeat(
    store: Store,
    now: datetime,
    started_at: datetime,
    stopped: bool = False,
    last_tick: datetime | None = None,
    mode: str = "daemon",
) -> None:
    with store.transaction():
        store.conn.execute(
            "INSERT INTO daemon (id, pid, host, started_at, heartbeat_at, stopped_at, last_tick_at,"
            " mode) VALUES (1, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid,"
            " host = excluded.host, started_at = excluded.started_at,"
            " heartbeat_at = excluded.heartbeat_at, stopped_at = excluded.stopped_at,"
            " last_tick_at = excluded.last_tick_at, mode = excluded.mode",
            [os.getpid(), socket.gethostname(), to_iso(started_at), to_iso(now),
             to_iso(now) if stopped else None, to_iso(last_tick) if last_tick else None, mode],
        )


#: A pass that has not finished for this long is stuck (sends are bounded by their time-outs).
STUCK_AFTER_SECONDS = 120.0
#: `run --once` from cron or a systemd timer, every minute: its last pass counts this long.
ONCE_FRESH_SECONDS = 150.0


@dataclass(frozen=True)
class Heartbeat:
    alive: bool
    age_seconds: float | None
    pid: int | None
    started_at: str | None
    stopped: bool
    last_pass_seconds: float | None = None
    stuck: bool = False
    mode: str = "daemon"

    def as_dict(self) -> dict[str, Any]:
        return {"alive": self.alive, "age_seconds": self.age_seconds, "pid": self.pid,
                "started_at": self.started_at, "stopped": self.stopped,
                "last_pass_seconds": self.last_pass_seconds, "stuck": self.stuck, "mode": self.mode}


def heartbeat(store: Store, now: datetime, settings: Settings) -> Heartbeat:
    """Alive: the heartbeat is fresh. Stuck: alive, but no pass has finished for minutes."""
    row = store.one("SELECT * FROM daemon WHERE id = 1")
    if row is None:
        return Heartbeat(False, None, None, None, False)
    age = (now - from_iso(row["heartbeat_at"])).total_seconds()
    stopped = row["stopped_at"] is not None
    mode = row.get("mode") or "daemon"
    if mode == "once":  # cron: alive while its passes keep coming
        return Heartbeat(age <= ONCE_FRESH_SECONDS, round(age, 1), row["pid"], row["started_at"],
                         stopped, round(age, 1), False, mode)
    alive = not stopped and age <= settings.heartbeat_stale_seconds
    last_pass = row.get("last_tick_at")
    since_pass = (now - from_iso(last_pass)).total_seconds() if last_pass else None
    since_start = (now - from_iso(row["started_at"])).total_seconds()
    stuck = alive and (since_pass if since_pass is not None else since_start) > STUCK_AFTER_SECONDS
    return Heartbeat(alive, round(age, 1), row["pid"], row["started_at"], stopped,
                     round(since_pass, 1) if since_pass is not None else None, stuck, mode)


def event_line(event: dict[str, Any], tz: ZoneInfo) -> str:
    """One line per event for the daemon's stderr: references, roles and contacts only; the time
    local, like everything else a person reads (the zone is named once, by `zone_line`).
    `status` is the provider's word for a call or text (a hang-up's canceled or completed)."""
    detail = event["detail"]
    keys = ("step", "role", "contact", "to", "late_seconds", "reason", "to_role", "outcome",
            "status", "error_code", "error", "retry_in", "possible_duplicate", "via", "sid")
    case = event["case"] or "-"
    return (f"{local_stamp(from_iso(event['at']), tz)} {event['kind']} {case}"
            f" {detail_summary(detail, keys)}").rstrip()


def zone_line(tz: ZoneInfo) -> str:
    """The daemon's first line: which zone its times are in (a comment to log readers)."""
    return f"# rapidresponse: times are {tz.key} local time"


class Daemon:
    def __init__(
        self,
        *,
        home: Path,
        store: Store,
        settings: Settings,
        transport: Transport,
        clock: Clock,
        out: IO[str] | None = None,
    ) -> None:
        self.home = home
        self.store = store
        self.settings = settings
        self.transport = transport
        self.clock = clock
        self.out = out or sys.stderr
        self.tz = display_timezone(home / CONTACTS_NAME)
        self._zone_said = False
        self._say_lock = threading.Lock()
        self.contacts = ContactsSource(home)
        self._contacts_seen: str | None = None  # the last contacts problem said ('' for none)
        self._book = Contacts.unusable(self.tz)  # what the last pass ran on, for the senders
        self.started_at = clock.now()
        self._stop = threading.Event()
        self._db_lock = threading.Lock()  # the tick's connection: one user at a time
        self._beat_store: Store | None = None  # the heartbeat's own, so a slow pass can't stall it
        self._last_tick: datetime | None = None
        self.senders: SenderPool | None = None  # the daemon's; `once` sends within its pass

    def say(self, line: str) -> None:
        # One write per line: print() writes the text and the newline separately, and the SMS
        # threads print too, so two lines could merge.
        with self._say_lock:
            if not self._zone_said:
                self._zone_said = True
                self.out.write(zone_line(self.tz) + "\n")
            self.out.write(line + "\n")
            self.out.flush()

    def now_local(self) -> str:
        return local_stamp(self.clock.now(), self.tz)

    def _print_event(self, event: dict[str, Any]) -> None:
        self.say(event_line(event, self.tz))

    def tick(self) -> bool:
        """One pass; False when it failed (the next one tries again)."""
        with self._db_lock:
            try:
                book = self._contacts_in_force()
                if book is None:  # no usable copy at all: the steps wait, `status` says why
                    self._last_tick = self.clock.now()
                    return True
                ctx = Context(self.store, self.clock, book, SYSTEM)
                if self.senders is None:
                    run_pass(ctx, self.transport, self.settings, stop=self._stop)
                else:
                    self._cycle(ctx, self.senders)
            except Exception as exc:  # the next tick tries again; never die on one bad pass
                if self.store.conn.in_transaction:
                    self.store.conn.execute("ROLLBACK")
                # Only our own sentences are safe to print; other texts may quote stored values.
                exc = explain(exc) or exc
                why = f": {exc}" if isinstance(exc, RapidResponseError) else ""
                self.say(f"{self.now_local()} tick.failed {type(exc).__name__}{why}")
                return False
            self._last_tick = self.clock.now()  # a pass that keeps failing shows as stuck
            return True

    def _contacts_in_force(self) -> Contacts | None:
        """The contacts for this pass (`contactsource`); says so when what is in force changes."""
        first = self._contacts_seen is None
        state, changed = self.contacts.current(self.store)
        if changed and (state.summary() or "") != self._contacts_seen:
            if state.broken:
                self.say(f"{self.now_local()} contacts.rejected {state.summary()}")
            elif not first:
                self.say(f"{self.now_local()} contacts.reloaded {state.using}")
            self._contacts_seen = state.summary() or ""
        if state.contacts is not None:
            self._book = state.contacts
        return state.contacts

    def contacts_in_force(self) -> Contacts:
        """For the senders' threads: what the tick last ran on."""
        return self._book

    def _cycle(self, ctx: Context, senders: SenderPool) -> None:
        """Fire, time out and claim for the free senders, until nothing more falls due now;
        the sends happen on the senders' threads, so no provider can make this late."""
        while not self._stop.is_set():
            cycle = process_all(ctx, self.settings, capacity=senders.capacity())
            senders.submit(cycle.claimed)
            senders.submit_hangups(cycle.hangups)
            if not (cycle.fired or cycle.timed_out):
                return

    def beat(self) -> None:
        """Runs beside the tick on its own connection; records when the last pass finished."""
        try:
            if self._beat_store is None:
                self._beat_store = Store(self.store.path, migrate=False)
            write_heartbeat(self._beat_store, self.clock.now(), self.started_at,
                            last_tick=self._last_tick)
        except Exception as exc:
            self.say(f"{self.now_local()} heartbeat.failed {type(exc).__name__}")
            return
        self.finish_erasure(self._beat_store)

    def finish_erasure(self, store: Store) -> None:
        """A purge that found a reader in the way left old copies in the WAL: retry, never wait."""
        try:
            erasure.finish(store, self.clock.now(), SYSTEM)
        except Exception as exc:  # a busy moment: the next beat tries again
            if store.conn.in_transaction:
                store.conn.execute("ROLLBACK")
            self.say(f"{self.now_local()} erasure.failed {type(exc).__name__}")

    def anchor(self) -> None:
        """Write the log's head to the anchor file and syslog, on a connection of its own.

        Silent when it works (the daemon's output is one line per logged event); a failure is
        said once per attempt and never stops the daemon: alerts come first.
        """
        from rapidresponse.anchors import write_anchor

        folder = self.settings.anchor_path(self.home)
        try:
            store = Store(self.store.path, migrate=False)
            try:
                write_anchor(store, folder, self.clock.now())
            finally:
                store.close()
        except RapidResponseError as exc:
            self.say(f"{self.now_local()} anchor.failed {exc}")
        except Exception as exc:
            self.say(f"{self.now_local()} anchor.failed {type(exc).__name__}")

    def once(self) -> bool:
        """One pass for cron or a systemd timer; False when it failed."""
        audit.add_listener(self._print_event)
        try:
            ok = self.tick()
            if ok:
                write_heartbeat(self.store, self.clock.now(), self.started_at,
                                last_tick=self._last_tick, mode="once")
                self.finish_erasure(self.store)
            return ok
        finally:
            audit.remove_listener(self._print_event)

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        """Hold the lock, tick until SIGINT/SIGTERM, then stop cleanly."""
        import logging

        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        lock = DaemonLock(self.home)
        lock.acquire()
        audit.add_listener(self._print_event)
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(3)},  # the tick, the heartbeat, the anchor
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self.senders = SenderPool(
            db_path=self.store.path, clock=self.clock, contacts=self.contacts_in_force,
            transport=self.transport, settings=self.settings, report=self.say,
        )
        try:
            with self.store.transaction():
                audit.append(
                    self.store, at=self.clock.now(), kind="daemon.started", actor=SYSTEM,
                    detail={"pid": os.getpid(), "transport": self.transport.name,
                            "tick_seconds": self.settings.tick_seconds},
                )
            self.beat()
            # The first tick, at once, catches up on whatever fell due while nobody ran; it runs in
            # the scheduler like every other, so a long catch-up never stalls the heartbeat.
            scheduler.add_job(self.tick, "interval", seconds=self.settings.tick_seconds, id="tick",
                              next_run_time=datetime.now(UTC))
            scheduler.add_job(
                self.beat, "interval", seconds=self.settings.heartbeat_seconds, id="heartbeat"
            )
            if self.settings.anchor_seconds:
                scheduler.add_job(self.anchor, "interval", seconds=self.settings.anchor_seconds,
                                  id="anchor", next_run_time=datetime.now(UTC))
            scheduler.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
            self.senders.shutdown()  # the sends in flight finish and are recorded
            with self._db_lock:
                with self.store.transaction():
                    audit.append(
                        self.store, at=self.clock.now(), kind="daemon.stopped", actor=SYSTEM,
                        detail={"pid": os.getpid()},
                    )
                write_heartbeat(self.store, self.clock.now(), self.started_at, stopped=True,
                                last_tick=self._last_tick)
            if self.settings.anchor_seconds:
                self.anchor()  # the head as the daemon leaves it, daemon.stopped included
            if self._beat_store is not None:
                self._beat_store.close()
            audit.remove_listener(self._print_event)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            lock.release()
