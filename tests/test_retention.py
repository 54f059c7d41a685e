"""Purging: the minor's data goes, the tombstone and the intact log stay."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from conftest import MINOR, register_minor, run_cli_at_a_terminal, tick
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.cli.common import when
from rapidresponse.engine import Context, add_note, resolve
from rapidresponse.errors import InputError
from rapidresponse.retention import purge, purge_due


def test_purge_erases_person_and_notes_and_keeps_a_tombstone(app: App, ctx: Context, transport, settings) -> None:  # type: ignore[no-untyped-def]
    ref = register_minor(ctx, app).ref
    add_note(ctx, ref, f"{MINOR['alias']} called her aunt")
    tick(ctx, transport, settings)
    resolve(ctx, ref, "found", note="found at a friend's place")
    result = purge(ctx, ref)
    assert result.notes_removed == 2
    assert app.store.scalar("SELECT COUNT(*) FROM persons") == 0
    assert app.store.scalar("SELECT COUNT(*) FROM notes") == 0
    case = app.store.one("SELECT state, purged_at, grade FROM cases WHERE ref = ?", [ref])
    assert case is not None and case["state"] == "purged" and case["purged_at"] and case["grade"]
    assert app.store.scalar("SELECT COUNT(*) FROM steps WHERE state IN ('pending', 'active')") == 0
    assert audit.verify(app.store).ok
    assert [e["kind"] for e in audit.events(app.store, ref)][-1] == "case.purged"


def test_an_open_case_cannot_be_purged(app: App, ctx: Context) -> None:
    ref = register_minor(ctx, app).ref
    with pytest.raises(InputError, match="still open"):
        purge(ctx, ref)
    assert app.store.scalar("SELECT COUNT(*) FROM persons") == 1


def test_purge_twice_is_refused(app: App, ctx: Context) -> None:
    ref = register_minor(ctx, app).ref
    resolve(ctx, ref, "found")
    purge(ctx, ref)
    with pytest.raises(InputError, match="already been purged"):
        purge(ctx, ref)


def test_purge_due_takes_only_cases_resolved_long_enough_ago(app: App, ctx: Context, clock) -> None:  # type: ignore[no-untyped-def]
    old = register_minor(ctx, app).ref
    resolve(ctx, old, "found")
    clock.advance(days=100)
    recent = register_minor(ctx, app).ref
    resolve(ctx, recent, "returned")
    still_open = register_minor(ctx, app).ref
    assert [p.ref for p in purge_due(ctx, timedelta(days=90))] == [old]
    states = dict(app.store.conn.execute("SELECT ref, state FROM cases").fetchall())
    assert states == {old: "purged", recent: "resolved", still_open: "open"}


def test_purge_from_the_cli(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home)]
    out = runner.invoke(cli, [*base, "register", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
                              "--missing-since", "now", "--last-seen", MINOR["last_seen"], "--json"])
    ref = json.loads(out.stdout)["case"]
    assert runner.invoke(cli, [*base, "purge", ref, "--yes"]).exit_code == 2  # still open
    runner.invoke(cli, [*base, "resolve", ref, "--outcome", "found"])
    refused = runner.invoke(cli, [*base, "purge", ref, "--yes"])  # the follow-ups are open
    assert refused.exit_code == 2 and "follow-up(s) still open" in refused.stderr
    declined = run_cli_at_a_terminal("purge", ref, "--force", home=home, typed="n\n")
    assert declined.returncode == 0 and "Nothing purged." in declined.stdout  # "no" is no error
    assert f"{ref}: drops the minor's alias" in declined.stdout  # it said what it would drop
    unasked = runner.invoke(cli, [*base, "purge", ref, "--force"])  # no terminal: no one to ask
    assert unasked.exit_code == 2 and "interrupted" not in unasked.stderr
    assert unasked.stderr == "Error: purge needs --yes when not run at a terminal; nothing was done\n"
    assert json.loads(runner.invoke(cli, [*base, "show", ref, "--json"]).stdout)["person"] is not None
    assert runner.invoke(cli, [*base, "purge", ref, "--force", "--yes"]).exit_code == 0
    shown = json.loads(runner.invoke(cli, [*base, "show", ref, "--json"]).stdout)
    assert shown["person"] is None and shown["state"] == "purged"
    assert runner.invoke(cli, [*base, "purge"]).exit_code == 2


def test_purged_data_is_gone_from_the_database_file_itself(app: App, ctx: Context) -> None:
    ref = register_minor(ctx, app).ref
    resolve(ctx, ref, "found")
    purge(ctx, ref)
    app.close()
    raw = b"".join(p.read_bytes() for p in app.home.glob("rapidresponse.db*"))
    assert MINOR["alias"].encode() not in raw and MINOR["last_seen"].encode() not in raw


# ---------------------------------------------------------------- issue 9: the whole story purged

#: Everything personal the story below writes, each distinctive, in every form it is typed.
STORY_SECRETS = (
    MINOR["alias"], "Quixtersen", MINOR["birth_date"], "Kwikstaartplein", "Vlinderdorp",
    "Zwiebeljas", "Plumperdientje", "Krakeelhoek", "zorba_glimmer", "Blauwvinkel",
    "+32470000077", "+32470000061", "+32470000062", "+32470000063", "+32470000064",
    "tante Ottoline", "Snoerbakkerij", "Wiebeldoos",
)


def _story(app: App, ctx: Context, clock: Any, transport: Any, settings: Any) -> str:
    """A profile, an episode from it, texts to the carer and consulent, notes, the return and
    its follow-ups: every kind of personal data issue 9 adds."""
    from datetime import date

    from rapidresponse import followup, profiles
    from rapidresponse.casecontacts import parse_numbers
    from rapidresponse.engine import Person, acknowledge, register

    profiles.add(ctx, alias=MINOR["alias"], birth_date=date.fromisoformat(MINOR["birth_date"]),
                 full_name=MINOR["full_name"], placement="institution",
                 texts={"description": "Zwiebeljas", "associates": "Plumperdientje",
                        "places": "Krakeelhoek", "phone": "+32470000077", "social": "zorba_glimmer",
                        "medical": "Blauwvinkel"},
                 indicators=("school-absence",),
                 contacts=parse_numbers({"carer": "0470 00 00 61", "guardian": "0470000063"}))
    known = profiles.for_episode(app.store, MINOR["alias"])
    person = Person(alias=known.alias, birth_date=known.birth_date, last_seen=MINOR["last_seen"],
                    full_name=known.full_name, profile_id=known.profile_id)
    ref = register(ctx, person=person, missing_since=clock.now(), playbook=None,
                   playbooks_for=app.playbook_for, indicators=("older-partner",),
                   case_contacts={**known.contacts, **parse_numbers({"consulent": "0470000062"})}).ref
    tick(ctx, transport, settings)
    add_note(ctx, ref, "tante Ottoline belde")
    acknowledge(ctx, ref, "child_focus", note="Snoerbakkerij gecontroleerd")
    followup.resolve(ctx, ref, "found", note="bij Wiebeldoos gevonden", safe_and_well="yes",
                     sexual_violence_ruled_out="unknown")
    tick(ctx, transport, settings)
    followup.record(ctx, ref, [("return-interview", "done"), ("care-centre", "done"),
                               ("reference-centre", "declined")], note="+32470000064 belde")
    return ref


def test_after_purge_nothing_of_the_story_remains_in_the_file_wal_or_shm(
    app: App, ctx: Context, clock: Any, transport: Any, settings: Any,
) -> None:
    import sqlite3

    from rapidresponse.retention import purge_profiles

    ref = _story(app, ctx, clock, transport, settings)
    assert {"+32470000061", "+32470000062"} <= set(transport.numbers())  # carer, consulent texted
    clock.advance(days=1)
    purged = purge(ctx, ref)
    assert purged.case_contacts_removed == 3 and purged.followups_removed == 4
    assert purge_profiles(ctx, clock.now()) == ["P-0001"]
    assert audit.verify(app.store).ok
    app.close()
    db = app.home / "rapidresponse.db"
    conn = sqlite3.connect(db)
    conn.execute("VACUUM")
    conn.close()
    files = [p for p in app.home.glob("rapidresponse.db*")]
    assert {p.name for p in files} >= {"rapidresponse.db"}
    raw = b"".join(p.read_bytes() for p in files)
    for secret in STORY_SECRETS:
        assert secret.encode() not in raw, f"{secret!r} survived the purge"
    reopened = App(app.home, "supervisor")
    try:
        assert audit.verify(reopened.store).ok
        assert reopened.store.scalar("SELECT state FROM cases WHERE ref = ?", [ref]) == "purged"
    finally:
        reopened.close()


def test_open_follow_ups_keep_a_case_unless_forced(app: App, ctx: Context, clock: Any) -> None:
    from rapidresponse import followup

    ref = register_minor(ctx, app).ref
    followup.resolve(ctx, ref, "returned", safe_and_well="yes", sexual_violence_ruled_out="yes")
    with pytest.raises(InputError, match="still open"):
        purge(ctx, ref)
    clock.advance(days=100)
    assert purge_due(ctx, timedelta(days=90)) == []  # kept: the interview is not recorded
    result = purge(ctx, ref, force=True)
    assert result.followups_removed == 3  # safe-and-well, interview, reference centre
    [event] = [e for e in audit.events(app.store, ref) if e["kind"] == "case.purged"]
    assert event["detail"]["forced"] == "2 follow-up(s) were still open"


def test_retention_counts_from_the_last_follow_up_and_status_reminds(
    app: App, ctx: Context, clock: Any, settings: Any,
) -> None:
    from rapidresponse import followup
    from rapidresponse.retention import past_retention
    from rapidresponse.review import status

    ref = register_minor(ctx, app).ref
    followup.resolve(ctx, ref, "found", safe_and_well="yes", sexual_violence_ruled_out="yes")
    clock.advance(days=60)
    followup.record(ctx, ref, [("return-interview", "done")])  # late, but recorded: day 60
    clock.advance(days=89)
    assert past_retention(app.store, clock.now(), 90) == []  # 149 days after the return, 89 after
    assert status(app.store, clock.now(), settings)["past_retention"] == []
    clock.advance(days=1, seconds=1)
    assert [d.ref for d in past_retention(app.store, clock.now(), 90)] == [ref]
    report = status(app.store, clock.now(), settings)
    assert report["past_retention"] == [ref] and report["retention_days"] == 90


def test_purge_options_from_the_cli(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home)]
    out = runner.invoke(cli, [*base, "register", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
                              "--missing-since", "1h ago", "--last-seen", MINOR["last_seen"], "--json"])
    ref = json.loads(out.stdout)["case"]
    runner.invoke(cli, [*base, "resolve", ref, "--outcome", "withdrawn"])  # no follow-ups
    runner.invoke(cli, [*base, "profiles", "add", "--alias", "Onbenuttina", "--birth-date", "2012-01-01"])
    # resolved seconds ago: nothing before yesterday, everything before tomorrow
    assert "Nothing to purge." in runner.invoke(cli, [*base, "purge", "--resolved-before", "1d"]).stdout
    dry = runner.invoke(cli, [*base, "purge", "--resolved-before", "01/01/2099", "--unused-profiles",
                              "--dry-run"])
    assert dry.exit_code == 0, dry.stderr
    assert f"{ref}: drops" in dry.stdout and "profile P-0001: drops" in dry.stdout
    changed = json.loads(runner.invoke(cli, [*base, "profiles", "show", "Onbenuttina", "--json"]).stdout)
    since = changed["used_at"] or changed["changed_at"]  # read back, shown in local time like everywhere
    assert f"(unused since {when(since, ZoneInfo('Europe/Brussels'))})" in dry.stdout and "Z)" not in dry.stdout
    assert "Dry run: nothing purged." in dry.stdout
    assert "Onbenuttina" not in dry.stdout and MINOR["alias"] not in dry.stdout
    shown = json.loads(runner.invoke(cli, [*base, "show", ref, "--json"]).stdout)
    assert shown["person"] is not None  # the dry run changed nothing
    done = runner.invoke(cli, [*base, "purge", "--resolved-before", "2099-01-01", "--unused-profiles",
                               "--yes", "--json"])
    assert done.exit_code == 0, done.stderr
    payload = json.loads(done.stdout)
    assert [p["ref"] for p in payload["purged"]] == [ref] and payload["profiles"] == ["P-0001"]
    bad = runner.invoke(cli, [*base, "purge", "--resolved-before", "Onbenuttina"])
    assert bad.exit_code == 2 and "Onbenuttina" not in bad.stderr
    assert runner.invoke(cli, [*base, "purge", "--due", "--yes"]).stdout.strip() == "Nothing to purge."
