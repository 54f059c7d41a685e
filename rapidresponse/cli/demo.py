"""`rapidresponse demo`: watch the main job happen, for real, in a throw-away home."""

from __future__ import annotations

import io
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from rapidresponse.cli.common import console, echo_wrapped, glued, hanging, paint, table_lines, when


@click.command()
@click.option("--speed", type=click.FloatRange(min=1, max=100_000), default=60.0, show_default=True,
              help="How many times faster than real time the demo's clock runs (60: an hour a minute).")
@click.option("--home", "demo_home", type=click.Path(file_okay=False, path_type=Path),
              help="Play it in this (new or empty) folder and keep it, instead of a temporary one.")
def demo(speed: float, demo_home: Path | None) -> None:
    """Watch a fictitious case run on the real daemon: texts, escalation, stand-down."""
    from rapidresponse.demo import ENDS_AFTER, prepare_home

    # Never the real home (RAPIDRESPONSE_HOME, --home before the command): a fresh one.
    home = demo_home if demo_home is not None else Path(tempfile.mkdtemp(prefix="rr-demo-")) / "home"
    prepare_home(home)
    out = console()
    minutes = ENDS_AFTER.total_seconds() / speed / 60
    out.print(f"[bold]rapidresponse demo[/]: a fictitious missing minor, the real daemon and engine,"
              f" texts on the console; the clock runs {speed:g}× (at most {max(minutes, 0.1):.1f} real"
              f" minutes). Home: {home}")
    try:
        ref = _play(home, speed)
        ok = _epilogue(home, ref)
    finally:
        if demo_home is None:
            shutil.rmtree(home.parent, ignore_errors=True)
    _how_to_do_it_for_real(kept=demo_home)
    if not ok:
        raise SystemExit(1)


def _play(home: Path, speed: float) -> str:
    from rich.live import Live

    from rapidresponse.contacts import display_timezone
    from rapidresponse.demo import Demo
    from rapidresponse.store import Store

    tz = display_timezone(home / "contacts.toml")
    out = console()
    viewer = Store(home / "rapidresponse.db", migrate=False)
    state: dict[str, Any] = {"demo": None}

    def view() -> Any:
        played = state["demo"]
        if played is None or played.ref is None:
            return ""
        return _steps_view(viewer, played.ref, played.clock.now(), tz, speed, out.width)

    with Live(get_renderable=view, console=out, refresh_per_second=4, redirect_stderr=True,
              redirect_stdout=False) as live:

        def say(at: datetime, text: str) -> None:
            live.console.print(f"[bold cyan]{when(_iso(at), tz, seconds=False)}[/]  {text}")

        played = Demo(home, speed, daemon_out=io.StringIO(), say=say)
        state["demo"] = played
        try:
            ref = played.run()
        finally:
            played.close()
    viewer.close()
    return ref


def _iso(moment: datetime) -> str:
    from rapidresponse.timeutil import to_iso

    return to_iso(moment)


def _steps_view(store: Any, ref: str, now: datetime, tz: Any, speed: float, width: int) -> Any:
    """The case's steps as plain aligned lines: step ids and roles whole at any width; what a
    step does next goes on a line of its own under it, its time never split."""
    from rich.text import Text

    from rapidresponse import review
    from rapidresponse.engine import get_case

    case = get_case(store, ref)
    steps = review.step_view(store, case, now)
    header = ["step", "role", "state", "messages"]
    rows = [[s["id"], s["role"], paint(s["state"]), str(len(s["messages"]))] for s in steps]
    nexts = [f"next: {s['next']['what']} {glued(when(s['next']['at'], tz, seconds=False))}"
             if s["next"] else "" for s in steps]
    title = f"{click.style(ref, bold=True)} {case['state']} — demo clock {when(_iso(now), tz)} (×{speed:g})"
    table = table_lines(header, rows, right=(3,), width=width)
    if len(table) == len(rows) + 1:  # one line a step: its next action under it
        lines = table[:1]
        for line, nxt in zip(table[1:], nexts, strict=True):
            lines += [line, *(hanging("    ", nxt, width) if nxt else [])]
    else:  # too narrow for columns: a block a step, its next action among the rest
        lines = table_lines([*header, "next"], [[*r, n[len("next: "):]] for r, n in zip(rows, nexts,
                                                                                  strict=True)],
                            width=width)
    return Text.from_ansi("\n".join([*hanging("", title, width), *lines]))


def _epilogue(home: Path, ref: str) -> bool:
    """The case's timeline, what is scheduled but not waited for, and the verified log."""
    from rapidresponse import audit, review
    from rapidresponse.cli.review import _render_timeline
    from rapidresponse.contacts import display_timezone
    from rapidresponse.engine import get_case
    from rapidresponse.store import Store
    from rapidresponse.timeline import timeline

    tz = display_timezone(home / "contacts.toml")
    out = console()
    store = Store(home / "rapidresponse.db", migrate=False)
    try:
        out.print(f"\n[bold]The timeline of {ref}[/] (rapidresponse timeline {ref}):")
        _render_timeline(timeline(store, ref), tz)
        case = get_case(store, ref)
        later = [s for s in review.step_view(store, case, datetime.now().astimezone())
                 if s["state"] == "pending"]
        if later:
            echo_wrapped([f"Scheduled, not waited for: {step['id']} ({step['role']}) at"
                          f" {glued(when(step['due_at'], tz, seconds=False))} on the demo's clock."
                          for step in later])
        check = audit.verify(store)
    finally:
        store.close()
    if check.ok:
        echo_wrapped([f"Audit log intact: {check.count} events, head {check.head}."])
    else:
        out.print(f"[bold red]Audit log BROKEN at event {check.bad_seq}: {check.problem}[/]")
    return check.ok


def _how_to_do_it_for_real(kept: Path | None) -> None:
    """Commands to copy, each whole on its line (a long one continued with a backslash, as a
    shell reads it), their comments above them: nothing passes 80 columns."""
    if kept is not None:
        click.echo(f"\nThe demo's home is kept: rapidresponse --home {kept} show 1")
    click.echo(
        "\nTo do the same for real:\n"
        "  export RAPIDRESPONSE_HOME=~/rr-home\n"
        "  rapidresponse init\n"
        "  # now put your region's numbers in ~/rr-home/contacts.toml\n"
        "  rapidresponse contacts check\n"
        "  # the daemon; docs/operations.md has the systemd unit:\n"
        "  rapidresponse run &\n"
        "  rapidresponse register --alias \"…\" --birth-date 02/03/2011 \\\n"
        "      --missing-since \"gisteren 22:00\" --last-seen \"…\" --indicator older-partner"
    )
    echo_wrapped(["Texts go to the console until you set RAPIDRESPONSE_SMS=twilio (see README, Twilio)."
                  " The officer's card: docs/officer-card.md"])


COMMANDS = [demo]
