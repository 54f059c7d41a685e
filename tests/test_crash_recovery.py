"""Kill the real daemon while texts are in flight; the next one loses nothing.

`python -m rapidresponse run` runs as a subprocess against the Twilio stand-in, whose answers
are slow enough that SIGKILL lands mid-send. After a restart every message must have reached
the stand-in at least once, and exactly the messages that were in flight are flagged as
possible duplicates (the only ones the stand-in may have received twice).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twilio_stub import TwilioStub

from conftest import MINOR, assert_no_secrets, run_cli, write_playbook
from rapidresponse.app import init_home
from rapidresponse.audit import verify
from rapidresponse.store import Store

ROLES = ("police", "child_focus", "youth_prosecutor", "coordinator", "reference_centre")

DRILL = 'name = "crash-drill"\ntitle = "Crash drill"\n' + "".join(
    f"""
[[steps]]
id = "step-{i}"
at = "{offset}s"
role = "{role}"
notify = "all"
message = "{{case}}: oefening stap {i}. Bel {{callback}}."
"""
    for i, (role, offset) in enumerate(zip(ROLES, (0, 2, 3, 4, 5), strict=True))
)


def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def query(db: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def stub() -> Iterator[TwilioStub]:
    with TwilioStub(latency=1.5) as server:
        yield server
        for rec in server.received():
            assert_no_secrets(f"{rec.body}")


def start_daemon(home: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {**os.environ, **env, "RAPIDRESPONSE_HOME": str(home)}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "rapidresponse", "run"], env=full,
                                stdout=out, stderr=subprocess.STDOUT)


def test_sigkill_mid_send_loses_nothing_and_flags_only_in_flight_texts(
    tmp_path: Path, stub: TwilioStub,
) -> None:
    home = tmp_path / "home"
    init_home(home)
    write_playbook(home, "crash-drill", DRILL)
    db = home / "rapidresponse.db"
    log = tmp_path / "daemon.log"
    env = stub.env(RAPIDRESPONSE_CLAIM_SECONDS="10", RAPIDRESPONSE_TICK_SECONDS="0.2",
                   RAPIDRESPONSE_TWILIO_TIMEOUT="3")  # 2 x 3 s < the claim

    registered = run_cli(
        "register", "--playbook", "crash-drill", "--alias", MINOR["alias"], "--birth-date",
        MINOR["birth_date"], "--missing-since", "now", "--last-seen", MINOR["last_seen"],
        home=home, env=env,
    )
    assert registered.returncode == 0, registered.stderr
    assert_no_secrets(registered.stderr)
    before_daemon = len(stub.received())
    assert before_daemon == 2  # step-0 went out with the register command itself

    daemon = start_daemon(home, env, log)
    try:
        # wait until the daemon has a request in flight at the stand-in, then kill it
        until(lambda: any(not r.answered for r in stub.received()[before_daemon:]), 20,
              "a send in flight")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
    in_flight = {r["id"] for r in query(db, "SELECT id FROM messages WHERE state = 'sending'")}
    assert in_flight, "the kill should have landed while texts were being sent"

    stub.latency = 0.05
    daemon = start_daemon(home, env, log)
    try:
        until(lambda: query(db, "SELECT COUNT(*) AS n FROM steps WHERE state = 'done'")[0]["n"]
              == len(ROLES), 40, "every step to be done")
        until(lambda: not query(db, "SELECT id FROM messages WHERE state != 'sent'"), 20,
              "every message to be sent")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
    output = log.read_text(encoding="utf-8", errors="replace")
    assert daemon.returncode == 0, output
    assert_no_secrets(output)

    rows = query(db, "SELECT * FROM messages ORDER BY id")
    assert len(rows) == 2 * len(ROLES)  # nothing lost, nothing invented
    received = Counter((r.to, r.body) for r in stub.received())
    for row in rows:
        assert received[(row["to_number"], row["body"])] >= 1, f"message {row['id']} never arrived"
        assert row["sid"] in {r.sid for r in stub.accepted()}
    flagged = {r["id"] for r in rows if r["possible_duplicate"]}
    twice = {r["id"] for r in rows if received[(r["to_number"], r["body"])] > 1}
    assert flagged == in_flight
    # a duplicate only where a send was in flight
    assert twice <= flagged, f"in flight {sorted(in_flight)}, received twice {sorted(twice)}"
    reclaimed = query(db, "SELECT detail FROM events WHERE kind = 'sms.reclaimed'")
    assert len(reclaimed) == len(flagged)

    store = Store(db, migrate=False)
    try:
        assert verify(store).ok
    finally:
        store.close()
