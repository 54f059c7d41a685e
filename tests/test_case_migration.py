"""A home made before the two-judgement model keeps working: its cases are mapped honestly."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import MINOR, START, assert_no_secrets
from rapidresponse import engine
from rapidresponse.app import App, init_home
from rapidresponse.clock import FakeClock
from rapidresponse.decisions import decide
from rapidresponse.playbooks import parse_playbook
from rapidresponse.reassessment import reassess
from rapidresponse.store import MIGRATIONS, Store, dumps, m011_two_judgements

#: The shipped worrying playbook as it was before: presumed aanmelding, one stand-down text.
OLD_WORRYING = """\
name = "worrying-situation"
title = "Vermiste minderjarige, verontrustende situatie"

[[steps]]
id = "alert-youth-prosecutor"
at = "0m"
role = "youth_prosecutor"
when = ["worrying"]
message = "{case}: vermiste minderjarige ({age} j), verontrustende situatie, graad {grade}. Bel {callback}. Antwoord ACK {ack}"
ack_within = "15m"
escalate_to = "coordinator"

[[steps]]
id = "report-mandated-agency"
at = "0m"
role = "mandated_agency"
when = ["societal-necessity"]
message = "{case}: aanmelding verontrustende situatie, maatschappelijke noodzaak. Bel {callback}. Antwoord ACK {ack}"
ack_within = "1h"
escalate_to = "coordinator"

