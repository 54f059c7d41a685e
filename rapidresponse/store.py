"""The SQLite file: connection settings, the numbered migrations, and transactions.

The database is the source of truth and the queue. Every write happens inside
`Store.transaction()`, a `BEGIN IMMEDIATE` transaction, so a crash never leaves half a case
and two processes never claim the same row.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rapidresponse.errors import InputError, OperationalFailure

if TYPE_CHECKING:
    # Imported on first use (Store.db): it costs about 40 ms, and a `run --once` with nothing
    # to write never needs it.
    from sqlite_utils import Database

BUSY_TIMEOUT_MS = 30_000

Migration = Callable[["Database"], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Append to the numbered list; never reorder or edit one that has shipped."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_cases(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE cases (
            id INTEGER PRIMARY KEY,
            ref TEXT NOT NULL UNIQUE,
            year INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'resolved', 'purged')),
            registered_at TEXT NOT NULL,
            registered_by TEXT NOT NULL,
            missing_since TEXT NOT NULL,
            age INTEGER NOT NULL,
            placement TEXT NOT NULL,
            worrying INTEGER NOT NULL,
            suspected_victim INTEGER NOT NULL,
            societal_necessity INTEGER NOT NULL,
            grade TEXT NOT NULL,
            flags TEXT NOT NULL,
            indicators TEXT NOT NULL,
            reasons TEXT NOT NULL,
            playbook TEXT NOT NULL,
            playbook_snapshot TEXT NOT NULL,
            playbook_hash TEXT NOT NULL,
            ack_code TEXT NOT NULL,
            resolved_at TEXT,
            resolved_by TEXT,
            outcome TEXT,
            purged_at TEXT,
            UNIQUE (year, seq)
        );
        CREATE INDEX cases_state ON cases (state);
        CREATE INDEX cases_ack_code ON cases (ack_code, state);

        -- The only table that identifies the minor. Nothing else may copy from it.
        CREATE TABLE persons (
            case_id INTEGER PRIMARY KEY REFERENCES cases (id),
            alias TEXT NOT NULL,
            full_name TEXT,
            birth_date TEXT NOT NULL,
            last_seen TEXT NOT NULL
        );

        -- Every playbook version a case ran, by SHA-256: a step always finds its own definition.
        CREATE TABLE snapshots (
            hash TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            body TEXT NOT NULL
        );

        -- Free text by people may name the minor: kept beside the person, purged with it.
        CREATE TABLE notes (
            id INTEGER PRIMARY KEY,
            case_id INTEGER NOT NULL REFERENCES cases (id),
            at TEXT NOT NULL,
            author TEXT NOT NULL,
            kind TEXT NOT NULL,
            text TEXT NOT NULL
        );
        CREATE INDEX notes_case ON notes (case_id);
        """
    )


@migration
def m002_steps_and_messages(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE steps (
            id INTEGER PRIMARY KEY,
            case_id INTEGER NOT NULL REFERENCES cases (id),
            phase TEXT NOT NULL CHECK (phase IN ('main', 'after_resolved')),
            step_key TEXT NOT NULL,
            playbook_hash TEXT NOT NULL REFERENCES snapshots (hash),
            generation INTEGER NOT NULL DEFAULT 0,  -- 1 after the case moved to another playbook
            role TEXT NOT NULL,
            due_at TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('pending', 'active', 'acknowledged', 'exhausted', 'done', 'cancelled')),
            round INTEGER NOT NULL DEFAULT 0,
            position INTEGER NOT NULL DEFAULT 0,
            escalated INTEGER NOT NULL DEFAULT 0,
            stage_started_at TEXT,
            ack_deadline TEXT,
            activated_at TEXT,
            finished_at TEXT,
            finished_by TEXT,
            UNIQUE (case_id, phase, step_key, generation)
        );
        CREATE INDEX steps_due ON steps (state, due_at);
        CREATE INDEX steps_deadline ON steps (state, ack_deadline);
        CREATE INDEX steps_case ON steps (case_id);

        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            case_id INTEGER REFERENCES cases (id),  -- NULL for a contacts test
            step_id INTEGER REFERENCES steps (id),
            kind TEXT NOT NULL CHECK (kind IN ('alert', 'stand_down', 'test')),
            role TEXT NOT NULL,
            contact TEXT NOT NULL,
            to_number TEXT NOT NULL,
            body TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'delivered',
                'failed', 'undelivered', 'cancelled')),
            round INTEGER NOT NULL DEFAULT 0,
            position INTEGER NOT NULL DEFAULT 0,
            transport TEXT,
            sid TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            possible_duplicate INTEGER NOT NULL DEFAULT 0,
            not_before TEXT NOT NULL,
            claim_deadline TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            final_at TEXT,
            error_code TEXT,
            error_text TEXT
        );
        CREATE INDEX messages_queue ON messages (state, not_before);
        CREATE INDEX messages_claims ON messages (state, claim_deadline);
        CREATE INDEX messages_case ON messages (case_id);
        CREATE INDEX messages_step ON messages (step_id);
        CREATE INDEX messages_sid ON messages (sid);
        """
    )


@migration
def m003_audit_log(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            case_ref TEXT,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX events_case ON events (case_ref, seq);
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """
    )


