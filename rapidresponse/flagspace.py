"""What the assessment rules can produce: every reachable set of case flags, and an officer's
input that yields each.

Asked of the model itself (`assessment.assess`) rather than kept as a list of names here, so a
check of contradictory `when` flags and a simulation's choice of case follow the rules as they
are today, whatever the flags are called.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from typing import Any

from rapidresponse.assessment import GRADE_WORDS, INDICATORS, NECESSITY_VALUES, assess, case_flags
from rapidresponse.flags import flag_combinations

#: The rules count risk factors up to "two or more": any two indicators at once reach every outcome.
#: (Raise it if a rule ever counts to three; each step multiplies the work by ~8.)
MAX_INDICATORS = 2
_MISSING_DAY = date(2026, 6, 1)
#: Why a simulated officer lowers a suspicion the signals raised, or decides on necessity.
LOWERING_REASON = "simulation"
#: Under and over 13 on that day.
_BIRTH_DATES = (date(2016, 1, 1), date(2010, 1, 1))


@dataclass(frozen=True)
class Sample:
    """An officer's input, and the case flags and grade the rules give it."""

    indicators: tuple[str, ...]
    suspected_victim: bool | None  # stated, lowered (False, with a reason) or left to the signals
    societal_necessity: str  # the decision: undecided, suspected, yes, no
    under_13: bool
    flags: frozenset[str]
    grade: str  # as the rules say it (HIGH …)

    @property
    def grade_word(self) -> str:
        """As a text says it ({grade})."""
        return GRADE_WORDS.get(self.grade, self.grade)


def _samples() -> Iterator[Sample]:
    """Every registration input that can matter, simplest first."""
    names = list(INDICATORS)
    for size in range(MAX_INDICATORS + 1):
        for chosen in itertools.combinations(names, size):
            for under_13, suspected in itertools.product((False, True), (None, True, False)):
                birth = _BIRTH_DATES[0] if under_13 else _BIRTH_DATES[1]
                result = assess(birth_date=birth, missing_day=_MISSING_DAY, indicators=chosen,
                                suspected_victim=suspected, lowering_reason=LOWERING_REASON)
                for necessity in NECESSITY_VALUES:
                    yield Sample(chosen, suspected, necessity, under_13,
                                 frozenset(case_flags(result.flags, necessity)), result.grade)


@lru_cache(maxsize=1)
def _all() -> tuple[Sample, ...]:
    return tuple(_samples())


@lru_cache(maxsize=1)
def registrable() -> dict[frozenset[str], Sample]:
    """Each flag set a case can have when it is registered, with the simplest input for it."""
    found: dict[frozenset[str], Sample] = {}
    for sample in _all():
        found.setdefault(sample.flags, sample)
    return found


@lru_cache(maxsize=1)
def outcomes() -> dict[frozenset[str], Sample]:
    """Each flag set a case can carry: a registration's, with any of the flags that come from
    elsewhere (the minor's history, the answers at the return). Combined after the assessment
    (not for every input), so the check stays fast however many such flags there are."""
    found: dict[frozenset[str], Sample] = {}
    for flags, sample in registrable().items():
        for extra in flag_combinations():
            found.setdefault(flags | extra, replace(sample, flags=flags | extra))
    return found


def grade_words() -> tuple[str, ...]:
    """Every grade the rules give, as texts say it, in the order first met."""
    return tuple(dict.fromkeys(s.grade_word for s in _all()))


def smallest_superset(
    flags: Iterable[str], pool: Mapping[frozenset[str], Sample] | None = None
) -> Sample | None:
    """The simplest case (of `pool`, default every case) whose flags include all of `flags`;
    None if the rules never allow it."""
    wanted = set(flags)
    fitting = [s for f, s in (outcomes() if pool is None else pool).items() if wanted <= f]
    return min(fitting, key=lambda s: (len(s.flags), sorted(s.flags)), default=None)


def firing_most(steps: Iterable[Any], pool: Mapping[frozenset[str], Sample] | None = None) -> Sample:
    """The simplest case that fires the most of these steps (anything with `applies(flags)`):
    the example a playbook is shown and simulated with when no flags are given."""
    chosen = list(steps)
    return max((outcomes() if pool is None else pool).values(),
               key=lambda s: (sum(step.applies(s.flags) for step in chosen), -len(s.flags)))