[on_resolved]
message = "{case}: minderjarige teruggevonden. Geen verdere actie nodig. Dank u."
"""

OLD_REASONS = {
    "presumed": ["exploitation signals: stays in hotels",
                 "societal necessity presumed for a worrying suspected victim: report to the mandated agency",
                 "grade MEDIUM: worrying, without a police criterion or two signals"],
    "stated": ["the officer suspects the minor is a victim of exploitation",
               "societal necessity stated by the officer", "grade MEDIUM: worrying"],
    "ruled-out": ["exploitation signals: stays in hotels",
                  "the officer judged there is no societal necessity", "grade MEDIUM: worrying"],
    "lost-child": ["police criteria for a worrying disappearance: under 13 (11 years old)",
                   "grade HIGH: a police criterion holds"],
    "not-worrying": ["no police criterion and no sign of exploitation: not (yet) worrying",
                     "grade LOW: not worrying"],
}


def old_database(path: Path) -> None:
    """The schema and rows as the tool wrote them before this change."""
    store = Store(path, migrate=False)
    before = MIGRATIONS[: MIGRATIONS.index(m011_two_judgements)]
    with store.transaction():
        store.db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        for fn in before:
            fn(store.db)
            store.db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", [fn.__name__])
        raw = tomllib.loads(OLD_WORRYING)
        playbook = parse_playbook(OLD_WORRYING, source="old")
        store.conn.execute("INSERT INTO snapshots VALUES (?, ?, ?)",
                           [playbook.digest, playbook.name, dumps(raw)])
        rows = [  # (kind, age, worrying, victim, necessity, grade, flags, indicators)
            ("presumed", 15, 1, 1, 1, "MEDIUM",
             ["worrying", "societal-necessity", "suspected-victim"], ["hotel"]),
            ("stated", 15, 1, 1, 1, "MEDIUM",
             ["worrying", "societal-necessity", "suspected-victim"], []),
            ("ruled-out", 15, 1, 1, 0, "MEDIUM", ["worrying", "suspected-victim"], ["hotel"]),
            ("lost-child", 11, 1, 0, 0, "HIGH", ["worrying", "grade-high"], []),
            ("not-worrying", 15, 0, 0, 0, "LOW", [], []),
        ]
        for seq, (kind, age, worrying, victim, necessity, grade, flags, indicators) in enumerate(rows, 1):
            case_id = store.db["cases"].insert({
                "ref": f"RR-2026-{seq:04d}", "year": 2026, "seq": seq, "state": "open",
                "registered_at": "2026-11-28T12:00:00+00:00", "registered_by": "officer-old",
                "missing_since": "2026-11-28T11:00:00+00:00", "age": age, "placement": "home",
                "worrying": worrying, "suspected_victim": victim, "societal_necessity": necessity,
                "grade": grade, "flags": dumps(flags), "indicators": dumps(indicators),
                "reasons": dumps(OLD_REASONS[kind]), "playbook": playbook.name,
                "playbook_snapshot": dumps(raw), "playbook_hash": playbook.digest,
                "ack_code": f"{seq:04d}",
            }).last_pk
            store.db["persons"].insert({
                "case_id": case_id, "alias": f"{MINOR['alias']}{seq}", "full_name": None,
                "birth_date": "2015-01-01" if age == 11 else MINOR["birth_date"],
                "last_seen": MINOR["last_seen"]})
            fired = (["alert-youth-prosecutor"] if worrying else []) + (
                ["report-mandated-agency"] if necessity else [])
            for key in fired:
                store.db["steps"].insert({
                    "case_id": case_id, "phase": "main", "step_key": key, "role": "x",
                    "playbook_hash": playbook.digest, "due_at": "2026-11-28T12:00:00+00:00",
                    "state": "acknowledged"})
    store.close()


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    old_database(home / "rapidresponse.db")
    init_home(home)  # opens the database: the migration runs
    return home


def cases(home: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    store = Store(home / "rapidresponse.db")
    try:
        return {r["ref"]: r for r in store.all("SELECT * FROM cases ORDER BY id")}
    finally:
        store.close()


def test_societal_necessity_is_kept_only_where_an_officer_stated_it(migrated: Path) -> None:
    rows = cases(migrated)
    assert [r["societal_necessity"] for r in rows.values()] == [
        "undecided",  # presumed: somebody must decide now
        "yes", "no",  # stated by the officer
        "undecided", "undecided",
    ]
    assert rows["RR-2026-0002"]["necessity_decided_by"] == "officer-old"
    assert rows["RR-2026-0001"]["necessity_decided_by"] is None
    assert "societal-necessity-undecided" in json.loads(rows["RR-2026-0001"]["flags"])
    assert "societal-necessity" in json.loads(rows["RR-2026-0002"]["flags"])


def test_alarming_and_worrying_are_split(migrated: Path) -> None:
    rows = cases(migrated)
    lost = rows["RR-2026-0004"]
    assert lost["alarming"] == 1 and lost["worrying"] == 0 and lost["grade"] == "HIGH"
    victim = rows["RR-2026-0001"]  # a suspected victim is in dangerous company: alarming, HIGH
    assert victim["alarming"] == 1 and victim["worrying"] == 1 and victim["grade"] == "HIGH"
    assert victim["victim_judgement"] == "stated"  # the suspicion stays until lowered with a reason
    plain = rows["RR-2026-0005"]
    assert (plain["alarming"], plain["worrying"], plain["grade"]) == (0, 0, "LOW")
    assert any("two-judgement model" in r for r in json.loads(victim["reasons"]))


def test_old_cases_run_on_in_the_new_model(migrated: Path) -> None:
    app = App(migrated, "officer-new", FakeClock(START))
    try:
        ctx = app.context()
        presumed = decide(ctx, "RR-2026-0001", "yes", "decided after the upgrade")
        assert presumed.planned == []  # the old tool texted the agency already: not twice
        ruled_out = decide(ctx, "RR-2026-0003", "suspected", "new facts after the upgrade")
        assert [s["id"] for s in ruled_out.planned] == ["report-mandated-agency"]  # its old snapshot
        again = reassess(ctx, "RR-2026-0001", reason="school called", playbook_for=app.playbook_for,
                         indicators=("school-absence",))
        assert again.after.suspected_victim and again.after.alarming
        resolved = engine.resolve(ctx, "RR-2026-0003", "found")
        assert "report-mandated-agency" in resolved.cancelled
        fresh = engine.register(
            ctx, person=engine.Person(alias="Nieuw", birth_date=datetime(2012, 1, 1).date(),
                                      last_seen="ergens"),
            missing_since=datetime(2026, 11, 28, 12, 30, tzinfo=UTC), playbook=None,
            playbooks_for=app.playbook_for, indicators=("hotel",))
        assert fresh.ref == "RR-2026-0006"
        assert engine.get_case(ctx.store, fresh.ref)["societal_necessity"] == "undecided"
        for row in ctx.store.all("SELECT detail FROM events"):
            assert_no_secrets(row["detail"])
    finally:
        app.close()


def test_an_old_missing_minor_playbook_warns_that_the_parket_is_not_alerted(home: Path) -> None:
    from click.testing import CliRunner

    from rapidresponse.cli import cli

    (home / "playbooks" / "missing-minor.toml").write_text(OLD_MISSING, encoding="utf-8")
    out = CliRunner().invoke(cli, ["--home", str(home), "register", "--alias", "Fictief",
                                   "--birth-date", "2016-01-01", "--missing-since", "now",
                                   "--last-seen", "ergens"])
    assert out.exit_code == 0, out.stderr
    assert "alerts no youth_prosecutor for this alarming disappearance" in out.stderr


OLD_MISSING = """\
name = "missing-minor"
title = "Vermiste minderjarige"

[[steps]]
id = "alert-child-focus"
at = "0m"
role = "child_focus"
message = "{case}: vermiste minderjarige ({age} j), graad {grade}. Bel {callback}. Antwoord ACK {ack}"
ack_within = "30m"
escalate_to = "coordinator"

[on_resolved]
message = "{case}: minderjarige teruggevonden. Geen verdere actie nodig. Dank u."
"""