@migration
def m004_daemon(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE daemon (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            stopped_at TEXT
        );
        """
    )


@migration
def m005_daemon_last_tick(db: Database) -> None:
    db.execute("ALTER TABLE daemon ADD COLUMN last_tick_at TEXT")


@migration
def m006_run_mode_and_inbound(db: Database) -> None:
    db.executescript(
        """
        -- 'daemon' or 'once': a cron-driven `run --once` is judged by its own interval.
        ALTER TABLE daemon ADD COLUMN mode TEXT NOT NULL DEFAULT 'daemon';
        -- Inbound SMS already handled, by provider SID: a replayed reply acknowledges nothing.
        CREATE TABLE inbound_messages (
            sid TEXT PRIMARY KEY,
            received_at TEXT NOT NULL
        );
        """
    )


@migration
def m007_early_receipts(db: Database) -> None:
    # A receipt can arrive before the sending process has written the SID; it waits here and
    # is applied the moment the SID is recorded.
    db.execute(
        "CREATE TABLE early_receipts (id INTEGER PRIMARY KEY, sid TEXT NOT NULL, status TEXT NOT NULL,"
        " error_code TEXT, received_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX early_receipts_sid ON early_receipts (sid)")


@migration
def m008_events_by_kind_and_time(db: Database) -> None:
    # The supervisor's report reads events of a few kinds over a period: without this index a
    # year's report reads every event of the log.
    db.execute("CREATE INDEX IF NOT EXISTS events_kind_at ON events (kind, at)")


@migration
def m009_unconfirmed_messages(db: Database) -> None:
    """A message state `unconfirmed`: its send may have reached the provider, but its answer
    was lost and its alert is no longer wanted. Never sent again; never called `cancelled`.

    SQLite cannot change a CHECK constraint in place: the table is rebuilt, every column and
    index kept.
    """
    schema = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'")
    create = schema.fetchone()[0]
    old = "'failed', 'undelivered', 'cancelled')"
    assert old in create, "the messages table is not the one m002 made"
    create = create.replace(old, "'failed', 'undelivered', 'cancelled', 'unconfirmed')")
    indexes = [row[0] for row in db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' AND sql IS NOT NULL"
    ).fetchall()]
    columns = ", ".join(row[1] for row in db.execute("PRAGMA table_info(messages)").fetchall())
    db.execute(create.replace("CREATE TABLE messages", "CREATE TABLE messages_m009", 1))
    db.execute(f"INSERT INTO messages_m009 ({columns}) SELECT {columns} FROM messages")
    db.execute("DROP TABLE messages")
    db.execute("ALTER TABLE messages_m009 RENAME TO messages")
    for sql in indexes:
        db.execute(sql)


@migration
def m010_call_channel(db: Database) -> None:
    # A voice call is a row of the same outbox as a text, so claims, retries, reclaim after a
    # crash and the stand-down rules hold for it too; `body` holds what the call says.
    db.execute(
        "ALTER TABLE messages ADD COLUMN channel TEXT NOT NULL DEFAULT 'sms'"
        " CHECK (channel IN ('sms', 'voice'))"
    )


@migration
def m011_two_judgements(db: Database) -> None:
    """The case model of issue 8: alarming and worrying apart, societal necessity decided.

    Old rows are mapped as honestly as they allow (docs: README, "Deciding"):
    - `alarming`: under 13, a police criterion, or a suspected victim (dangerous company);
      `worrying` becomes the suspicion of victimhood alone; the grade is HIGH when alarming,
      LOW otherwise (under the old rules a case without a criterion had no signal either).
    - `societal_necessity` was presumed for every suspected victim: it is 'yes' or 'no' only
      where an officer stated it (the stored reasons say so), 'undecided' everywhere else, so
      that someone decides now.
    - a suspicion the old rules raised is kept (`victim_judgement` 'stated': the officer
      confirmed it at registration); only an officer with a reason lowers it.
    """
    db.executescript(
        """
        ALTER TABLE cases ADD COLUMN alarming INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE cases ADD COLUMN victim_judgement TEXT;
        ALTER TABLE cases ADD COLUMN necessity TEXT NOT NULL DEFAULT 'undecided'
            CHECK (necessity IN ('undecided', 'suspected', 'yes', 'no'));
        ALTER TABLE cases ADD COLUMN necessity_decided_by TEXT;
        ALTER TABLE cases ADD COLUMN necessity_decided_at TEXT;
        """
    )
    criteria = {"disability", "medical-needs", "life-threat", "dangerous-company", "out-of-character"}
    order = ("alarming", "worrying", "suspected-victim", "societal-necessity", "grade-high",
             "societal-necessity-undecided")
    rows = db.execute(
        "SELECT id, age, suspected_victim, indicators, reasons, grade, registered_by,"
        " registered_at FROM cases"
    ).fetchall()
    for case_id, age, victim, indicators, reasons_json, _grade, by, at in rows:
        reasons = json.loads(reasons_json)
        alarming = age < 13 or bool(victim) or bool(criteria & set(json.loads(indicators)))
        if "societal necessity stated by the officer" in reasons:
            necessity = "yes"
        elif "the officer judged there is no societal necessity" in reasons:
            necessity = "no"
        else:
            necessity = "undecided"
        held = {"alarming": alarming, "worrying": bool(victim), "suspected-victim": bool(victim),
                "grade-high": alarming, "societal-necessity": necessity == "yes",
                "societal-necessity-undecided": necessity == "undecided"}
        reasons.append(
            "re-read under the two-judgement model: alarming (police criteria) and worrying"
            " (suspicion of victimhood) apart; societal necessity "
            + ("as the officer stated it" if necessity != "undecided" else "undecided until someone decides")
        )
        db.execute(
            "UPDATE cases SET alarming = ?, worrying = ?, victim_judgement = ?, necessity = ?,"
            " necessity_decided_by = ?, necessity_decided_at = ?, grade = ?, flags = ?, reasons = ?"
            " WHERE id = ?",
            [int(alarming), int(bool(victim)), "stated" if victim else None, necessity,
             by if necessity != "undecided" else None, at if necessity != "undecided" else None,
             "HIGH" if alarming else "LOW",
             dumps([f for f in order if held[f]]), dumps(reasons), case_id],
        )
    db.execute("ALTER TABLE cases DROP COLUMN societal_necessity")
    db.execute("ALTER TABLE cases RENAME COLUMN necessity TO societal_necessity")


@migration
def m012_profiles_and_case_contacts(db: Database) -> None:
    db.executescript(
        """
        -- Pre-registered profiles (Philomena Protocol): personal data, like `persons`. The log
        -- names a profile by `key` only (P-0001), which says nothing about the minor.
        CREATE TABLE profiles (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            alias TEXT NOT NULL,
            alias_key TEXT NOT NULL UNIQUE,  -- lower(trim(alias)): `profiles show ALIAS` finds one
            full_name TEXT,
            birth_date TEXT NOT NULL,
            placement TEXT NOT NULL,
            description TEXT,
            associates TEXT,
            places TEXT,
            phone TEXT,
            social TEXT,
            medical TEXT,
            indicators TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            changed_at TEXT NOT NULL,
            used_at TEXT
        );

        -- The carer, consulent and guardian of a case or of a profile: personal data of the case.
        CREATE TABLE case_contacts (
            id INTEGER PRIMARY KEY,
            case_id INTEGER REFERENCES cases (id),
            profile_id INTEGER REFERENCES profiles (id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('carer', 'consulent', 'guardian')),
            phone TEXT NOT NULL,
            CHECK ((case_id IS NULL) <> (profile_id IS NULL)),
            UNIQUE (case_id, kind),
            UNIQUE (profile_id, kind)
        );
        CREATE INDEX case_contacts_profile ON case_contacts (profile_id);

        -- An episode registered from a profile; links the episodes of one minor. Purged with the
        -- person, and cleared when the profile is removed.
        ALTER TABLE persons ADD COLUMN profile_id INTEGER REFERENCES profiles (id) ON DELETE SET NULL;
        CREATE INDEX persons_profile ON persons (profile_id);
        """
    )


#: Overrides the busy timeout, in seconds: for operators on slow disks, and for the fault suite.
BUSY_TIMEOUT_VAR = "RAPIDRESPONSE_BUSY_TIMEOUT"


def busy_timeout_ms() -> int:
    """How long a command waits for another process's write lock before giving up."""
    text = os.environ.get(BUSY_TIMEOUT_VAR, "").strip()
    if not text:
        return BUSY_TIMEOUT_MS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.05 <= seconds <= 600:
        raise InputError(f"{BUSY_TIMEOUT_VAR} must be a number of seconds from 0.05 to 600")
    return round(seconds * 1000)


NOT_SAVED = "the change it was making was not saved (what came before it is in 'rapidresponse log')"


def explain(exc: BaseException) -> OperationalFailure | None:
    """The sentence for a storage failure an operator can act on; None for anything else.

    A busy, full or read-only database (or home folder). Our own words, never the exception's
    text; the failed transaction was rolled back, so nothing of it is half done.
    """
    if isinstance(exc, OSError) and not isinstance(exc, sqlite3.Error):
        causes = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EPERM: "the file may not be changed"}
        cause = causes.get(exc.errno or 0)
        if cause is None:
            return None
        name = Path(exc.filename).name if isinstance(exc.filename, str) else "a file"
        return OperationalFailure(f"cannot write {name} in the home folder ({cause}): {NOT_SAVED}")
    if not isinstance(exc, sqlite3.Error):
        return None
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        seconds = busy_timeout_ms() / 1000
        return OperationalFailure(
            f"the database is busy: another process held its write lock for more than {seconds:g} s;"
            f" {NOT_SAVED} - try again"
        )
    if "full" in text:
        return OperationalFailure(f"the disk holding the database is full: {NOT_SAVED} - free space"
                                  " and try again")
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return OperationalFailure(
            "the database cannot be written (a read-only file or folder?): check the permissions"
            f" of the home folder; {NOT_SAVED}"
        )
    if "disk i/o error" in text:
        return OperationalFailure(f"the disk holding the database failed to read or write: {NOT_SAVED}")
    return None
