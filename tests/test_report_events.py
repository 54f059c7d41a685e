"""The report's narrow copy of the log (`report_events`, migration m017).

Written by a trigger with each event, in its transaction; copied from the log when an older home
is upgraded; append-only; kept through a purge (the log is). The report computed from it is the
report of the log: the figures of an upgraded home are those of a home that always had it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_anchors import verify
from test_migrations import database_at

from conftest import START, assert_no_secrets, build_two_cases
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.engine import Context
from rapidresponse.figures import Period, policy, report
from rapidresponse.store import REPORT_KINDS, Store, report_copy_of, report_copy_wanted

PERIOD = Period(START - timedelta(days=1), START + timedelta(hours=80))


@pytest.fixture
def story(app: App, ctx: Context, clock: Any, transport: Any, settings: Any) -> tuple[str, str]:
    """The two cases of test_report.py, then a decision, the second case's return with its
    follow-ups, and one of them recorded: every kind the report reads."""
    from rapidresponse import followup

    first, second = build_two_cases(app, ctx, clock, transport, settings)
    with app.store.transaction():
        audit.append(app.store, at=clock.now(), kind="case.decided", actor="coordinator-x",
                     case=second, detail={"societal_necessity": "suspected", "why": None})
    followup.resolve(ctx, second, "found", safe_and_well="yes", sexual_violence_ruled_out="no")
    clock.advance(hours=2)
    followup.record(ctx, second, [("care-centre", "done")])
    return first, second


def figures_of(store: Store, tz: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return report(store, PERIOD), policy(store, PERIOD, tz)


def home_before_m017(tmp_path: Path, source: Path) -> Path:
    """The database an older version would have made of the same log: no report_events."""
    path = tmp_path / "old.db"
    conn = database_at(path, "m016_skipped_steps")
    conn.execute("ATTACH ? AS src", [str(source)])
    for table in ("cases", "events"):
        conn.execute(f"INSERT INTO {table} SELECT * FROM src.{table}")
    conn.execute("DETACH src")
    assert "report_events" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    return path


def test_an_old_home_is_backfilled_and_reports_the_same_figures(
    app: App, story: tuple[str, str], tmp_path: Path,
) -> None:
    tz = app.contacts.timezone
    expected = figures_of(app.store, tz)
    assert sum(r["exhausted"] for r in expected[0]["roles"]) == 3  # test_report's hand count
    assert expected[0]["followups"]["referral"]["done"] == 2

    old = Store(home_before_m017(tmp_path, app.store.path))
    try:
        assert old.scalar("SELECT COUNT(*) FROM report_events") == app.store.scalar(
            "SELECT COUNT(*) FROM report_events") > 0
        assert figures_of(old, tz) == expected
        assert audit.verify(old).ok
    finally:
        old.close()


def test_each_event_the_report_reads_is_copied_in_its_own_transaction(app: App, clock: Any) -> None:
    count = "SELECT COUNT(*) FROM report_events"
    with pytest.raises(RuntimeError), app.store.transaction():
        audit.append(app.store, at=clock.now(), kind="step.acknowledged", actor="x", case="RR-2026-0009",
                     detail={"step": "s", "role": "police", "via": "sms", "contact": "Agent 1"})
        raise RuntimeError("rolled back")
    assert app.store.scalar(count) == 0
    with app.store.transaction():
        audit.append(app.store, at=clock.now(), kind="step.acknowledged", actor="x", case="RR-2026-0009",
                     detail={"step": "s", "role": "police", "via": "sms", "contact": "Agent 1"})
        audit.append(app.store, at=clock.now(), kind="case.note", actor="x", case="RR-2026-0009",
                     detail={"note": {"id": 1}})  # a kind the report does not read
    assert app.store.all("SELECT kind, case_ref, step, role, contact, message, via, due_at, facts"
                         " FROM report_events") == [
        {"kind": "step.acknowledged", "case_ref": "RR-2026-0009", "step": "s", "role": "police",
         "contact": "Agent 1", "message": None, "via": "sms", "due_at": None, "facts": None}]


def test_the_copy_holds_only_the_fields_the_report_reads(app: App, story: tuple[str, str]) -> None:
    assessed = app.store.scalar("SELECT facts FROM report_events WHERE kind = 'case.assessed'")
    assert set(json.loads(assessed)) == {"worrying", "alarming", "grade", "suspected_victim"}
    texts = app.store.all("SELECT * FROM report_events WHERE kind = 'sms.sent'")
    assert texts and all(set(row) == {"kind", "at", "seq", "case_ref", "step", "role", "contact", "message",
                                      "via", "due_at", "facts"} for row in texts)
    numbers = {r["to_number"] for r in app.store.all("SELECT to_number FROM messages")}
    bodies = {r["body"] for r in app.store.all("SELECT body FROM messages")}
    copied = json.dumps(app.store.all("SELECT * FROM report_events"))
    assert not any(value in copied for value in numbers | bodies)


def test_the_copy_is_append_only_and_outlives_a_purge(app: App, ctx: Context, clock: Any,
                                                      story: tuple[str, str]) -> None:
    from rapidresponse.retention import purge

    before = report(app.store, PERIOD)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), app.store.transaction():
        app.store.conn.execute("UPDATE report_events SET role = 'police'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), app.store.transaction():
        app.store.conn.execute("DELETE FROM report_events")
    clock.advance(days=1)
    purge(ctx, story[0], force=True)
    assert report(app.store, PERIOD) == before  # the log outlives the purge; a past report stands


def test_the_report_reads_each_kind_as_one_range_of_the_copy(app: App) -> None:
    plan = app.store.all("EXPLAIN QUERY PLAN SELECT seq FROM report_events WHERE kind IN ('sms.sent', 'step.due')"
                         " AND at >= ? AND at < ?", ["2026-01-01", "2027-01-01"])
    assert any("PRIMARY KEY (kind=? AND at>? AND at<?)" in row["detail"] for row in plan), plan


def test_the_trigger_and_log_verify_share_one_definition_of_the_copy(app: App) -> None:
    """`log --verify` recomputes each row with the expressions m017's trigger was made of."""
    trigger = app.store.scalar("SELECT sql FROM sqlite_master WHERE name = 'events_report_copy'")
    assert trigger == (f"CREATE TRIGGER events_report_copy AFTER INSERT ON events WHEN {report_copy_wanted('NEW')}"
                       f" BEGIN INSERT INTO report_events SELECT {report_copy_of('NEW')}; END")


