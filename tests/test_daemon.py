"""The daemon as a real process: timing, the lock, catch-up, concurrency, status and `run --once`.

Every daemon here is `python -m rapidresponse run` in a subprocess on a real home folder; the tests
watch the database with short polls and a deadline, and every daemon is stopped in teardown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import MINOR, assert_no_secrets, run_cli, write_playbook
from processes import DaemonProcess, events, query, wait_for
from rapidresponse.app import App
from rapidresponse.clock import FakeClock
from rapidresponse.daemon import event_line
from rapidresponse.engine import Person, register
from rapidresponse.timeutil import from_iso, to_iso

TICK_SECONDS = "0.2"
BRUSSELS = ZoneInfo("Europe/Brussels")

#: Offsets in seconds: the daemon must fire each within one second of due.
SECONDS_PLAYBOOK = """
name = "seconds"
title = "Seconds, for the daemon test"

[[steps]]
id = "first"
at = "0s"
role = "police"
notify = "all"
message = "{case}: eerste stap."

[[steps]]
id = "second"
at = "2s"
role = "child_focus"
notify = "all"
message = "{case}: tweede stap. Antwoord ACK {ack}"
ack_within = "2s"
escalate_to = "coordinator"

[[steps]]
id = "third"
at = "4s"
role = "police"
notify = "all"
message = "{case}: derde stap."
"""

#: Offsets in minutes: registered two hours ago, every step is long overdue.
CATCH_UP_PLAYBOOK = """
name = "catch-up"
title = "Overdue steps, for the catch-up test"

[[steps]]
id = "half-hour"
at = "30m"
role = "police"
notify = "all"
message = "{case}: na een half uur."

[[steps]]
id = "one-hour"
at = "1h"
role = "child_focus"
message = "{case}: na een uur. Antwoord ACK {ack}"
ack_within = "15m"
escalate_to = "coordinator"

[[steps]]
id = "since-missing"
at = "90m"
from = "missing"
role = "coordinator"
message = "{case}: {missing_for} vermist."
"""

CATCH_UP_STEPS = {"half-hour", "one-hour", "since-missing"}


# ---------------------------------------------------------------- helpers


def printed(row: dict[str, Any]) -> str:
    """The line the daemon prints for a stored event."""
    return event_line({"at": row["at"], "kind": row["kind"], "case": row["case_ref"],
                       "detail": row["detail"]}, BRUSSELS)


def daemon_env(home: Path) -> dict[str, str]:
    return {**os.environ, "RAPIDRESPONSE_HOME": str(home), "RAPIDRESPONSE_TICK_SECONDS": TICK_SECONDS}


def register_cli(home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`rapidresponse register` for the fictitious minor, as a duty officer runs it."""
    return run_cli(
        "register", "--alias", MINOR["alias"], "--name", MINOR["full_name"],
        "--birth-date", MINOR["birth_date"], "--last-seen", MINOR["last_seen"],
        "--missing-since", "now", "--json", *extra, home=home,
    )


def register_in_the_past(home: Path, hours_ago: float, playbook: str) -> str:
    """A case registered `hours_ago`, whose steps fell due while no daemon ran."""
    then = datetime.now(UTC) - timedelta(hours=hours_ago)
    app = App(home, "officer-test", FakeClock(then))
    try:
        person = Person(alias=MINOR["alias"], full_name=MINOR["full_name"],
                        birth_date=date.fromisoformat(MINOR["birth_date"]), last_seen=MINOR["last_seen"])
        result = register(app.context(), person=person, missing_since=then - timedelta(minutes=10),
                          playbook=app.playbook(playbook))
        return result.ref
    finally:
        app.close()