@migration
def m013_followups(db: Database) -> None:
    db.executescript(
        """
        -- What must happen after the return (safe-and-well check, return interview, referrals),
        -- each with when it is due and how it went. Purged with the case: that a referral to a
        -- care centre was needed says something about the minor.
        CREATE TABLE followups (
            id INTEGER PRIMARY KEY,
            case_id INTEGER NOT NULL REFERENCES cases (id),
            kind TEXT NOT NULL CHECK (kind IN
                ('safe-and-well', 'return-interview', 'reference-centre', 'care-centre')),
            due_at TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('open', 'done', 'declined', 'not-possible', 'no')),
            answered_at TEXT,
            answered_by TEXT,
            UNIQUE (case_id, kind)
        );
        CREATE INDEX followups_open ON followups (state, due_at);
        """
    )


@migration
def m014_steps_by_state_and_case(db: Database) -> None:
    # `cases` counts each open case's waiting and exhausted steps to put the urgent ones first:
    # with 10,000 open cases, an index seek per case instead of a scan of their steps.
    db.execute("CREATE INDEX IF NOT EXISTS steps_state_case ON steps (state, case_id)")


@migration
def m015_call_hangups(db: Database) -> None:
    # A call still ringing when its chain stops is hung up by a sender, outside the transaction
    # that stopped it: `hangup` is 'due' until the provider took the request ('done') or refused
    # it for good ('failed'); `hangup_after` is the backoff and the sender's lease in one.
    db.executescript(
        """
        ALTER TABLE messages ADD COLUMN hangup TEXT;
        ALTER TABLE messages ADD COLUMN hangup_after TEXT;
        ALTER TABLE messages ADD COLUMN hangup_attempts INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX messages_hangup ON messages (hangup) WHERE hangup = 'due';
        """
    )