def forger(app: App) -> sqlite3.Connection:
    """The database as someone with the file opens it: the copy's protecting triggers dropped."""
    conn = sqlite3.connect(app.store.path, isolation_level=None)
    conn.execute("DROP TRIGGER report_events_no_update")
    conn.execute("DROP TRIGGER report_events_no_delete")
    return conn


def first_copied(app: App, kind: str) -> int:
    seq = app.store.scalar("SELECT MIN(seq) FROM report_events WHERE kind = ?", [kind])
    assert seq is not None
    return int(seq)


def verified(app: App) -> tuple[int, str, dict[str, Any]]:
    code, output, report = verify(app.home)
    assert_no_secrets(output + json.dumps(report))
    return code, output, report


def test_log_verify_proves_the_copy_of_an_untouched_log(app: App, story: tuple[str, str]) -> None:
    rows = app.store.scalar("SELECT COUNT(*) FROM report_events")
    code, output, report = verified(app)
    assert code == 0, output
    assert f"the cases table and the report's copy ({rows} rows) match it" in output
    assert report["ok"] and report["report_rows_checked"] == rows


@pytest.mark.parametrize("in_slices", [False, True], ids=["one process", "parallel slices"])
def test_a_deleted_copy_of_a_resolution_is_named(
    app: App, story: tuple[str, str], monkeypatch: pytest.MonkeyPatch, in_slices: bool,
) -> None:
    """The reviewer's forgery: the report loses a resolution while the log still has it."""
    if in_slices:
        monkeypatch.setattr(audit, "PARALLEL_FROM", 1)
        monkeypatch.setattr(audit.os, "cpu_count", lambda: 3)
    before = report(app.store, PERIOD)
    seq = first_copied(app, "case.resolved")
    forger(app).execute("DELETE FROM report_events WHERE kind = 'case.resolved'")
    assert report(app.store, PERIOD) != before  # the figures changed ...
    code, output, result = verified(app)        # ... and verify says so
    assert code == 1 and result["bad_event"] == seq
    assert f"BROKEN at event {seq}: the report's copy of the log (report_events) lacks event {seq}" in output
    assert result["problem"] == f"the report's copy of the log (report_events) lacks event {seq}"


