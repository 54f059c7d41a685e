"""The flags a playbook's `when` may test, and where each one comes from.

Most come from the assessment (`assessment.FLAGS`). `repeat-episodes` comes from the minor's
history: the third episode in 30 days calls for a multi-agency meeting (a *casusoverleg*). A
re-assessment recomputes the assessment's flags and keeps the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from rapidresponse.assessment import FLAGS as ASSESSMENT_FLAGS
from rapidresponse.assessment import Assessment

REPEAT_EPISODES = "repeat-episodes"
EPISODE_FLAGS = (REPEAT_EPISODES,)

#: Everything a `when` may name.
WHEN_FLAGS = (*ASSESSMENT_FLAGS, *EPISODE_FLAGS)


def with_flag(result: Assessment, flag: str, reason: str) -> Assessment:
    if flag in result.flags:
        return result
    return replace(result, flags=(*result.flags, flag), reasons=(*result.reasons, reason))


def carried_over(flags: Iterable[str], old_flags: Iterable[str]) -> tuple[str, ...]:
    """A re-assessment's flags, with those that do not come from the assessment kept."""
    new = tuple(flags)
    return (*new, *(f for f in old_flags if f in EPISODE_FLAGS and f not in new))


def flag_combinations() -> list[frozenset[str]]:
    """Every combination of the flags that do not come from the assessment: with the
    assessment's own, what a case can carry (for `playbooks check`: can a step ever fire?)."""
    from itertools import combinations

    others = EPISODE_FLAGS
    return [frozenset(c) for size in range(len(others) + 1) for c in combinations(others, size)]
