"""The two judgements: alarming (police criteria) and worrying (suspicion of victimhood)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from rapidresponse.assessment import (
    INDICATORS,
    KINDS,
    PLACEMENTS,
    POLICE_CRITERIA,
    RED_FLAGS,
    RISK_FACTORS,
    assess,
    case_flags,
    check_decision,
)
from rapidresponse.cli import cli
from rapidresponse.errors import InputError

MISSING = date(2026, 11, 28)
FIFTEEN = date(2011, 3, 2)


def judge(*indicators: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=indicators, **kwargs)  # type: ignore[arg-type]


def test_every_indicator_has_exactly_one_kind_as_the_field_names_them() -> None:
    assert set(POLICE_CRITERIA) == {"disability", "medical-needs", "life-threat", "dangerous-company",
                                    "crime-victim", "danger-to-others", "out-of-character"}
    assert set(RED_FLAGS) == {"older-partner", "gifts-money", "multiple-phones", "picked-up-by-cars",
                              "hotel", "name-tattoo", "id-held-by-other", "coached-speech",
                              "sexting-blackmail"}
    assert set(RISK_FACTORS) == {"school-absence", "substance-use", "repeat-runaway", "sexual-health",
                                 "online-grooming", "earlier-abuse", "youth-care-placement"}
    assert len(INDICATORS) == len(POLICE_CRITERIA) + len(RED_FLAGS) + len(RISK_FACTORS)
    assert {KINDS[n] for n in POLICE_CRITERIA} == {"police-criterion"}
    assert {KINDS[n] for n in RED_FLAGS} == {"red-flag"}
    assert {KINDS[n] for n in RISK_FACTORS} == {"risk-factor"}


def test_no_indicator_is_neither_alarming_nor_worrying_and_graded_low() -> None:
    result = judge()
    assert not result.alarming and not result.worrying and not result.suspected_victim
    assert result.grade == "LOW" and result.flags == ()
    assert any("not (yet) a worrying situation" in r for r in result.reasons)
    assert any("not an alarming disappearance" in r for r in result.reasons)


@pytest.mark.parametrize("criterion", sorted(POLICE_CRITERIA))
def test_any_police_criterion_is_alarming_and_high_but_not_worrying(criterion: str) -> None:
    result = judge(criterion)
    assert result.alarming and result.grade == "HIGH"
    assert not result.worrying and not result.suspected_victim
    assert result.flags == ("alarming", "grade-high")
    assert any(POLICE_CRITERIA[criterion] in r and "onrustwekkende verdwijning" in r
               for r in result.reasons)


def test_a_lost_eleven_year_old_is_alarming_not_worrying() -> None:
    result = assess(birth_date=date(2015, 6, 1), missing_day=MISSING)
    assert result.age == 11 and result.alarming and result.grade == "HIGH"
    assert not result.worrying and "worrying" not in result.flags
    assert any("under 13 (11 years old)" in r for r in result.reasons)


def test_thirteenth_birthday_counts_on_the_day_itself() -> None:
    assert assess(birth_date=date(2013, 11, 28), missing_day=MISSING).age == 13
    assert not assess(birth_date=date(2013, 11, 28), missing_day=MISSING).alarming
    assert assess(birth_date=date(2013, 11, 29), missing_day=MISSING).alarming


@pytest.mark.parametrize("flag", sorted(RED_FLAGS))
def test_one_red_flag_raises_the_suspicion_and_makes_it_alarming_too(flag: str) -> None:
    result = judge(flag)
    assert result.suspected_victim and result.worrying and result.alarming
    assert result.grade == "HIGH" and result.red_flags == [flag]
    assert set(result.flags) == {"alarming", "worrying", "suspected-victim", "grade-high"}
    assert any(RED_FLAGS[flag] in r for r in result.reasons)
    # A suspected victim of exploitation is in dangerous company by definition: said so.
    assert any("dangerous-company" not in r and "by definition" in r for r in result.reasons)


@pytest.mark.parametrize("factor", sorted(RISK_FACTORS))
def test_one_risk_factor_is_a_reason_to_look_closer_graded_medium(factor: str) -> None:
    result = judge(factor)
    assert not result.suspected_victim and not result.worrying and not result.alarming
    assert result.grade == "MEDIUM" and result.risk_factors == [factor] and result.flags == ()
    assert any("reason to look closer" in r and RISK_FACTORS[factor] in r for r in result.reasons)


def test_two_risk_factors_raise_the_suspicion() -> None:
    result = judge("school-absence", "substance-use")
    assert result.suspected_victim and result.worrying and result.alarming and result.grade == "HIGH"
    assert any("2 risk factors" in r for r in result.reasons)


def test_a_police_criterion_with_one_risk_factor_is_high() -> None:
    result = judge("medical-needs", "school-absence")
    assert result.grade == "HIGH" and not result.worrying


@pytest.mark.parametrize("placement", ["foster", "institution"])
def test_a_care_placement_is_the_risk_factor_youth_care_placement(placement: str) -> None:
    alone = judge(placement=placement)
    assert alone.risk_factors == ["youth-care-placement"] and alone.grade == "MEDIUM"
    assert any(f"placement '{placement}'" in r for r in alone.reasons)
    with_another = judge("repeat-runaway", placement=placement)
    assert with_another.suspected_victim and with_another.worrying


@pytest.mark.parametrize("placement", ["home", "other"])
def test_other_placements_are_no_risk_factor(placement: str) -> None:
    assert judge(placement=placement).risk_factors == []


def test_an_unknown_placement_is_refused() -> None:
    assert "boarding" not in PLACEMENTS
    with pytest.raises(InputError, match="unknown placement"):
        judge(placement="boarding")


def test_the_officers_suspicion_alone_makes_it_worrying_and_alarming() -> None:
    result = judge(suspected_victim=True)
    assert result.suspected_victim and result.worrying and result.alarming and result.grade == "HIGH"
    assert result.victim_judgement == "stated"
    assert any("the officer suspects" in r for r in result.reasons)
    assert any("addendum" in r for r in result.reasons)


def test_lowering_a_suspicion_the_signals_raised_needs_a_reason() -> None:
    with pytest.raises(InputError, match="--no-suspected-victim needs --reason"):
        judge("hotel", suspected_victim=False)
    with pytest.raises(InputError, match="needs --reason"):
        judge("school-absence", "substance-use", suspected_victim=False, lowering_reason="  ")
    lowered = judge("hotel", suspected_victim=False, lowering_reason="the hotel was a school trip")
    assert not lowered.suspected_victim and not lowered.worrying and not lowered.alarming
    assert lowered.victim_judgement == "lowered" and lowered.grade == "MEDIUM"
    assert any("despite the signals" in r for r in lowered.reasons)
    assert not any("school trip" in r for r in lowered.reasons)  # the reason is a note, not a reason line


def test_no_suspected_victim_without_signals_needs_no_reason() -> None:
    result = judge("school-absence", suspected_victim=False)
    assert not result.suspected_victim and result.victim_judgement is None


def test_unknown_indicator_is_refused_with_the_vocabulary() -> None:
    with pytest.raises(InputError, match=r"unknown indicator \(choose from .*older-partner"):
        judge("boyfriend")


def test_an_adult_is_refused() -> None:
    with pytest.raises(InputError, match="was 18"):
        assess(birth_date=date(2008, 11, 28), missing_day=MISSING)


def test_a_birth_date_after_the_disappearance_is_refused() -> None:
    with pytest.raises(InputError, match="birth date is after"):
        assess(birth_date=date(2026, 12, 1), missing_day=MISSING)


def test_societal_necessity_gives_its_flag_only_when_decided_yes_or_suspected() -> None:
    base = ("alarming", "worrying", "suspected-victim", "grade-high")
    assert case_flags(base, "undecided") == (*base, "societal-necessity-undecided")
    assert case_flags(base, "yes") == ("alarming", "worrying", "suspected-victim",
                                       "societal-necessity", "grade-high")
    assert case_flags(base, "suspected") == case_flags(base, "yes")
    assert case_flags((*base, "societal-necessity"), "no") == base


def test_a_decision_needs_a_known_value_and_a_reason() -> None:
    assert check_decision(" Yes ", "seen with older men") == "yes"
    assert check_decision("undecided", None) == "undecided"
    with pytest.raises(InputError, match="needs --reason"):
        check_decision("suspected", "")
    assert check_decision("vermoeden", "seen with older men") == "suspected"
    with pytest.raises(InputError, match=r"unknown decision on societal necessity \(choose from yes, suspected, no"):
        check_decision("maybe", "why")


@given(
    indicators=st.lists(st.sampled_from(sorted(INDICATORS)), unique=True),
    suspected=st.sampled_from([None, True, False]),
    placement=st.sampled_from(PLACEMENTS),
    age_days=st.integers(min_value=0, max_value=18 * 365 - 10),
)
def test_the_rules_hold_for_every_combination(indicators: list[str], suspected: bool | None,
                                              placement: str, age_days: int) -> None:
    result = assess(birth_date=MISSING - timedelta(days=age_days), missing_day=MISSING,
                    indicators=indicators, placement=placement, suspected_victim=suspected,
                    lowering_reason="reason")
    red = [i for i in indicators if i in RED_FLAGS]
    risks = set(i for i in indicators if i in RISK_FACTORS)
    if placement in ("foster", "institution"):
        risks.add("youth-care-placement")
    raised = bool(red) or len(risks) >= 2
    victim = suspected if suspected is not None else raised
    criteria = any(i in POLICE_CRITERIA for i in indicators) or result.age < 13
    assert result.suspected_victim == victim == result.worrying  # the addendum
    assert result.alarming == (criteria or victim)  # a victim is in dangerous company
    expected_grade = "HIGH" if result.alarming else "MEDIUM" if red or risks else "LOW"
    assert result.grade == expected_grade
    assert ("grade-high" in result.flags) == (result.grade == "HIGH")
    assert result.reasons  # every conclusion carries its reasons


def test_indicators_lists_every_indicator_with_its_kind_and_meaning() -> None:
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["indicators", "--json"]).stdout)
    assert {i["name"]: i["kind"] for i in listed} == KINDS
    assert all(i["meaning"] == INDICATORS[i["name"]] for i in listed)
    text = runner.invoke(cli, ["indicators"]).stdout
    assert "Red flags (any one raises the suspicion" in text and "Risk factors (two or more" in text
    assert "Police criteria (any one makes" in text and "criterions" not in text.lower()
    assert "crime-victim" in text and "youth-care-placement" in text and "--placement" in text


def test_register_reports_both_judgements_and_refuses_a_silent_lowering(home: Path) -> None:
    runner = CliRunner()
    base = ["--home", str(home), "register", "--alias", "Fictief", "--birth-date", "2011-03-02",
            "--missing-since", "now", "--last-seen", "ergens", "--indicator", "school-absence",
            "--placement", "institution", "--json"]
    out = runner.invoke(cli, base)
    assert out.exit_code == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["risk_factors"] == ["school-absence", "youth-care-placement"]
    assert payload["worrying"] and payload["alarming"] and payload["suspected_victim"]
    assert payload["societal_necessity"] == "undecided" and payload["red_flags"] == []
    lowered = runner.invoke(cli, [*base, "--new-episode", "--no-suspected-victim"])
    assert lowered.exit_code == 2 and "needs --reason" in lowered.stderr
    ok = runner.invoke(cli, [*base, "--new-episode", "--no-suspected-victim", "--reason", "known runaway, safe"])
    assert ok.exit_code == 0, ok.stderr
    payload = json.loads(ok.stdout)
    assert not payload["worrying"] and not payload["alarming"] and payload["grade"] == "MEDIUM"
    assert payload["playbook"] == "missing-minor"
