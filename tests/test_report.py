"""The supervisor's report: every figure from the log by its written rule, against hand-computed values.

Two cases through the engine with a fake clock (START = 14:00 Brussels, t in minutes after it):

Case 1 (missing 2 h before registration, registered t=0, found t=60):
  t=0   four steps fire; check-missing (1 h after missing) was overdue at registration: NOT late
  t=4   child_focus acknowledges (4.0 min after its alert)
  t=15  prosecutor's chain: next contact;  t=30: escalated to the coordinator
  t=30  check-missing: next coordinator contact
  t=35  coordinator acknowledges both: the escalated prosecutor step 5.0 min after the
        coordinator's alert (the coordinator's figure, not the prosecutor's), check-missing 35.0
  t=60  resolved (found); stand-downs; referral to the reference centre sent (done)
Case 2 (same minor: a repeat episode; missing and registered t=60, never resolved):
  t=60  three steps fire; police: one text fails, the other comes back undelivered, so the
        police step is EXHAUSTED (nobody of the police was reached)
  t=75  next contacts;  t=90: child_focus EXHAUSTED, prosecutor escalated
  t=105 prosecutor EXHAUSTED;  t=110: child_focus answers late: 50.0 min after its alert
  t=130 check-missing fires, 10 min after its due time (the daemon was down): late
Report until START + 80 h: the return interview of case 1 (due t=60 + 72 h) is overdue; case 2
has been open more than 24 h.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import START, build_two_cases
from rapidresponse import audit
from rapidresponse.app import App
from rapidresponse.cli import cli
from rapidresponse.engine import Context
from rapidresponse.figures import Period, followup_type, policy, report
from rapidresponse.rules import median, percentile

UNTIL = START + timedelta(hours=80)


@pytest.fixture
def two_cases(app: App, ctx: Context, clock: Any, transport: Any, settings: Any) -> tuple[str, str]:
    return build_two_cases(app, ctx, clock, transport, settings)


@pytest.fixture
def figures(app: App, two_cases: tuple[str, str]) -> dict[str, Any]:
    return report(app.store, Period(START - timedelta(days=1), UNTIL))


def by_role(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["role"]: r for r in figures["roles"]}


def test_cases_by_judgement_grade_outcome_and_decision(app: App, figures: dict[str, Any]) -> None:
    cases = figures["cases"]
    grade = app.store.scalar("SELECT grade FROM cases WHERE ref = 'RR-2026-0001'")
    assert cases["registered"] == 2 and cases["by_judgement"]["worrying"] == 2
    assert cases["by_grade"] == {grade: 2}
    assert cases["by_outcome"] == {"found": 1, "open": 1}
    assert cases["by_societal_necessity"] == {"undecided": 2}
    assert cases["repeat_episodes"] == 1 and cases["open_longer_than_24h"] == 1


def test_two_exhausted_chains_are_two_even_after_a_late_answer(figures: dict[str, Any]) -> None:
    roles = by_role(figures)
    assert roles["child_focus"]["exhausted"] == 1 and roles["youth_prosecutor"]["exhausted"] == 1
    # and the police step of case 2, whose two texts both failed: nobody of the police was reached
    assert roles["police"]["exhausted"] == 1
    assert sum(r["exhausted"] for r in figures["roles"]) == 3


def test_an_acknowledgement_belongs_to_the_role_that_gave_it(figures: dict[str, Any]) -> None:
    roles = by_role(figures)
    coordinator = roles["coordinator"]
    assert coordinator["acknowledgements"] == 2
    assert (coordinator["median_minutes"], coordinator["p90_minutes"], coordinator["worst_minutes"]) == (20.0, 35.0, 35.0)
    assert roles["youth_prosecutor"]["acknowledgements"] == 0
    assert roles["youth_prosecutor"]["escalations"] == 2 and coordinator["escalations"] == 0
    child_focus = roles["child_focus"]  # 4.0 and the late 50.0
    assert (child_focus["acknowledgements"], child_focus["median_minutes"], child_focus["worst_minutes"]) == (2, 27.0, 50.0)


def test_only_a_step_held_up_after_it_was_planned_is_late(figures: dict[str, Any]) -> None:
    assert figures["steps"] == {"fired": 9, "fired_late": 1, "skipped": 0}


def test_failed_and_undelivered_texts_per_contact(figures: dict[str, Any]) -> None:
    contacts = {c["contact"]: c for c in figures["contacts"]}
    assert contacts["Cel Vermiste Personen (fictief)"] == {
        "role": "police", "contact": "Cel Vermiste Personen (fictief)", "texts": 3, "failed": 1, "undelivered": 0}
    assert contacts["Politiezone dispatch (fictief)"]["undelivered"] == 1
    assert contacts["Politiezone dispatch (fictief)"]["failed"] == 0
    assert contacts["Referentiecentrum onthaal (fictief)"]["texts"] == 1


def test_first_alert_and_follow_ups(figures: dict[str, Any]) -> None:
    assert figures["first_alert"] == {"median_minutes": 0.0, "p90_minutes": 0.0, "worst_minutes": 0.0}
    assert figures["followups"]["return_interview"] == {"due": 1, "done": 0, "not_done": 0, "overdue": 1}
    assert figures["followups"]["referral"] == {"due": 1, "done": 1, "not_done": 0, "overdue": 0}


def test_follow_ups_of_the_return_come_from_its_events(app: App, ctx: Context, clock: Any) -> None:
    """Issue 9's return: safe and well (done at once), return interview (72 h), reference centre
    (72 h, a suspected victim), care centre (24 h, sexual violence not ruled out). At +30 h the care
    centre referral is recorded done and the interview declined; the reference centre is never
    recorded: overdue by +80 h, not yet due at +50 h."""
    from conftest import register_minor
    from rapidresponse import followup

    ref = register_minor(ctx, app).ref
    followup.resolve(ctx, ref, "found", safe_and_well="yes", sexual_violence_ruled_out="no")
    clock.advance(hours=30)
    followup.record(ctx, ref, [("care-centre", "done"), ("return-interview", "declined")])
    late = report(app.store, Period(START - timedelta(days=1), UNTIL))["followups"]
    assert late["safe_and_well"] == {"due": 1, "done": 1, "not_done": 0, "overdue": 0}
    assert late["return_interview"] == {"due": 1, "done": 0, "not_done": 1, "overdue": 0}
    assert late["referral"] == {"due": 2, "done": 1, "not_done": 0, "overdue": 1}
    early = report(app.store, Period(START - timedelta(days=1), START + timedelta(hours=50)))["followups"]
    assert early["referral"] == {"due": 1, "done": 1, "not_done": 0, "overdue": 0}
    months = policy(app.store, Period(START - timedelta(days=1), UNTIL), app.contacts.timezone)["months"]
    assert months[0]["referred_care_centre"] == 1 and months[0]["referred_reference_centre"] == 0


def test_every_duration_is_in_minutes(figures: dict[str, Any]) -> None:
    for row in [figures["first_alert"], *figures["roles"]]:
        for key, value in row.items():
            if key.endswith("_minutes"):
                assert value is None or isinstance(value, float)
    assert not any(key.endswith(("_seconds", "_hours")) for r in figures["roles"] for key in r)


def test_the_period_counts_cases_registered_in_it_and_events_before_its_end(app: App, two_cases: tuple[str, str]) -> None:
    later = report(app.store, Period(START + timedelta(minutes=30), UNTIL))
    assert later["cases"]["registered"] == 1 and later["cases"]["repeat_episodes"] == 1
    early = report(app.store, Period(START - timedelta(days=1), START + timedelta(minutes=45)))
    assert early["cases"]["by_outcome"] == {"open": 1}  # resolved only at t=60
    assert by_role(early)["coordinator"]["acknowledgements"] == 2
    assert early["followups"]["return_interview"]["due"] == 0


def test_a_decision_of_societal_necessity_is_counted_as_decided(app: App, clock: Any, two_cases: tuple[str, str]) -> None:
    with app.store.transaction():  # the event issue 8's `decide` writes
        audit.append(app.store, at=clock.now(), kind="case.decided", actor="coordinator-x",
                     case=two_cases[1], detail={"societal_necessity": "suspected", "why": None})
    figures = report(app.store, Period(START - timedelta(days=1), UNTIL))
    assert figures["cases"]["by_societal_necessity"] == {"suspected": 1, "undecided": 1}


def test_policy_figures_by_month_identify_nobody(app: App, clock: Any, two_cases: tuple[str, str]) -> None:
    with app.store.transaction():
        audit.append(app.store, at=clock.now(), kind="case.decided", actor="coordinator-x",
                     case=two_cases[0], detail={"societal_necessity": "yes", "why": None})
    result = policy(app.store, Period(START - timedelta(days=40), UNTIL), app.contacts.timezone)
    [month] = result["months"]
    assert month == {"month": "2026-11", "registered": 2, "worrying": 2, "alarming": month["alarming"],
                     "suspected_victims": 2, "societal_necessity_yes": 1, "societal_necessity_suspected": 0,
                     "societal_necessity_no": 0, "referred_reference_centre": 1, "referred_care_centre": 0,
                     "repeat_episodes": 1}
    assert "RR-" not in json.dumps(result)


def test_rules_m_and_p() -> None:
    assert median([4.0, 50.0]) == 27.0 and median([5, 1, 3]) == 3 and median([]) is None
    assert percentile(list(range(1, 11)), 0.9) == 9 and percentile([7.0], 0.9) == 7.0
    assert percentile([5.0, 35.0], 0.9) == 35.0


def test_follow_up_types() -> None:
    assert followup_type("return-interview-due", "coordinator") == "return_interview"
    assert followup_type("x", "care_centre") == "referral"
    assert followup_type("welfare-check", "coordinator") == "other"
    assert followup_type("reference-centre") == "referral" and followup_type("safe-and-well") == "safe_and_well"


def invoke(app: App, *args: str) -> Any:
    app.close()
    return CliRunner().invoke(cli, ["--home", str(app.home), "report", *args])


def test_report_json_and_text_from_the_cli(app: App, two_cases: tuple[str, str]) -> None:
    result = invoke(app, "--since", "2026-11-01", "--until", "2026-12-31", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"period", "cases", "first_alert", "steps", "roles", "contacts", "followups"}
    assert data["cases"]["registered"] == 2
    text = invoke(app, "--since", "2026-11-01", "--until", "2026-12-31")
    assert "(min)" in text.output and "104s" not in text.output


def test_report_text_fits_80_columns_with_every_role_and_month_whole(
    app: App, two_cases: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = invoke(app, "--since", "2026-11-01", "--until", "2026-12-31").stdout
    policy_text = invoke(app, "--policy", "--since", "2026-11-01", "--until", "2026-12-31").stdout
    assert "…" not in text + policy_text and "\xa0" not in text
    assert max(len(line) for line in (text + policy_text).splitlines()) <= 80
    by_role = text[text.index("By role"):text.index("Texts by contact")]
    rows = {line.split()[0]: line.split()[1:] for line in by_role.splitlines() if line.strip()}
    assert rows["youth_prosecutor"][:6] == ["0", "—", "—", "—", "2", "1"]  # acks … escalated, exhausted
    assert rows["child_focus"][:6] == ["2", "27.0", "50.0", "50.0", "0", "1"]
    assert "escalated  exhausted" in text and "reference_centre" in text
    assert "month    reg  worry  alarm  victim  SN yes  SN susp  SN no" in policy_text
    assert "2026-11    2      2      2       2       0        0      0      1      0       1" in policy_text
    assert "SN yes/susp/no: societal" in policy_text  # the legend says what the short headers mean


def test_report_csv_has_one_figure_per_row(app: App, two_cases: tuple[str, str]) -> None:
    result = invoke(app, "--since", "2026-11-01", "--until", "2026-12-31", "--csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["section", "role", "contact", "figure", "value"]
    assert all(len(row) == 5 for row in rows)
    assert ["roles", "coordinator", "", "median_minutes", "20.0"] in rows
    assert ["roles", "child_focus", "", "exhausted", "1"] in rows
    policy_rows = list(csv.reader(io.StringIO(
        invoke(app, "--policy", "--since", "2026-11-01", "--until", "2026-12-31", "--csv").stdout)))
    assert policy_rows[0][0] == "month" and policy_rows[1][:3] == ["2026-11", "2", "2"]


def test_report_input_mistakes(app: App) -> None:
    assert invoke(app).exit_code == 0
    for args in (["--since", "a week"], ["--since", "2026-12-01", "--until", "2026-11-01"], ["--json", "--csv"]):
        result = invoke(app, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "a week" not in result.output


def test_the_report_reads_events_by_kind_and_time(app: App) -> None:
    plan = app.store.all("EXPLAIN QUERY PLAN SELECT seq FROM events WHERE kind IN ('sms.sent', 'step.due')"
                         " AND at >= ? AND at < ? ORDER BY seq", ["2026-01-01", "2027-01-01"])
    assert any("events_kind_at" in row["detail"] for row in plan), plan
