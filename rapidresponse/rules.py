"""The definitions the supervisor's views share, each written once.

The timeline of one case and the report over many cases compute the same things (how long an
acknowledgement took, whether a step fired late); they feed the same rules here, so the figure
in the report is the figure in the timeline.
"""

from __future__ import annotations

import math
from datetime import datetime

from rapidresponse.timeutil import from_iso

#: A step that fires more than this after it could have fired is "late" (a daemon outage).
LATE_AFTER_SECONDS = 60.0


class AckClock:
    """When did the acknowledging role get its first alert of the step? (Rule A.)

    Rule A — delay of an acknowledgement: the time of the `step.acknowledged` event minus the
    time of the first alert of that step sent to the role that acknowledged (`sms.sent` with
    the same case, step and role, after the step last fired). The role is the one that
    acknowledged (`detail.role`), not the step's own role: a coordinator answering an escalated
    step is the coordinator's delay, counted from the coordinator's alert. If the acknowledging
    role got no alert of that step (an officer acknowledged before any text went out), the
    delay counts from when the step fired (`step.due`).

    Feed it the events of one or many cases in log order.
    """

    def __init__(self) -> None:
        self._fired: dict[tuple[str, str], str] = {}
        # keyed by the step's firing too, so a step that fires again starts afresh
        self._alerted: dict[tuple[str, str, str, str | None], str] = {}

    def fired(self, case: str, step: str, at: str) -> None:
        self._fired[(case, step)] = at

    def alerted(self, case: str, step: str | None, role: str, at: str) -> None:
        if step is not None:
            key = (case, step, role, self._fired.get((case, step)))
            self._alerted.setdefault(key, at)

    def delay(self, case: str, step: str, role: str, at: str) -> float | None:
        """Seconds from the rule's start to `at`; None when the step never fired."""
        fired = self._fired.get((case, step))
        start = self._alerted.get((case, step, role, fired)) or fired
        if start is None:
            return None
        return seconds_between(start, at)


def lateness(fired_at: str, due_at: str, planned_at: str) -> float:
    """Rule L — how late a step fired: its `step.due` time minus the later of its due time and
    the moment it was planned. A step planned already overdue (counted from a disappearance
    hours before registration) that fires at registration is not late; one that waits for a
    daemon that was down is.
    """
    return seconds_between(max(due_at, planned_at), fired_at)


def seconds_between(earlier: str, later: str) -> float:
    if earlier[-1:] == "Z" and later[-1:] == "Z":
        # the log's own spelling (`to_iso`): Python 3.11 reads the 'Z' itself, and the difference
        # of two aware times needs no conversion; the report calls this ~100,000 times
        return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()
    return (from_iso(later) - from_iso(earlier)).total_seconds()



def median(values: list[float]) -> float | None:
    """Rule M — the middle value; with an even count, the mean of the two middle values."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: list[float], share: float) -> float | None:
    """Rule P — nearest rank: the smallest value with at least `share` of the values at or
    below it (the 90th percentile of 10 values is the 9th smallest; of 1 value, that value)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]
