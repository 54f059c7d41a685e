"""Migrations: a database made by any earlier version opens, upgraded, with every row kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rapidresponse.store import MIGRATIONS, Store


def database_at(path: Path, upto: str) -> sqlite3.Connection:
    """A database as the version that shipped with migration `upto` made it."""
    from sqlite_utils import Database

    conn = sqlite3.connect(path, isolation_level=None)
    db = Database(conn)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for fn in MIGRATIONS:
        fn(db)
        db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", [fn.__name__])
        if fn.__name__ == upto:
            return conn
    raise AssertionError(f"no migration {upto}")


CASE = {
    "id": 1, "ref": "RR-2026-0001", "year": 2026, "seq": 1, "state": "open",
    "registered_at": "2026-11-28T13:00:00Z", "registered_by": "officer", "missing_since":
    "2026-11-28T12:00:00Z", "age": 15, "placement": "home", "worrying": 1, "suspected_victim": 1,
    "societal_necessity": 1, "grade": "HIGH", "flags": "[]", "indicators": "[]", "reasons": "[]",
    "playbook": "p", "playbook_snapshot": "name = 'p'", "playbook_hash": "h", "ack_code": "1234",
}


def insert(conn: sqlite3.Connection, table: str, row: dict[str, object]) -> None:
    keys = ", ".join(row)
    conn.execute(f"INSERT INTO {table} ({keys}) VALUES ({', '.join('?' for _ in row)})",
                 list(row.values()))


def test_a_database_of_the_first_schema_is_upgraded_to_the_latest_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = database_at(path, "m001_cases")
    insert(conn, "cases", CASE)
    insert(conn, "persons", {"case_id": 1, "alias": "Demo", "birth_date": "2011-03-02",
                             "last_seen": "somewhere"})
    insert(conn, "notes", {"case_id": 1, "at": "2026-11-28T13:00:00Z", "author": "officer",
                           "kind": "note", "text": "seen at the station"})
    insert(conn, "snapshots", {"hash": "h", "name": "p", "body": "name = 'p'"})
    conn.close()

    store = Store(path)
    try:
        applied = {r["name"] for r in store.all("SELECT name FROM _migrations")}
        assert applied == {fn.__name__ for fn in MIGRATIONS}
        assert store.one("SELECT ref, state, ack_code FROM cases") == {
            "ref": "RR-2026-0001", "state": "open", "ack_code": "1234"}
        assert store.scalar("SELECT alias FROM persons WHERE case_id = 1") == "Demo"
        assert store.scalar("SELECT text FROM notes") == "seen at the station"
        # the tables of later migrations are there and usable
        with store.transaction():
            insert(store.conn, "steps", {"case_id": 1, "phase": "main", "step_key": "s",
                                         "playbook_hash": "h", "role": "police",
                                         "due_at": "2026-11-28T13:00:00Z", "state": "active"})
            insert(store.conn, "messages", {"case_id": 1, "step_id": 1, "kind": "alert",
                                            "role": "police", "contact": "c", "to_number": "+32470000001",
                                            "body": "b", "state": "unconfirmed", "not_before": "x",
                                            "created_at": "x"})
        assert store.scalar("SELECT COUNT(*) FROM events") == 0
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        store.close()


def test_the_message_table_rebuild_keeps_every_row_and_index(tmp_path: Path) -> None:
    path = tmp_path / "m007.db"
    conn = database_at(path, "m007_early_receipts")
    insert(conn, "cases", CASE)
    insert(conn, "snapshots", {"hash": "h", "name": "p", "body": "b"})
    insert(conn, "steps", {"case_id": 1, "phase": "main", "step_key": "s", "playbook_hash": "h",
                           "role": "police", "due_at": "t", "state": "active"})
    for n, state in enumerate(("queued", "sending", "sent", "delivered", "cancelled"), start=1):
        insert(conn, "messages", {"id": n, "case_id": 1, "step_id": 1, "kind": "alert", "role": "police",
                                  "contact": "c", "to_number": f"+3247000000{n}", "body": "b",
                                  "state": state, "sid": f"SM{n}", "attempts": n, "not_before": "t",
                                  "created_at": "t", "possible_duplicate": n % 2})
    before = conn.execute("SELECT * FROM messages ORDER BY id").fetchall()
    indexes = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")}
    conn.close()

    store = Store(path)
    try:
        after = store.conn.execute("SELECT * FROM messages ORDER BY id").fetchall()
        assert [row[:len(before[0])] for row in after] == before
        channels = {r[0] for r in store.conn.execute("SELECT channel FROM messages")}
        assert channels == {"sms"}  # m010: every old row was a text
        assert {r[0] for r in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")} >= indexes
        with pytest.raises(sqlite3.IntegrityError), store.transaction():
            store.conn.execute("UPDATE messages SET state = 'lost' WHERE id = 1")
    finally:
        store.close()


def test_a_step_of_an_older_database_can_be_skipped_and_keeps_its_messages(tmp_path: Path) -> None:
    """m016 widens the steps' CHECK in place: rows, indexes and the messages' foreign key stay."""
    path = tmp_path / "m015.db"
    conn = database_at(path, "m015_call_hangups")
    conn.execute("PRAGMA foreign_keys = ON")
    insert(conn, "cases", {**CASE, "societal_necessity": "undecided"})
    insert(conn, "snapshots", {"hash": "h", "name": "p", "body": "b"})
    insert(conn, "steps", {"case_id": 1, "phase": "main", "step_key": "s", "playbook_hash": "h",
                           "role": "case:carer", "due_at": "t", "state": "done"})
    insert(conn, "messages", {"case_id": 1, "step_id": 1, "kind": "alert", "role": "police",
                              "contact": "c", "to_number": "+32470000001", "body": "b",
                              "state": "sent", "not_before": "t", "created_at": "t"})
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE steps SET state = 'skipped'")  # what the old schema refused
    indexes = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'steps'")}
    conn.close()

    store = Store(path)
    try:
        with store.transaction():
            store.conn.execute("UPDATE steps SET state = 'skipped'")
        assert store.one("SELECT step_key, state FROM steps") == {"step_key": "s", "state": "skipped"}
        with pytest.raises(sqlite3.IntegrityError), store.transaction():
            store.conn.execute("UPDATE steps SET state = 'lost'")
        with pytest.raises(sqlite3.IntegrityError), store.transaction():
            store.conn.execute("DELETE FROM steps")  # its message still refers to it
        assert {r[0] for r in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'steps'")} == indexes
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()
