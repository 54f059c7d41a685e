"""The worrying-situation rules of the addendum, each with its reasons."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rapidresponse.assessment import EXPLOITATION_SIGNALS, POLICE_CRITERIA, assess
from rapidresponse.errors import InputError

MISSING = date(2026, 11, 28)
FIFTEEN = date(2011, 3, 2)


def test_no_indicator_is_not_worrying_and_graded_low() -> None:
    result = assess(birth_date=FIFTEEN, missing_day=MISSING)
    assert not result.worrying and result.grade == "LOW" and result.flags == ()
    assert any("not (yet) worrying" in r for r in result.reasons)


def test_officers_suspicion_alone_makes_it_worrying() -> None:
    result = assess(birth_date=FIFTEEN, missing_day=MISSING, suspected_victim=True)
    assert result.worrying and result.suspected_victim
    assert result.grade == "MEDIUM"
    assert any("addendum" in r for r in result.reasons)


@pytest.mark.parametrize("signal", sorted(EXPLOITATION_SIGNALS))
def test_any_exploitation_signal_makes_a_suspected_victim(signal: str) -> None:
    result = assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=[signal])
    assert result.suspected_victim and result.worrying
    assert "suspected-victim" in result.flags and "worrying" in result.flags
    assert any(EXPLOITATION_SIGNALS[signal] in r for r in result.reasons)


@pytest.mark.parametrize("criterion", sorted(POLICE_CRITERIA))
def test_any_police_criterion_is_worrying_and_high(criterion: str) -> None:
    result = assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=[criterion])
    assert result.worrying and result.grade == "HIGH" and not result.suspected_victim
    assert any(POLICE_CRITERIA[criterion] in r for r in result.reasons)


def test_under_thirteen_is_a_police_criterion_computed_from_the_birth_date() -> None:
    result = assess(birth_date=date(2014, 1, 1), missing_day=MISSING)
    assert result.age == 12 and result.worrying and result.grade == "HIGH"
    assert any("under 13 (12 years old)" in r for r in result.reasons)


def test_thirteenth_birthday_counts_on_the_day_itself() -> None:
    assert assess(birth_date=date(2013, 11, 28), missing_day=MISSING).age == 13
    assert assess(birth_date=date(2013, 11, 29), missing_day=MISSING).age == 12


def test_two_signals_make_grade_high_one_signal_medium() -> None:
    one = assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=["hotel"])
    two = assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=["hotel", "gifts-money"])
    assert one.grade == "MEDIUM" and two.grade == "HIGH"
    assert "grade-high" in two.flags and "grade-high" not in one.flags


def test_societal_necessity_is_presumed_for_a_worrying_suspected_victim() -> None:
    result = assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=["hotel"])
    assert result.societal_necessity and "societal-necessity" in result.flags
    assert any("presumed" in r for r in result.reasons)


def test_officer_can_rule_out_societal_necessity() -> None:
    result = assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=["hotel"],
                    societal_necessity=False)
    assert not result.societal_necessity and "societal-necessity" not in result.flags
    assert any("no societal necessity" in r for r in result.reasons)


def test_police_criterion_alone_does_not_presume_societal_necessity() -> None:
    result = assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=["medical-needs"])
    assert not result.societal_necessity


def test_officer_can_state_societal_necessity() -> None:
    result = assess(birth_date=FIFTEEN, missing_day=MISSING, societal_necessity=True)
    assert result.societal_necessity and "societal-necessity" in result.flags


def test_unknown_indicator_is_refused_with_the_vocabulary() -> None:
    with pytest.raises(InputError, match=r"unknown indicator \(choose from .*older-partner"):
        assess(birth_date=FIFTEEN, missing_day=MISSING, indicators=["boyfriend"])


def test_an_adult_is_refused() -> None:
    with pytest.raises(InputError, match="was 18"):
        assess(birth_date=date(2008, 11, 28), missing_day=MISSING)


def test_a_birth_date_after_the_disappearance_is_refused() -> None:
    with pytest.raises(InputError, match="birth date is after"):
        assess(birth_date=date(2026, 12, 1), missing_day=MISSING)


@given(
    indicators=st.lists(st.sampled_from(sorted({**POLICE_CRITERIA, **EXPLOITATION_SIGNALS})),
                        unique=True),
    suspected=st.booleans(),
    necessity=st.sampled_from([None, True, False]),
    age_days=st.integers(min_value=0, max_value=18 * 365 - 10),
)
def test_the_rules_hold_for_every_combination(indicators: list[str], suspected: bool,
                                              necessity: bool | None, age_days: int) -> None:
    from datetime import timedelta

    result = assess(birth_date=MISSING - timedelta(days=age_days), missing_day=MISSING,
                    indicators=indicators, suspected_victim=suspected, societal_necessity=necessity)
    signals = [i for i in indicators if i in EXPLOITATION_SIGNALS]
    criteria = [i for i in indicators if i in POLICE_CRITERIA] or (["u13"] if result.age < 13 else [])
    victim = suspected or bool(signals)
    assert result.suspected_victim == victim
    assert result.worrying == (victim or bool(criteria))  # the addendum: victimhood → worrying
    expected_grade = ("HIGH" if criteria or (victim and len(signals) >= 2)
                      else "MEDIUM" if result.worrying else "LOW")
    assert result.grade == expected_grade
    assert result.societal_necessity == (necessity if necessity is not None else victim)
    assert result.reasons  # every conclusion carries its reasons
