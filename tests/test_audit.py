"""The hash-chained audit log: append-only, and any tampering is found and named."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import register_minor, tick
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.engine import Context, resolve


@pytest.fixture
def busy_log(app: App, ctx: Context, transport, settings) -> Path:  # type: ignore[no-untyped-def]
    registration = register_minor(ctx, app)
    tick(ctx, transport, settings)
    resolve(ctx, registration.ref, "found")
    tick(ctx, transport, settings)
    app.close()
    return app.home / "rapidresponse.db"


def raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def verify_cli(home: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), "log", "--verify"])
    return result.exit_code, result.output


def test_an_untouched_log_verifies(busy_log: Path) -> None:
    code, output = verify_cli(busy_log.parent)
    assert code == 0 and "intact" in output


def test_the_chain_links_each_event_to_the_one_before(busy_log: Path) -> None:
    rows = raw(busy_log).execute("SELECT seq, prev_hash, hash FROM events ORDER BY seq").fetchall()
    assert rows[0][1] == audit.GENESIS
    for before, after in itertools.pairwise(rows):
        assert after[1] == before[2] and after[0] == before[0] + 1


def test_rows_cannot_be_changed_or_deleted_through_sqlite(busy_log: Path) -> None:
    conn = raw(busy_log)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET actor = 'someone else' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events WHERE seq = 2")


def test_a_tampered_detail_is_caught_and_named(busy_log: Path) -> None:
    conn = raw(busy_log)
    conn.execute("DROP TRIGGER events_no_update")
    detail = json.loads(conn.execute("SELECT detail FROM events WHERE seq = 5").fetchone()[0])
    detail["tampered"] = True
    conn.execute("UPDATE events SET detail = ? WHERE seq = 5", [json.dumps(detail)])
    code, output = verify_cli(busy_log.parent)
    assert code == 1 and "event 5" in output and "does not match its hash" in output


def test_a_rewritten_actor_with_a_recomputed_hash_breaks_the_next_link(busy_log: Path) -> None:
    conn = raw(busy_log)
    conn.execute("DROP TRIGGER events_no_update")
    row = conn.execute("SELECT seq, at, case_ref, actor, kind, detail, prev_hash FROM events WHERE seq = 3").fetchone()
    forged = {"seq": row[0], "at": row[1], "case": row[2], "actor": "nobody", "kind": row[4],
              "detail": json.loads(row[5])}
    conn.execute("UPDATE events SET actor = 'nobody', hash = ? WHERE seq = 3",
                 [audit.event_hash(row[6], forged)])
    code, output = verify_cli(busy_log.parent)
    assert code == 1 and "event 4" in output and "does not follow" in output


def test_a_deleted_event_is_caught(busy_log: Path) -> None:
    conn = raw(busy_log)
    conn.execute("DROP TRIGGER events_no_delete")
    conn.execute("DELETE FROM events WHERE seq = 4")
    code, output = verify_cli(busy_log.parent)
    assert code == 1 and "event 4 is missing" in output


def test_verify_as_json(busy_log: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(busy_log.parent), "log", "--verify", "--json"])
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["events"] > 10 and len(report["head"]) == 64


def test_append_outside_a_transaction_is_a_programming_error(app: App) -> None:
    from datetime import UTC, datetime

    with pytest.raises(RuntimeError):
        audit.append(app.store, at=datetime.now(UTC), kind="x", actor="y")


def test_a_failed_transaction_leaves_no_half_case(app: App, ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    import rapidresponse.engine as engine

    def broken_plan(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(engine, "_plan", broken_plan)
    with pytest.raises(OSError):
        register_minor(ctx, app)
    for table in ("cases", "persons", "events", "steps"):
        assert app.store.scalar(f"SELECT COUNT(*) FROM {table}") == 0


def test_listeners_hear_an_event_only_once_it_is_committed(app: App) -> None:
    from datetime import UTC, datetime

    heard: list[str] = []

    def listener(event: dict) -> None:  # type: ignore[type-arg]
        heard.append(event["kind"])

    audit.add_listener(listener)
    try:
        with pytest.raises(ValueError), app.store.transaction():
            audit.append(app.store, at=datetime.now(UTC), kind="rolled.back", actor="x")
            assert heard == []
            raise ValueError("rollback")
        with app.store.transaction():
            audit.append(app.store, at=datetime.now(UTC), kind="kept", actor="x")
            assert heard == []
        assert heard == ["kept"]
    finally:
        audit.remove_listener(listener)


def test_a_transaction_inside_another_commits_with_it_and_fails_alone(app: App) -> None:
    """What makes several library calls one atomic unit (an inbound SMS and its acknowledgement)."""
    from datetime import UTC, datetime

    def append(kind: str) -> None:
        audit.append(app.store, at=datetime.now(UTC), kind=kind, actor="x")

    heard: list[str] = []

    def listener(event: dict) -> None:  # type: ignore[type-arg]
        heard.append(event["kind"])

    audit.add_listener(listener)
    try:
        with app.store.transaction():
            append("outer")
            with pytest.raises(ValueError), app.store.transaction():
                append("inner.undone")
                raise ValueError("this part only")
            with app.store.transaction():
                append("inner.kept")
            assert heard == []  # announced only once the outer transaction commits
        assert heard == ["outer", "inner.kept"]
        with pytest.raises(OSError), app.store.transaction():
            with app.store.transaction():
                append("inner.of.a.failed.outer")
            raise OSError("disk full")
    finally:
        audit.remove_listener(listener)
    assert [e["kind"] for e in audit.events(app.store)] == ["outer", "inner.kept"]
    assert heard == ["outer", "inner.kept"] and audit.verify(app.store).ok
