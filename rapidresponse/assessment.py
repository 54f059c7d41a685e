"""Deciding whether a missing minor is a *worrying situation*, with reasons in words.

The addendum's rule: every missing minor with a suspicion of victimhood is a worrying situation.
Pure functions; the officer who registers confirms what the tool proposes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from rapidresponse.errors import InputError
from rapidresponse.vocab import Vocabulary

#: Belgian police criteria for a worrying disappearance; any one suffices.
POLICE_CRITERIA: dict[str, str] = {
    "disability": "physical or mental disability, or not self-reliant",
    "medical-needs": "dependent on medical treatment",
    "life-threat": "signs of a life-threatening situation",
    "dangerous-company": "in the company of third parties who may threaten the minor",
    "out-of-character": "the disappearance is completely out of character",
}

#: Signals of exploitation by a teen pimp; any one makes the minor a suspected victim.
EXPLOITATION_SIGNALS: dict[str, str] = {
    "older-partner": "an older 'boyfriend' or partner",
    "gifts-money": "unexplained gifts or money",
    "multiple-phones": "several phones",
    "picked-up-by-cars": "picked up in cars by unknown adults",
    "hotel": "stays in hotels",
    "school-absence": "school absence",
    "substance-use": "substance use",
    "name-tattoo": "a name tattoo",
    "repeat-runaway": "has run away repeatedly",
    "sexual-health": "sexual-health problems",
    "online-grooming": "signs of online grooming",
}

INDICATORS: dict[str, str] = {**POLICE_CRITERIA, **EXPLOITATION_SIGNALS}

#: The flags a playbook's `when` may test.
FLAGS = ("worrying", "societal-necessity", "suspected-victim", "grade-high")

PLACEMENTS = ("home", "foster", "institution", "other")
PLACEMENT_WORDS = Vocabulary.of("placement", PLACEMENTS, aliases={
    "thuis": "home", "pleeggezin": "foster", "voorziening": "institution", "andere": "other",
})

UNDER_13 = "under 13"


@dataclass(frozen=True)
class Assessment:
    age: int
    worrying: bool
    suspected_victim: bool
    societal_necessity: bool
    grade: str
    flags: tuple[str, ...]
    reasons: tuple[str, ...]
    indicators: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {
            "age": self.age,
            "worrying": self.worrying,
            "suspected_victim": self.suspected_victim,
            "societal_necessity": self.societal_necessity,
            "grade": self.grade,
            "flags": list(self.flags),
            "reasons": list(self.reasons),
            "indicators": list(self.indicators),
        }


def age_on(birth_date: date, day: date) -> int:
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def check_indicators(names: Iterable[str]) -> tuple[str, ...]:
    """Known names only, each once, in the vocabulary's order."""
    return Vocabulary.of("indicator", INDICATORS).pick_all(names)


def assess(
    *,
    birth_date: date,
    missing_day: date,
    indicators: Iterable[str] = (),
    suspected_victim: bool = False,
    societal_necessity: bool | None = None,
) -> Assessment:
    """Apply the rules; `societal_necessity=None` means the officer did not say."""
    if birth_date > missing_day:
        raise InputError("the birth date is after the day the minor went missing")
    age = age_on(birth_date, missing_day)
    if age >= 18:
        raise InputError(
            f"the person was {age} when they went missing: rapidresponse is for minors"
        )
    chosen = check_indicators(indicators)
    reasons: list[str] = []

    criteria = [POLICE_CRITERIA[n] for n in chosen if n in POLICE_CRITERIA]
    if age < 13:
        criteria.insert(0, f"{UNDER_13} ({age} years old)")
    signals = [EXPLOITATION_SIGNALS[n] for n in chosen if n in EXPLOITATION_SIGNALS]

    if suspected_victim:
        reasons.append("the officer suspects the minor is a victim of exploitation")
    if signals:
        reasons.append("exploitation signals: " + "; ".join(signals))
    is_victim = suspected_victim or bool(signals)
    if is_victim:
        reasons.append(
            "a missing minor with a suspicion of victimhood is always a worrying situation"
            " (action plan, addendum)"
        )
    if criteria:
        reasons.append("police criteria for a worrying disappearance: " + "; ".join(criteria))
    worrying = is_victim or bool(criteria)
    if not worrying:
        reasons.append("no police criterion and no sign of exploitation: not (yet) worrying")

    if societal_necessity is None:
        necessity = worrying and is_victim
        if necessity:
            reasons.append(
                "societal necessity presumed for a worrying suspected victim:"
                " report to the mandated agency"
            )
    else:
        necessity = societal_necessity
        reasons.append(
            "societal necessity stated by the officer"
            if necessity
            else "the officer judged there is no societal necessity"
        )

    if criteria:
        grade = "HIGH"
        reasons.append("grade HIGH: a police criterion holds")
    elif is_victim and len(signals) >= 2:
        grade = "HIGH"
        reasons.append(f"grade HIGH: suspected victim with {len(signals)} exploitation signals")
    elif worrying:
        grade = "MEDIUM"
        reasons.append("grade MEDIUM: worrying, without a police criterion or two signals")
    else:
        grade = "LOW"
        reasons.append("grade LOW: not worrying")

    flags = tuple(
        flag
        for flag, holds in (
            ("worrying", worrying),
            ("societal-necessity", necessity),
            ("suspected-victim", is_victim),
            ("grade-high", grade == "HIGH"),
        )
        if holds
    )
    return Assessment(
        age=age,
        worrying=worrying,
        suspected_victim=is_victim,
        societal_necessity=necessity,
        grade=grade,
        flags=flags,
        reasons=tuple(reasons),
        indicators=chosen,
    )