@pytest.fixture
def start_daemon(home: Path, tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start `rapidresponse run` (waiting for its first heartbeat); every one is stopped at teardown."""
    started: list[DaemonProcess] = []

    def start(ready: bool = True) -> DaemonProcess:
        stderr_path = tmp_path / f"daemon-{len(started)}.err"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rapidresponse", "run"], env=daemon_env(home),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )
        daemon = DaemonProcess(proc, stderr_path)
        started.append(daemon)
        if ready:
            wait_for(
                lambda: proc.poll() is not None or query(
                    home, "SELECT 1 FROM daemon WHERE pid = ? AND stopped_at IS NULL", [proc.pid]
                ),
                "the daemon's first heartbeat",
            )
            assert proc.poll() is None, f"the daemon exited early: {daemon.stderr()}"
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.terminate()
            try:
                daemon.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.proc.kill()
                daemon.proc.wait()


def status_json(home: Path) -> tuple[int, dict[str, Any]]:
    result = run_cli("status", "--json", home=home)
    return result.returncode, json.loads(result.stdout)


# ---------------------------------------------------------------- tests


def test_daemon_fires_every_step_within_a_second_and_escalates(
    home: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    write_playbook(home, "seconds", SECONDS_PLAYBOOK)
    daemon = start_daemon()

    result = register_cli(home, "--playbook", "seconds")
    registered_by = to_iso(datetime.now(UTC))
    assert result.returncode == 0, result.stderr
    assert "no rapidresponse daemon is running" not in result.stderr
    ref = json.loads(result.stdout)["case"]

    def escalated() -> list[dict[str, Any]]:
        done = query(home, "SELECT 1 FROM steps WHERE step_key = 'third' AND state = 'done'")
        return done and events(home, "step.escalated", ref)

    escalation = wait_for(escalated, "the third step and the escalation of the second", timeout=20)[0]
    assert daemon.stop() == 0

    due = {e["detail"]["step"]: e for e in events(home, "step.due", ref)}
    assert set(due) == {"first", "second", "third"}
    for step, event in due.items():
        late = event["detail"]["late_seconds"]
        assert 0 <= late < 1.0, f"step {step} fired {late}s late"
        assert from_iso(event["at"]) - from_iso(event["detail"]["due_at"]) < timedelta(seconds=1)

    # Nobody acknowledged within 2 s: the coordinator role is alerted within a second of the deadline.
    assert escalation["detail"]["step"] == "second"
    assert escalation["detail"]["to_role"] == "coordinator"
    deadline = from_iso(due["second"]["at"]) + timedelta(seconds=2)
    assert timedelta(0) <= from_iso(escalation["at"]) - deadline < timedelta(seconds=1)

    messages = query(home, "SELECT s.step_key, m.role, m.state FROM messages m"
                           " JOIN steps s ON s.id = m.step_id ORDER BY m.id")
    assert {(m["step_key"], m["role"]) for m in messages} == {
        ("first", "police"), ("second", "child_focus"), ("second", "coordinator"), ("third", "police"),
    }
    assert all(m["state"] == "sent" for m in messages), messages

    # Clean stop: both lifecycle events, exit 0 (asserted above), heartbeat marked stopped.
    assert len(events(home, "daemon.started")) == 1
    assert len(events(home, "daemon.stopped")) == 1
    assert query(home, "SELECT stopped_at FROM daemon")[0]["stopped_at"] is not None

    # One line per event, exactly as logged, nothing identifying the minor.
    stderr = daemon.stderr()
    assert_no_secrets(stderr)
    assert "Traceback" not in stderr
    lines = daemon.event_lines()
    expected = Counter(printed(e) for e in events(home))
    assert all(count == 1 for count in Counter(lines).values()), lines
    assert not set(lines) - set(expected), set(lines) - set(expected)
    after_register = [printed(e) for e in events(home) if e["at"] > registered_by]
    assert after_register and set(after_register) <= set(lines)
    assert lines[0].split()[2] == "daemon.started"
    assert lines[-1].split()[2] == "daemon.stopped"
    # Local time, like every other screen, with the zone said once, first.
    assert stderr.splitlines()[0] == "# rapidresponse: times are Europe/Brussels local time"
    assert stderr.count("# rapidresponse: times are") == 1


def test_second_daemon_on_the_same_home_refuses(
    home: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    first = start_daemon()

    second = subprocess.run(
        [sys.executable, "-m", "rapidresponse", "run"], env=daemon_env(home),
        capture_output=True, text=True, timeout=30,
    )

    assert second.returncode == 1
    message = second.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "already running" in message
    assert str(first.pid) in message
    assert first.proc.poll() is None, "the first daemon must keep running"
    assert len(events(home, "daemon.started")) == 1
    code, report = status_json(home)
    assert code == 0
    assert report["daemon"]["alive"] is True
    assert report["daemon"]["pid"] == first.pid
    assert first.stop() == 0


def test_daemon_catches_up_on_steps_that_fell_due_while_it_was_down(
    home: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    write_playbook(home, "catch-up", CATCH_UP_PLAYBOOK)
    ref = register_in_the_past(home, hours_ago=2, playbook="catch-up")
    assert len(query(home, "SELECT 1 FROM steps WHERE state = 'pending'")) == 3

    daemon = start_daemon()
    wait_for(lambda: not query(home, "SELECT 1 FROM steps WHERE state = 'pending'"),
             "every overdue step to fire")
    wait_for(lambda: not query(home, "SELECT 1 FROM messages WHERE state IN ('queued', 'sending')"),
             "every message to be sent")
    assert daemon.stop() == 0

    started = from_iso(events(home, "daemon.started")[0]["at"])
    due = {e["detail"]["step"]: e for e in events(home, "step.due", ref)}
    assert set(due) == CATCH_UP_STEPS
    expected_late = {"half-hour": 90 * 60, "one-hour": 60 * 60, "since-missing": 40 * 60}
    for step, event in due.items():
        fired = from_iso(event["at"])
        assert timedelta(0) <= fired - started < timedelta(seconds=1), f"{step} did not fire at once"
        late = event["detail"]["late_seconds"]
        assert late == pytest.approx((fired - from_iso(event["detail"]["due_at"])).total_seconds(),
                                     abs=0.002)
        assert expected_late[step] <= late < expected_late[step] + 30, (step, late)
    assert all(m["state"] == "sent" for m in query(home, "SELECT state FROM messages"))
    assert "late_seconds=54" in daemon.stderr()  # 90 minutes: 5400 s and a little
    assert_no_secrets(daemon.stderr())


def test_status_and_the_register_warning_follow_the_daemon(
    home: Path, start_daemon: Callable[..., DaemonProcess]
) -> None:
    code, report = status_json(home)
    assert code == 1 and report["daemon"]["alive"] is False
    alone = register_cli(home)
    assert alone.returncode == 0, alone.stderr
    assert "no rapidresponse daemon is running" in alone.stderr

    daemon = start_daemon()
    code, report = status_json(home)
    assert code == 0, report
    assert report["daemon"]["alive"] is True
    assert report["daemon"]["pid"] == daemon.pid
    assert report["open_cases"] == 1
    watched = register_cli(home, "--new-episode")
    assert watched.returncode == 0, watched.stderr
    assert "no rapidresponse daemon is running" not in watched.stderr
    assert_no_secrets(watched.stderr)

    assert daemon.stop() == 0
    code, report = status_json(home)
    assert code == 1
    assert report["daemon"]["alive"] is False
    assert report["daemon"]["stopped"] is True
    assert report["needs_attention"] is True


def test_run_once_fires_due_steps_and_exits(home: Path) -> None:
    write_playbook(home, "catch-up", CATCH_UP_PLAYBOOK)
    ref = register_in_the_past(home, hours_ago=2, playbook="catch-up")

    result = run_cli("run", "--once", home=home)

    assert result.returncode == 0, result.stderr
    assert {e["detail"]["step"] for e in events(home, "step.due", ref)} == CATCH_UP_STEPS
    assert not query(home, "SELECT 1 FROM steps WHERE state = 'pending'")
    states = [m["state"] for m in query(home, "SELECT state FROM messages")]
    assert states and set(states) == {"sent"}
    assert_no_secrets(result.stderr)
    assert " step.due " in result.stderr

    again = run_cli("run", "--once", home=home)
    assert again.returncode == 0, again.stderr
    assert len(events(home, "step.due", ref)) == 3
    code, report = status_json(home)
    # cron mode: a recent `run --once` pass counts, so registers don't warn every minute
    assert code == 0 and report["daemon"]["alive"] is True and report["daemon"]["mode"] == "once"


def test_a_pass_that_fails_prints_no_stored_text_and_does_not_count_as_alive(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the daemon survives a failing pass, says only the exception type, and
    `status` will call it stuck once passes keep failing."""
    import io

    import rapidresponse.daemon as daemon_module
    from rapidresponse.daemon import Daemon
    from rapidresponse.sms.console import ConsoleTransport

    def failing_pass(*args: Any, **kwargs: Any) -> None:
        raise KeyError("Zorbalina")  # as if an exception quoted a stored value

    monkeypatch.setattr(daemon_module, "run_pass", failing_pass)
    out = io.StringIO()
    daemon = Daemon(home=app.home, store=app.store, settings=app.settings, transport=ConsoleTransport(),
                    clock=app.clock, out=out)
    daemon.tick()
    assert "tick.failed KeyError" in out.getvalue() and "Zorbalina" not in out.getvalue()
    assert daemon._last_tick is None


CALLING_PLAYBOOK = """
name = "calling"

[[steps]]
id = "alert"
at = "0m"
role = "youth_prosecutor"
message = "{case}: graad {grade}. Bel {callback}. ACK {ack}"
ack_within = "15m"
call = true
"""


def test_the_daemon_prints_a_hung_up_call_like_every_other_call_event(app: Any, clock: FakeClock) -> None:
    """In-process: the call placed, then hung up when the minor is found; each call event is
    one line with the reference and the hang-up's status, nothing identifying."""
    import io

    from conftest import register_minor, use_playbook_text
    from rapidresponse import audit, engine
    from rapidresponse.daemon import Daemon
    from rapidresponse.sms.console import ConsoleTransport

    ctx = app.context()
    ref = register_minor(ctx, app, playbook=use_playbook_text(app, "calling", CALLING_PLAYBOOK)).ref
    out = io.StringIO()
    daemon = Daemon(home=app.home, store=app.store, settings=app.settings,
                    transport=ConsoleTransport(io.StringIO()), clock=clock, out=out)
    assert daemon.once()
    engine.resolve(ctx, ref, "found")  # while the call still rings
    clock.advance(seconds=1)
    assert daemon.once()

    calls = [e for e in audit.events(app.store, ref) if e["kind"].startswith("call.")]
    assert [e["kind"] for e in calls] == ["call.placed", "call.hung_up"]
    printed_lines = out.getvalue().splitlines()
    for event in calls:
        assert event_line(event, daemon.tz) in printed_lines
    [hung_up] = [line for line in printed_lines if " call.hung_up " in line]
    assert f" {ref} " in hung_up and "status=canceled" in hung_up and calls[0]["detail"]["sid"] in hung_up
    assert_no_secrets(out.getvalue())


def test_the_daemons_lines_read_as_words_like_the_log(app: Any, clock: FakeClock) -> None:
    """A chain moving on names its next contacts as words, not as Python's list: the rule of
    `log` (details.detail_summary), on the daemon's short list of keys."""
    import io

    from conftest import register_minor
    from rapidresponse.daemon import Daemon
    from rapidresponse.sms.console import ConsoleTransport

    ref = register_minor(app.context(), app).ref
    out = io.StringIO()
    daemon = Daemon(home=app.home, store=app.store, settings=app.settings,
                    transport=ConsoleTransport(io.StringIO()), clock=clock, out=out)
    assert daemon.once()
    clock.advance(minutes=16)  # Child Focus's first contact did not answer
    assert daemon.once()
    text = out.getvalue()
    [moved] = [line for line in text.splitlines() if " step.next_contact " in line
               and "step=alert-child-focus" in line]
    assert f" {ref} " in moved and "to=[Child Focus backup (fictief)]" in moved
    assert "['" not in text and "{'" not in text
    assert_no_secrets(text)