@migration
def m016_skipped_steps(db: Database) -> None:
    """A step state `skipped`: a step with nobody to message on its case (a case role the case
    does not name) ends as what it is, not as `done`, which reads as if someone was informed.

    The CHECK only widens, so every stored row already satisfies it, and `steps` cannot be
    rebuilt under the foreign key of `messages.step_id` inside the migration's transaction: the
    table's text in the schema is edited in place, the procedure SQLite documents for changing
    a CHECK constraint ("Making Other Kinds Of Table Schema Changes"), then checked.
    """
    old = "'done', 'cancelled')"
    create = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'steps'").fetchone()[0]
    assert create.count(old) == 1, "the steps table is not the one m002 made"
    version = db.execute("PRAGMA schema_version").fetchone()[0]
    db.execute("PRAGMA writable_schema = ON")
    try:
        db.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'steps'",
                   [create.replace(old, "'done', 'cancelled', 'skipped')")])
        db.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        db.execute("PRAGMA writable_schema = OFF")
    problems = db.execute("PRAGMA quick_check(steps)").fetchall()
    assert problems == [("ok",)], f"the steps table is damaged: {problems}"


#: The kinds of event `report_events` copies (m017).
REPORT_KINDS = ("case.registered", "case.assessed", "case.decided", "case.resolved", "steps.planned",
                "case.returned", "followup.recorded", "step.due", "sms.sent", "step.acknowledged",
                "step.escalated", "step.exhausted", "step.done", "step.skipped", "sms.stand_down",
                "sms.failed", "sms.undelivered")


