"""SIGKILL at each point of a send and of a resolve: nothing lost, nothing half done.

`crash_at.py` runs the real engine in a real process against the Twilio stand-in and kills
itself at a named point. Recovery is the next process's pass, its clock past the dead claim's
lease (the library with an injected clock, so the test waits for no lease).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import MINOR, write_playbook
from processes import events, query
from rapidresponse.app import App
from rapidresponse.audit import verify
from rapidresponse.clock import FakeClock
from rapidresponse.dispatch import run_pass
from rapidresponse.engine import Person, register
from rapidresponse.sms.twilio import TwilioTransport
from reliability.conftest import CLAIM_SECONDS

CRASH_AT = Path(__file__).with_name("crash_at.py")

DRILL = """
name = "drill"
title = "Kill drill"

[[steps]]
id = "police"
at = "0m"
role = "police"
notify = "all"
message = "{case}: vermist. Bel {callback}. Antwoord ACK {ack}"
ack_within = "15m"

[[steps]]
id = "child-focus"
at = "0m"
role = "child_focus"
notify = "all"
message = "{case}: ter info. Bel {callback}."

[on_resolved]
message = "{case}: teruggevonden. Geen actie meer nodig."
"""


def register_overdue(home: Path) -> str:
    """A case whose first alerts are due now and not sent (registered a minute ago)."""
    write_playbook(home, "drill", DRILL)
    app = App(home, "officer-test", FakeClock(datetime.now(UTC) - timedelta(minutes=1)))
    try:
        person = Person(alias=MINOR["alias"], full_name=MINOR["full_name"],
                        birth_date=date.fromisoformat(MINOR["birth_date"]), last_seen=MINOR["last_seen"])
        return register(app.context(), person=person, missing_since=app.clock.now(),
                        playbook=app.playbook("drill")).ref
    finally:
        app.close()


def crash_at(point: str, env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, str(CRASH_AT), point, *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, f"{point}: exit {result.returncode}: {result.stderr}"


def recover(home: Path, env: dict[str, str], *, past_the_lease: bool = True) -> None:
    """The next process's pass, once the dead process's claims have run out (CLAIM_SECONDS)."""
    clock = FakeClock(datetime.now(UTC) + timedelta(seconds=CLAIM_SECONDS + 1 if past_the_lease else 0))
    app = App(home, "recovery", clock)
    try:
        run_pass(app.context(), TwilioTransport(env), app.settings)
    finally:
        app.close()


def check_nothing_lost(home: Path, stub: Any) -> list[dict[str, Any]]:
    """Every message sent; a text the stand-in took twice is flagged; the log is whole."""
    rows = query(home, "SELECT * FROM messages ORDER BY id")
    received = Counter((r.to, r.body) for r in stub.accepted())
    for row in rows:
        assert row["state"] == "sent", row
        assert received[(row["to_number"], row["body"])] >= 1, f"message {row['id']} never arrived"
        if received[(row["to_number"], row["body"])] > 1:
            assert row["possible_duplicate"], f"message {row['id']} arrived twice unflagged"
    app = App(home, "check")
    try:
        assert verify(app.store).ok
    finally:
        app.close()
    return rows


@pytest.mark.parametrize("point", ["send-claimed", "send-accepted"])
def test_sigkill_at_each_point_of_a_send_loses_no_alert(
    home: Path, env: dict[str, str], stub: Any, point: str,
) -> None:
    register_overdue(home)
    crash_at(point, env)
    in_flight = query(home, "SELECT id FROM messages WHERE state = 'sending'")
    assert len(in_flight) == 4  # claimed by the dead process: nobody else may send them yet
    if point == "send-claimed":
        assert stub.received() == []

    recover(home, env)
    rows = check_nothing_lost(home, stub)
    assert len(rows) == 4
    assert len(events(home, "sms.reclaimed")) == 4
    if point == "send-claimed":  # nothing had left: nothing arrives twice
        assert len(stub.accepted()) == 4


def test_sigkill_inside_a_resolve_leaves_the_case_open_and_untouched(
    home: Path, env: dict[str, str], stub: Any, cli: Any,
) -> None:
    ref = register_overdue(home)
    recover(home, env, past_the_lease=False)  # the alerts go out
    before = query(home, "SELECT id, state FROM steps ORDER BY id")

    crash_at("resolve-mid", env, ref)
    assert query(home, "SELECT state FROM cases")[0]["state"] == "open"
    assert query(home, "SELECT id, state FROM steps ORDER BY id") == before
    assert not query(home, "SELECT 1 FROM messages WHERE kind = 'stand_down'")
    assert not events(home, "case.resolved")

    result = cli("resolve", ref, "--outcome", "found")  # the officer tries again: it works
    assert result.returncode == 0, result.stderr
    check_nothing_lost(home, stub)
    assert len(query(home, "SELECT 1 FROM messages WHERE kind = 'stand_down'")) == 4


def test_sigkill_after_a_resolve_sends_each_stand_down_and_no_alert_after_it(
    home: Path, env: dict[str, str], stub: Any,
) -> None:
    ref = register_overdue(home)
    recover(home, env, past_the_lease=False)
    crash_at("resolve-committed", env, ref)
    assert query(home, "SELECT state FROM cases")[0]["state"] == "resolved"
    assert len(query(home, "SELECT 1 FROM messages WHERE kind = 'stand_down' AND state = 'sending'")) == 4

    recover(home, env)
    rows = check_nothing_lost(home, stub)
    stand_downs = [r for r in rows if r["kind"] == "stand_down"]
    assert len(stand_downs) == 4
    for number in {r["to_number"] for r in stand_downs}:
        texts = [r.body for r in stub.accepted(number)]
        first_stop = next(i for i, body in enumerate(texts) if "teruggevonden" in body)
        assert all("teruggevonden" in body for body in texts[first_stop:]), texts