@pytest.mark.parametrize(("kind", "column", "value"), [
    ("step.acknowledged", "contact", "'Someone Else (fictief)'"),
    ("step.acknowledged", "contact", "NULL"),                    # NULL is compared too
    ("step.acknowledged", "role", "CAST(role AS BLOB)"),          # the same bytes, another type
    ("case.resolved", "facts", "json_object('outcome', 'not-found')"),
    ("case.resolved", "at", "'2026-01-01T00:00:00.000Z'"),        # a column of the key
    ("sms.sent", "kind", "'sms.failed'"),
])
def test_an_edited_copy_is_named(app: App, story: tuple[str, str], kind: str, column: str, value: str) -> None:
    seq = first_copied(app, kind)
    forger(app).execute(f"UPDATE report_events SET {column} = {value} WHERE seq = ?", [seq])
    code, output, result = verified(app)
    assert code == 1 and result["bad_event"] == seq
    assert f"the report's copy of the log (report_events) differs from it at event {seq}" in output


@pytest.mark.parametrize("where", ["beyond the head", "an event the report does not read",
                                   "a copied event, a second time"])
def test_a_row_the_log_lacks_is_named(app: App, story: tuple[str, str], where: str) -> None:
    head = app.store.scalar("SELECT MAX(seq) FROM events")
    seq, at = {
        "beyond the head": (head + 1, "2026-11-28T18:00:00.000Z"),
        "an event the report does not read": app.store.conn.execute(
            f"SELECT seq, at FROM events WHERE kind NOT IN ({','.join('?' * len(REPORT_KINDS))})"
            " ORDER BY seq LIMIT 1", REPORT_KINDS).fetchone(),
        "a copied event, a second time": (first_copied(app, "case.resolved"), "2026-11-28T18:00:00.000Z"),
    }[where]
    forger(app).execute("INSERT INTO report_events (kind, at, seq, case_ref, facts)"
                        " VALUES ('case.resolved', ?, ?, 'RR-2026-0002', json_object('outcome', 'found'))",
                        [at, seq])
    code, output, result = verified(app)
    assert code == 1 and result["bad_event"] == seq
    assert f"the report's copy of the log (report_events) has a row the log lacks (event {seq})" in output


def test_a_purge_keeps_the_copy_verified(app: App, ctx: Context, clock: Any, story: tuple[str, str]) -> None:
    from rapidresponse.retention import purge

    rows = app.store.scalar("SELECT COUNT(*) FROM report_events")
    clock.advance(days=1)
    purge(ctx, story[0], force=True)
    code, output, result = verified(app)
    assert code == 0, output
    assert result["report_rows_checked"] == rows == app.store.scalar("SELECT COUNT(*) FROM report_events")


def test_events_the_daemon_writes_while_verify_runs_are_not_rows_the_log_lacks(
    app: App, clock: Any, story: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify checks the log up to the head it read first; the copies of events appended after
    it (a daemon at work) belong to the log too."""
    checked = audit._check_copy_of_slice

    def then_the_daemon_writes(*args: Any) -> Any:
        result = checked(*args)
        daemon = Store(app.store.path)
        try:
            with daemon.transaction():
                audit.append(daemon, at=clock.now(), kind="step.acknowledged", actor="daemon", case=story[1],
                             detail={"step": "s", "role": "police", "via": "sms", "contact": "Agent 1"})
        finally:
            daemon.close()
        return result

    monkeypatch.setattr(audit, "_check_copy_of_slice", then_the_daemon_writes)
    result = audit.verify(app.store)
    assert result.ok, result.problem
    assert result.report_rows == app.store.scalar("SELECT COUNT(*) FROM report_events") - 1