def report_copy_of(e: str) -> str:
    """The copied values of event `e` (`NEW` in the trigger, `events` in the backfill), in the
    order of `report_events`' columns.

    One definition for m017's trigger and backfill and for `audit.verify`, which recomputes it to
    prove the copy is the log's. The SQL m017 wrote must stay exactly this: changing the copy is a
    new migration with its own definition, and verify then follows that one.
    """

    def get(field: str) -> str:
        return f"json_extract({e}.detail, '$.{field}')"

    def facts(*fields: str) -> str:
        return "json_object(" + ", ".join(f"'{f}', {get(f)}" for f in fields) + ")"

    return (
        f"{e}.kind, {e}.at, {e}.seq, {e}.case_ref, {get('step')}, {get('role')}, {get('contact')},"
        f" {get('message')}, {get('via')}, {get('due_at')}, CASE {e}.kind"
        " WHEN 'case.registered' THEN json_object('earlier_episode_count',"
        f" json_array_length({e}.detail, '$.earlier_episodes'))"
        f" WHEN 'case.assessed' THEN {facts('worrying', 'alarming', 'grade', 'suspected_victim')}"
        f" WHEN 'case.decided' THEN {facts('societal_necessity')}"
        f" WHEN 'case.resolved' THEN {facts('outcome')}"
        f" WHEN 'steps.planned' THEN {facts('phase', 'steps')}"
        f" WHEN 'case.returned' THEN {facts('followups')}"
        f" WHEN 'followup.recorded' THEN {facts('followup', 'result')} END"
    )


def report_copy_wanted(e: str) -> str:
    """Whether event `e` has a row in `report_events` (m017's trigger condition and backfill filter)."""
    listed = ", ".join(f"'{k}'" for k in REPORT_KINDS)
    return f"{e}.case_ref IS NOT NULL AND json_valid({e}.detail) AND {e}.kind IN ({listed})"


@migration
def m017_report_events(db: Database) -> None:
    # The supervisor's report reads ~250,000 events for a year of 10,000 cases: fetched from
    # `events`, whole rows (message bodies and all) scattered over the file, it took 1.4 s. This
    # narrow copy holds only the kinds the report reads and only the fields it reads — refs,
    # ids, kinds, times, roles, contact names, flags, never a body, a number or anything of the
    # minor — clustered by (kind, at) so a period is one contiguous range per kind.
    #
    # A trigger on `events` writes it, in the transaction of `audit.append` (and of any other
    # insert: the log is the source, this is its index); existing logs are copied here. The
    # columns without a type keep exactly what `json_extract` gave (no affinity conversion), so
    # the report's figures are those it computed from `events`. Append-only like the log; the
    # log outlives a purge and so does this copy of it (it holds nothing the log does not).
    db.execute(
        """
        CREATE TABLE report_events (
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            seq INTEGER NOT NULL,
            case_ref TEXT NOT NULL,
            step, role, contact, message, via, due_at,
            facts,  -- the case-level kinds' few fields, as JSON (see below)
            PRIMARY KEY (kind, at, seq)
        ) WITHOUT ROWID
        """
    )

    db.execute(
        f"CREATE TRIGGER events_report_copy AFTER INSERT ON events WHEN {report_copy_wanted('NEW')}"
        f" BEGIN INSERT INTO report_events SELECT {report_copy_of('NEW')}; END"
    )
    db.execute(f"INSERT INTO report_events SELECT {report_copy_of('events')}"
               f" FROM events WHERE {report_copy_wanted('events')}")
    for change in ("UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER report_events_no_{change.lower()} BEFORE {change} ON report_events"
                   " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")


