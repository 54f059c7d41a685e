"""The flags a playbook's `when` may test, and where each one comes from.

Most come from the assessment (`assessment.FLAGS`). `repeat-episodes` comes from the minor's
history: the third episode in 30 days calls for a multi-agency meeting (a *casusoverleg*). A
re-assessment recomputes the assessment's flags and keeps the others. The return flags come
from the officer's answers when the minor is back (`resolve`), and hold for the after-return
steps only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

from rapidresponse.assessment import FLAGS as ASSESSMENT_FLAGS
from rapidresponse.assessment import Assessment

REPEAT_EPISODES = "repeat-episodes"
EPISODE_FLAGS = (REPEAT_EPISODES,)

ANSWERS = ("yes", "no", "unknown")
NOT_SAFE_AND_WELL = "not-safe-and-well"  # she is back, and not safe and well
SAFE_AND_WELL_UNKNOWN = "safe-and-well-unknown"  # nobody could say yet
SEXUAL_VIOLENCE_NOT_RULED_OUT = "sexual-violence-not-ruled-out"  # 'no' or 'unknown'
RETURN_FLAGS = (NOT_SAFE_AND_WELL, SAFE_AND_WELL_UNKNOWN, SEXUAL_VIOLENCE_NOT_RULED_OUT)

#: The follow-ups the return opens (`rapidresponse.followup`); an after-return step may say
#: `closes = "return-interview"`: recording that follow-up finishes it.
FOLLOWUP_KINDS = ("safe-and-well", "return-interview", "reference-centre", "care-centre")
#: How long after the return (or after it is opened later) each follow-up may take.
DUE_AFTER: dict[str, timedelta] = {
    "safe-and-well": timedelta(hours=2),
    "return-interview": timedelta(hours=72),  # UK statutory guidance
    "reference-centre": timedelta(hours=72),
    "care-centre": timedelta(hours=24),  # the first 7 days matter
}

#: Everything a `when` may name.
WHEN_FLAGS = (*ASSESSMENT_FLAGS, *EPISODE_FLAGS, *RETURN_FLAGS)


def return_flags(safe_and_well: str, sexual_violence_ruled_out: str) -> tuple[str, ...]:
    """The after-return flags for the two answers (yes, no or unknown each).

    Only a 'yes' rules sexual violence out: an unanswered question keeps the care centre alerted.
    """
    flags = {"no": (NOT_SAFE_AND_WELL,), "unknown": (SAFE_AND_WELL_UNKNOWN,)}.get(safe_and_well, ())
    if sexual_violence_ruled_out != "yes":
        flags += (SEXUAL_VIOLENCE_NOT_RULED_OUT,)
    return flags


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

    episodes = [frozenset(c) for size in range(len(EPISODE_FLAGS) + 1)
                for c in combinations(EPISODE_FLAGS, size)]
    returns = {frozenset(return_flags(s, v)) for s in ANSWERS for v in ANSWERS}
    return [e | r for e in episodes for r in returns]
