"""`rapidresponse demo` at high speed: its story really happened, through the real daemon."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from processes import events
from rapidresponse import audit
from rapidresponse.cli.common import when
from rapidresponse.clock import ScaledClock
from rapidresponse.store import Store


def test_the_demo_plays_the_whole_story_and_ends_by_itself(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = run_cli("demo", "--speed", "1200", "--home", str(home), home=tmp_path / "not-this-one",
                     timeout=120)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr

    kinds = Counter(e["kind"] for e in events(home))
    assert kinds["sms.sent"] >= 6  # texts went out (console transport)
    assert "[sms console] to +32470000001" in output
    acks = {(e["detail"]["role"], e["detail"].get("via")) for e in events(home, "step.acknowledged")}
    assert ("child_focus", "sms") in acks  # by a reply 'ACK <code>'
    assert ("police", "cli") in acks  # by the officer
    [escalated] = [e for e in events(home, "step.escalated") if e["detail"]["step"] == "alert-youth-prosecutor"]
    assert escalated["detail"]["to_role"] == "coordinator"
    [decided] = events(home, "case.decided")
    assert decided["actor"] == "demo-coordinator"
    assert kinds["case.resolved"] == 1 and kinds["sms.stand_down"] >= 5
    assert "return-interview-due (coordinator)" in output  # the 72-hour step, scheduled, not waited for

    store = Store(home / "rapidresponse.db", migrate=False)
    try:
        assert audit.verify(store).ok
    finally:
        store.close()
    assert "Audit log intact" in output and "To do the same for real" in output
    assert "ESCALATED to coordinator" in output
    assert "Demo-Lena" not in output  # the minor's alias stays in the database, even in a demo
    assert not (tmp_path / "not-this-one").exists()  # never the configured home


def test_the_demo_refuses_a_home_that_has_a_database(home: Path) -> None:
    result = run_cli("demo", "--home", str(home), home=home)
    assert result.returncode == 2 and "empty folder" in result.stderr


def test_a_scaled_clock_runs_faster_and_sleeps_shorter() -> None:
    import time

    clock = ScaledClock(3600)
    before, started = clock.now(), time.monotonic()
    clock.sleep(36)  # ten real milliseconds
    assert time.monotonic() - started < 1
    assert (clock.now() - before).total_seconds() >= 36
    with pytest.raises(ValueError):
        ScaledClock(0)


@pytest.mark.parametrize("width", [80, 50])
def test_the_live_view_keeps_step_ids_and_roles_whole(app: Any, width: int) -> None:
    import io

    from rich.console import Console

    from conftest import register_minor
    from rapidresponse import review
    from rapidresponse.cli.demo import _steps_view
    from rapidresponse.engine import get_case

    ref = register_minor(app.context(), app).ref
    now = app.clock.now()
    steps = review.step_view(app.store, get_case(app.store, ref), now)
    out = io.StringIO()
    Console(file=out, width=width).print(_steps_view(app.store, ref, now, app.contacts.timezone, 60, width))
    lines = out.getvalue().splitlines()
    assert [line for line in lines if len(line) > width] == []
    words = {word for line in lines for word in line.split()}
    assert {s["id"] for s in steps} | {s["role"] for s in steps} <= words
    waiting = [s for s in steps if s["next"]]
    assert waiting and all(
        any(s["next"]["what"] in line and line.endswith(when(s["next"]["at"], app.contacts.timezone,
                                                             seconds=False)) for line in lines)
        for s in waiting)  # each step's next action whole, its time on the same line


def test_how_to_do_it_for_real_fits_80_columns_and_copies_whole(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rapidresponse.cli.demo import _how_to_do_it_for_real

    monkeypatch.setenv("COLUMNS", "80")
    _how_to_do_it_for_real(kept=None)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if len(line) > 80] == []
    assert "  rapidresponse init" in lines and "  rapidresponse run &" in lines
    register = lines.index(next(x for x in lines if x.startswith("  rapidresponse register ")))
    assert lines[register].endswith(" \\") and "--indicator older-partner" in lines[register + 1]