def _connect(path: Path) -> sqlite3.Connection:
    busy = busy_timeout_ms()
    conn = sqlite3.connect(
        str(path), timeout=busy / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {busy}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA secure_delete = ON")  # erased personal data is overwritten, not just unlinked
    conn.execute("PRAGMA recursive_triggers = ON")  # as sqlite-utils' Database sets it
    return conn


class Store:
    """One connection to the case database, used by one thread at a time."""

    def __init__(self, path: Path, *, migrate: bool = True) -> None:
        self.path = path
        self._after_commit: list[Callable[[], None]] = []
        self._depth = 0  # nesting of transaction(): 0 outside, 1 in BEGIN, more in savepoints
        try:
            self.conn = _connect(path)
            self._enable_wal()
            if migrate:
                self.migrate()
        except sqlite3.DatabaseError as exc:
            raise OperationalFailure(f"cannot open the database {path}: {exc}") from None

    def _enable_wal(self) -> None:
        mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            self.conn.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE`: take the write lock first, so no claim is ever lost to a race.

        Callbacks registered with `after_commit` run once the transaction is durable, so that
        nothing is announced (printed) that a rollback then takes back.

        Inside another `transaction()` of this store it is a savepoint: its work commits with
        the outer transaction, and an exception undoes only its own part (then propagates).
        That lets a caller make several library calls, each transactional, one atomic unit.
        """
        if self._depth:
            yield from self._savepoint()
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._after_commit = []
        self._depth = 1
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._after_commit = []
            raise
        finally:
            self._depth = 0
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def _savepoint(self) -> Iterator[None]:
        name = f"nested_{self._depth}"
        announced = len(self._after_commit)
        self.conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:  # some errors make SQLite roll everything back itself
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
            del self._after_commit[announced:]
            raise
        else:
            self.conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    @cached_property
    def db(self) -> Database:
        """The sqlite-utils view of the connection, built (and imported) on first use."""
        from sqlite_utils import Database

        return Database(self.conn, execute_plugins=False)

    def _up_to_date(self) -> bool:
        """Every migration applied already: a read, no write lock."""
        try:
            done = {row[0] for row in self.conn.execute("SELECT name FROM _migrations")}
        except sqlite3.OperationalError:  # no _migrations table yet
            return False
        return all(fn.__name__ in done for fn in MIGRATIONS)

    def migrate(self) -> list[str]:
        applied: list[str] = []
        if self._up_to_date():
            return applied
        with self.transaction():
            db = self.db
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            done = {row["name"] for row in db.query("SELECT name FROM _migrations")}
            for fn in MIGRATIONS:
                if fn.__name__ in done:
                    continue
                fn(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, datetime('now'))",
                    [fn.__name__],
                )
                applied.append(fn.__name__)
        return applied

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        cursor = self.conn.execute(sql, params or ())
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cursor.description], row, strict=True))

    def all(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params or ())
        keys = [d[0] for d in cursor.description]
        return [dict(zip(keys, row, strict=True)) for row in cursor]

    def rows(self, sql: str, params: Any = ()) -> Iterator[dict[str, Any]]:
        """Like `all`, one row at a time: for long results such as the whole log."""
        cursor = self.conn.execute(sql, params or ())
        keys = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(keys, row, strict=True))

    def scalar(self, sql: str, params: Any = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None


def open_store(home: Path) -> Store:
    """Open the home's database, which `init` must have created."""
    path = home / "rapidresponse.db"
    if not path.exists():
        raise OperationalFailure(
            f"no database in {home}: run 'rapidresponse init' first (or pass --home)"
        )
    return Store(path)


def create_store(path: Path) -> Store:
    """Create the database file private to its owner (0600) before SQLite writes to it."""
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)
    return Store(path)


def dumps(value: Any) -> str:
    """Canonical JSON: the audit chain hashes this exact text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
