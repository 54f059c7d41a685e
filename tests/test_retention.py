"""Purging: the minor's data goes, the tombstone and the intact log stay."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MINOR, register_minor, tick
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.cli import cli
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
    declined = runner.invoke(cli, [*base, "purge", ref], input="n\n")
    assert declined.exit_code == 1
    assert runner.invoke(cli, [*base, "purge", ref, "--yes"]).exit_code == 0
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
