"""Two judgements about a missing minor, each with its reasons in words.

- *Onrustwekkende verdwijning* (alarming disappearance) is the police concept: any one of the
  Belgian police criteria makes it alarming.
- *Verontrustende situatie* (worrying situation) is the youth-care concept of the addendum: every
  missing minor with a suspicion of victimhood is one.

No single weak sign proves exploitation, so the signals come in two kinds: a *red flag* raises
the suspicion on its own; *risk factors* raise it two together, and one alone is a reason to look
closer. A suspected victim of a teen pimp is in the company of someone who threatens her, so she
is also an alarming disappearance.

Societal necessity is not judged here: it is a decision a named professional takes (see
`necessity.py`); this module only knows its words and the flag it gives.

Pure functions; the officer who registers confirms what the tool proposes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from rapidresponse.errors import InputError
from rapidresponse.vocab import Vocabulary

#: Belgian police criteria for an alarming disappearance; any one suffices.
POLICE_CRITERIA: dict[str, str] = {
    "disability": "physical or mental disability, or not self-reliant",
    "medical-needs": "dependent on medical treatment",
    "life-threat": "signs of a life-threatening situation",
    "dangerous-company": "in the company of third parties who may threaten the minor",
    "crime-victim": "may be the victim of a crime",
    "danger-to-others": "may be a danger to others",
    "out-of-character": "the disappearance is completely out of character",
}

#: Signals of exploitation that raise the suspicion of victimhood on their own.
RED_FLAGS: dict[str, str] = {
    "older-partner": "an older 'boyfriend' or partner",
    "gifts-money": "unexplained gifts or money",
    "multiple-phones": "several phones",
    "picked-up-by-cars": "picked up in cars by unknown adults",
    "hotel": "stays in hotels",
    "name-tattoo": "a name or ownership tattoo",
    "id-held-by-other": "identity papers held by someone else",
    "coached-speech": "seems coached; lets others speak for her or him",
    "sexting-blackmail": "sexting or blackmail with images",
}

#: Signals that raise the suspicion two or more together; one alone is a reason to look closer.
RISK_FACTORS: dict[str, str] = {
    "school-absence": "school absence",
    "substance-use": "substance use",
    "repeat-runaway": "has run away repeatedly",
    "sexual-health": "sexual-health problems",
    "online-grooming": "signs of online grooming",
    "earlier-abuse": "earlier abuse",
    "youth-care-placement": "lives in a youth-care facility or foster care",
}

POLICE_CRITERION, RED_FLAG, RISK_FACTOR = "police-criterion", "red-flag", "risk-factor"

#: Each kind in the plural, as headings and field names say it (police criteria, not criterions).
KIND_PLURALS: dict[str, str] = {
    POLICE_CRITERION: "police criteria", RED_FLAG: "red flags", RISK_FACTOR: "risk factors",
}

#: What each kind means, as `indicators` explains it.
KIND_MEANINGS: dict[str, str] = {
    POLICE_CRITERION: "any one makes the disappearance alarming (onrustwekkende verdwijning)",
    RED_FLAG: "any one raises the suspicion of victimhood: a worrying situation"
              " (verontrustende situatie)",
    RISK_FACTOR: "two or more raise the suspicion of victimhood; one is a reason to look closer",
}

INDICATORS: dict[str, str] = {**POLICE_CRITERIA, **RED_FLAGS, **RISK_FACTORS}
KINDS: dict[str, str] = {
    **dict.fromkeys(POLICE_CRITERIA, POLICE_CRITERION),
    **dict.fromkeys(RED_FLAGS, RED_FLAG),
    **dict.fromkeys(RISK_FACTORS, RISK_FACTOR),
}

PLACEMENTS = ("home", "foster", "institution", "other")
PLACEMENT_WORDS = Vocabulary.of("placement", PLACEMENTS, aliases={
    "thuis": "home", "pleeggezin": "foster", "voorziening": "institution", "andere": "other",
})
#: Teen pimps recruit in youth-care facilities and foster care: these placements are a risk factor.
CARE_PLACEMENTS = ("foster", "institution")
PLACEMENT_FACTOR = "youth-care-placement"

#: Societal necessity (maatschappelijke noodzaak): decided by someone, never presumed.
NECESSITY_VALUES = ("undecided", "suspected", "yes", "no")
NECESSITY_DECISIONS = ("yes", "suspected", "no")
#: Where every case starts, unless the officer decides at registration: a decision, never presumed.
NECESSITY_AT_REGISTRATION = "undecided"
#: A decision as people type it (Dutch words too); 'undecided' is where a case starts.
NECESSITY_WORDS = Vocabulary.of(
    "decision on societal necessity", NECESSITY_DECISIONS,
    aliases={"ja": "yes", "vermoeden": "suspected", "nee": "no"},
)

#: The flags a playbook's `when` may test. `societal-necessity-undecided` holds until someone
#: decides: the step that asks for the decision tests it.
FLAGS = (
    "alarming", "worrying", "suspected-victim", "societal-necessity", "grade-high",
    "societal-necessity-undecided",
)
NECESSITY_FLAG, UNDECIDED_FLAG = "societal-necessity", "societal-necessity-undecided"

#: The grade as a Dutch text says it ("risico {grade}").
GRADE_WORDS = {"HIGH": "hoog", "MEDIUM": "midden", "LOW": "laag"}

UNDER_13 = "under 13"


@dataclass(frozen=True)
class Assessment:
    age: int
    alarming: bool
    worrying: bool
    suspected_victim: bool
    grade: str
    flags: tuple[str, ...]
    reasons: tuple[str, ...]
    indicators: tuple[str, ...] = field(default_factory=tuple)
    #: 'stated' (the officer suspects), 'lowered' (the officer overruled the signals), or None.
    victim_judgement: str | None = None

    @property
    def police_criteria(self) -> list[str]:
        return [n for n in self.indicators if KINDS[n] == POLICE_CRITERION]

    @property
    def red_flags(self) -> list[str]:
        return [n for n in self.indicators if KINDS[n] == RED_FLAG]

    @property
    def risk_factors(self) -> list[str]:
        return [n for n in self.indicators if KINDS[n] == RISK_FACTOR]

    def as_dict(self) -> dict[str, object]:
        return {
            "age": self.age,
            "alarming": self.alarming,
            "worrying": self.worrying,
            "suspected_victim": self.suspected_victim,
            "victim_judgement": self.victim_judgement,
            "grade": self.grade,
            "flags": list(self.flags),
            "reasons": list(self.reasons),
            "indicators": list(self.indicators),
            "police_criteria": self.police_criteria,
            "red_flags": self.red_flags,
            "risk_factors": self.risk_factors,
        }


def age_on(birth_date: date, day: date) -> int:
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def check_indicators(names: Iterable[str]) -> tuple[str, ...]:
    """Known names only, each once, in the vocabulary's order."""
    return Vocabulary.of("indicator", INDICATORS).pick_all(names)


