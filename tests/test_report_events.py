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
from test_migrations import database_at

from conftest import START, build_two_cases
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.engine import Context
from rapidresponse.figures import Period, policy, report
from rapidresponse.store import Store

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
