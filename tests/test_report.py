"""The supervisor's figures: how fast each role answered, what was exhausted."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from conftest import register_minor, tick
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.engine import Context, acknowledge, resolve
from rapidresponse.review import report


def test_report_counts_acknowledgement_times_by_role(app: App, ctx: Context, clock, transport, settings) -> None:  # type: ignore[no-untyped-def]
    start = clock.now()
    first = register_minor(ctx, app, indicators=("hotel", "gifts-money")).ref
    tick(ctx, transport, settings)
    clock.advance(minutes=4)
    acknowledge(ctx, first, "youth_prosecutor")
    clock.advance(minutes=2)
    acknowledge(ctx, first, "child_focus")
    register_minor(ctx, app, indicators=(), new_episode=True)
    tick(ctx, transport, settings)
    clock.advance(hours=3)
    resolve(ctx, first, "found")
    figures = report(app.store, start - timedelta(days=1))
    assert figures["cases"] == 2 and figures["worrying"] == 1 and figures["by_grade"]["HIGH"] == 1
    assert figures["median_seconds_to_first_alert"] == 0
    prosecutor = figures["roles"]["youth_prosecutor"]
    assert prosecutor["acknowledged"] == 1 and prosecutor["median_ack_seconds"] == 240
    child_focus = figures["roles"]["child_focus"]
    assert child_focus["acknowledged"] == 1 and child_focus["worst_ack_seconds"] == 360
    assert figures["resolved"] == 1 and figures["median_hours_missing"] == 3.1


def test_report_from_the_cli(home) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "report"]).exit_code == 0
    out = runner.invoke(cli, ["--home", str(home), "report", "--since", "7d", "--json"])
    assert json.loads(out.stdout)["cases"] == 0
    bad = runner.invoke(cli, ["--home", str(home), "report", "--since", "a week"])
    assert bad.exit_code == 2 and "--since" in bad.stderr
