"""One open case per minor: a second registration of the same child is refused by reference."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from conftest import MINOR, assert_no_secrets, register_minor
from rapidresponse import engine
from rapidresponse.app import App
from rapidresponse.engine import Context, Person
from rapidresponse.errors import InputError


def test_the_same_minor_is_refused_while_open_naming_only_the_reference(app: App, ctx: Context) -> None:
    first = register_minor(ctx, app)
    with pytest.raises(InputError) as refused:
        register_minor(ctx, app)
    assert first.ref in str(refused.value) and "--new-episode" in str(refused.value)
    assert_no_secrets(str(refused.value))
    assert ctx.store.scalar("SELECT COUNT(*) FROM cases") == 1  # nothing written


@pytest.mark.parametrize("alias", ["  zorbalina ", "ZORBALINA"])
def test_the_alias_matches_case_insensitively_and_trimmed(app: App, ctx: Context, alias: str) -> None:
    register_minor(ctx, app)
    person = Person(alias=alias, birth_date=date.fromisoformat(MINOR["birth_date"]), last_seen="x")
    with pytest.raises(InputError, match="already has an open case"):
        engine.register(ctx, person=person, missing_since=ctx.clock.now(), playbook=None,
                        playbooks_for=app.playbook_for)


def test_another_birth_date_or_a_resolved_case_or_new_episode_is_no_duplicate(
    app: App, ctx: Context
) -> None:
    first = register_minor(ctx, app)
    other = Person(alias=MINOR["alias"], birth_date=date(2012, 3, 2), last_seen="x")
    engine.register(ctx, person=other, missing_since=ctx.clock.now(), playbook=None,
                    playbooks_for=app.playbook_for)
    again = register_minor(ctx, app, new_episode=True)
    assert again.earlier_episodes == [first.ref]
    engine.resolve(ctx, first.ref, "found")
    with pytest.raises(InputError, match=again.ref):  # still one open
        register_minor(ctx, app)
    engine.resolve(ctx, again.ref, "found")
    assert register_minor(ctx, app).ref


def _wait_until_open(pid: int, db: Path, deadline: float) -> None:
    """Until the process has the database open (so it is on its way to the write lock)."""
    while time.monotonic() < deadline:
        try:
            targets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            return  # it has finished already
        if str(db) in targets:
            return
        time.sleep(0.01)  # polling a condition, not waiting for time to pass


def test_two_officers_registering_at_once_get_one_case(home: Path) -> None:
    """Both processes wait on the write lock the test holds; released, exactly one passes."""
    db = home / "rapidresponse.db"
    command = [sys.executable, "-m", "rapidresponse", "register", "--alias", MINOR["alias"],
               "--birth-date", MINOR["birth_date"], "--missing-since", "now",
               "--last-seen", MINOR["last_seen"], "--json"]
    env = {**os.environ, "RAPIDRESPONSE_HOME": str(home)}
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        deadline = time.monotonic() + 30
        for proc in procs:
            _wait_until_open(proc.pid, db, deadline)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    outputs = [proc.communicate(timeout=60) for proc in procs]
    codes = sorted(proc.returncode for proc in procs)
    assert codes == [0, 2], outputs
    [(stdout, _)] = [out for proc, out in zip(procs, outputs, strict=True) if proc.returncode == 0]
    [(_, stderr)] = [out for proc, out in zip(procs, outputs, strict=True) if proc.returncode == 2]
    ref = json.loads(stdout)["case"]
    assert ref in stderr and len(stderr.strip().splitlines()) == 1
    assert_no_secrets(stderr)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == 1