def case_flags(assessment_flags: Iterable[str], societal_necessity: str) -> tuple[str, ...]:
    """A case's flags: its assessment's, and what the decision on societal necessity gives."""
    if societal_necessity not in NECESSITY_VALUES:
        raise ValueError("a stored societal necessity outside its vocabulary")
    flags = [f for f in assessment_flags if f not in (NECESSITY_FLAG, UNDECIDED_FLAG)]
    if societal_necessity in ("yes", "suspected"):
        flags.append(NECESSITY_FLAG)
    elif societal_necessity == "undecided":
        flags.append(UNDECIDED_FLAG)
    # Flags that come from elsewhere (the minor's history: rapidresponse.flags) are kept.
    return tuple(f for f in FLAGS if f in flags) + tuple(f for f in flags if f not in FLAGS)


def assess(
    *,
    birth_date: date,
    missing_day: date,
    indicators: Iterable[str] = (),
    placement: str = "home",
    suspected_victim: bool | None = None,
    lowering_reason: str | None = None,
) -> Assessment:
    """Apply the rules.

    `suspected_victim`: True when the officer suspects victimhood, False when the officer judges
    there is none (lowering a suspicion the signals raised then needs `lowering_reason`), None
    when the officer leaves it to the signals.
    """
    if birth_date > missing_day:
        raise InputError("the birth date is after the day the minor went missing")
    age = age_on(birth_date, missing_day)
    if age >= 18:
        raise InputError(
            f"the person was {age} when they went missing: rapidresponse is for minors"
        )
    placement = PLACEMENT_WORDS.pick(placement)
    given = list(indicators)
    if placement in CARE_PLACEMENTS:
        given.append(PLACEMENT_FACTOR)
    chosen = check_indicators(given)
    reasons: list[str] = []

    red = [n for n in chosen if KINDS[n] == RED_FLAG]
    risks = [n for n in chosen if KINDS[n] == RISK_FACTOR]
    raised = bool(red) or len(risks) >= 2
    if red:
        reasons.append("red flags (one suffices): " + "; ".join(RED_FLAGS[n] for n in red))
    if len(risks) >= 2:
        reasons.append(f"{len(risks)} risk factors (two or more raise the suspicion): "
                       + "; ".join(RISK_FACTORS[n] for n in risks))
    elif risks:
        reasons.append(f"one risk factor, a reason to look closer: {RISK_FACTORS[risks[0]]}")
    if PLACEMENT_FACTOR in risks and placement in CARE_PLACEMENTS:
        reasons.append(f"placement '{placement}' counts as the risk factor {PLACEMENT_FACTOR}")

    judgement: str | None = None
    if suspected_victim:
        judgement = "stated"
        victim = True
        reasons.append("the officer suspects the minor is a victim of exploitation")
    elif suspected_victim is False and raised:
        if not (lowering_reason or "").strip():
            raise InputError(
                "the signals raise a suspicion of victimhood: lowering it with"
                " --no-suspected-victim needs --reason (why; kept with the case)"
            )
        judgement = "lowered"
        victim = False
        reasons.append("the officer judged there is no suspicion of victimhood despite the"
                       " signals (the reason is kept with the case)")
    else:
        victim = raised
    if victim:
        reasons.append(
            "a missing minor with a suspicion of victimhood is a worrying situation"
            " (verontrustende situatie; action plan, addendum)"
        )
    else:
        reasons.append("no suspicion of victimhood: not (yet) a worrying situation")

    criteria = [POLICE_CRITERIA[n] for n in chosen if KINDS[n] == POLICE_CRITERION]
    if age < 13:
        criteria.insert(0, f"{UNDER_13} ({age} years old)")
    if victim and "dangerous-company" not in chosen:
        criteria.append(
            f"{POLICE_CRITERIA['dangerous-company']}: a suspected victim of exploitation is in such"
            " company by definition"
        )
    alarming = bool(criteria)
    if alarming:
        reasons.append("alarming disappearance (onrustwekkende verdwijning), police criteria: "
                       + "; ".join(criteria))
    else:
        reasons.append("no police criterion: not an alarming disappearance")

    if alarming:
        grade = "HIGH"
        reasons.append("grade HIGH: an alarming disappearance")
    elif red or risks:
        grade = "MEDIUM"
        reasons.append("grade MEDIUM: a sign to look closer at, and no police criterion")
    else:
        grade = "LOW"
        reasons.append("grade LOW: no police criterion and no sign of exploitation")

    flags = tuple(
        flag
        for flag, holds in (
            ("alarming", alarming),
            ("worrying", victim),
            ("suspected-victim", victim),
            ("grade-high", grade == "HIGH"),
        )
        if holds
    )
    return Assessment(
        age=age,
        alarming=alarming,
        worrying=victim,
        suspected_victim=victim,
        grade=grade,
        flags=flags,
        reasons=tuple(reasons),
        indicators=chosen,
        victim_judgement=judgement,
    )


def check_decision(societal_necessity: str, reason: str | None) -> str:
    """A decision on societal necessity: a known value and, unless undecided, why."""
    if societal_necessity == "undecided":
        return societal_necessity
    value = NECESSITY_WORDS.pick(societal_necessity)
    if not (reason or "").strip():
        raise InputError(
            "deciding on societal necessity needs --reason (why; kept with the case,"
            " the log records who decided and when)"
        )
    return value
