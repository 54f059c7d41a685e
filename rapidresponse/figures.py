"""The supervisor's report, computed from the audit log by one written rule per figure.

Every figure comes from log events (what the log can prove), not from the tables that the
engine updates in place: an exhausted step later acknowledged is still an exhausted chain, and
an acknowledgement belongs to the role that gave it.

THE RULES (also in the README):

- Period: the cases whose `case.registered` event is in [since, until), and their events before
  `until` (a report on a past period does not change when later events are written). Every
  figure below is about those cases.
- Judgement, grade: from the case's last `case.assessed` event (a re-assessment replaces the
  first). `worrying` and `alarming` are counted separately (a case can be both).
- Outcome: the `outcome` of the case's `case.resolved` event at or before `until`; otherwise
  "open".
- Societal necessity: the value of the case's last `case.decided` event (yes / suspected /
  no); a case without one is "undecided" — never presumed.
- Repeat episode: `case.registered` names at least one earlier episode.
- Open longer than 24 h: from registration to the resolution, or to `until` for a case not
  resolved by then, more than 24 hours.
- First alert: minutes from registration to the case's first `sms.sent` event.
- Acknowledgement delay (rule A, `rules.AckClock`): per `step.acknowledged` event, minutes from
  the first alert of that step to the *acknowledging* role (`detail.role`), or from the step's
  firing when that role got none. Per role: count, median (rule M), 90th percentile (rule P,
  nearest rank) and worst. Late acknowledgements after exhaustion count too. By channel (the
  event's `via`: cli, sms, voice): count and median.
- Escalations of a role: `step.escalated` events of steps that fired for that role (the role in
  the step's `step.due` event).
- Exhausted chains of a role: `step.exhausted` events with that role.
- Texts per contact: distinct messages of `sms.sent`, `sms.stand_down` and `sms.failed` events
  by role and contact; failed: distinct messages with an `sms.failed` event; undelivered: with
  an `sms.undelivered` event.
- Steps skipped: `step.skipped` events (a case role the case names nobody for: nobody was
  informed). They never count as acknowledged or done, in any figure.
- Steps fired late (rule L, `rules.lateness`): `step.due` more than 60 s after the later of the
  step's due time and the moment it was planned (a step overdue at registration is not late).
- Follow-ups (rule F): the follow-ups a `case.returned` event lists (issue 9: safe-and-well,
  return interview, reference centre, care centre, each with its due time), and any other that
  a `followup.recorded` event records; for a case without `case.returned` (older logs), its
  `after_resolved` steps (`steps.planned`). Type: safe_and_well, return_interview, referral
  (reference or care centre, or a step of those roles), other. Done: recorded `done` (or `yes`
  for safe-and-well), or the step acknowledged/done; not_done: recorded otherwise (declined, not
  possible, not safe and well); still open: recorded safe-and-well `unknown` (reopened, after a
  yes, with the due time it logged). Due: its due time is before `until`. Overdue: due and still
  open.

POLICY FIGURES (`policy`, action 4.3 of the action plan), by calendar month in local time, counts
only — no reference, no name, nothing that identifies a minor:

- registered, worrying, alarming, suspected victims, repeat episodes: the period's cases by the
  month of their registration, judged by the rules above.
- societal necessity decided yes / suspected / no: `case.decided` events, by the month of the
  decision (every decision counts, a revised one too).
- referred to a reference centre / a care centre: cases with an `sms.sent` to the role
  reference_centre / care_centre, or a `followup.recorded` of that referral as done, by the
  month of the first of these.

Units: one per column. Durations in minutes (one decimal), counts as whole numbers.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rapidresponse.errors import InputError
from rapidresponse.flags import DUE_AFTER
from rapidresponse.rules import LATE_AFTER_SECONDS, AckClock, lateness, median, percentile, seconds_between
from rapidresponse.store import Store
from rapidresponse.timeutil import from_iso, parse_date, parse_duration, read_when, to_iso

REFERRAL_ROLES = ("reference_centre", "care_centre")
OPEN_TOO_LONG = timedelta(hours=24)


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime

    def as_dict(self) -> dict[str, str]:
        return {"since": to_iso(self.since), "until": to_iso(self.until)}


def period_bound(text: str, *, now: datetime, tz: ZoneInfo, name: str) -> datetime:
    """'30d' (that long ago), a date (its local midnight), or any time `read_when` accepts."""
    value = text.strip()
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        day: date = parse_date(value, name)
    except InputError:
        return read_when(value, now=now, tz=tz, name=name).moment
    return datetime.combine(day, time(0), tz)


def minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def spread(values_seconds: list[float]) -> dict[str, float | None]:
    """Median, 90th percentile and worst, in minutes."""
    return {"median_minutes": minutes(median(values_seconds)),
            "p90_minutes": minutes(percentile(values_seconds, 0.9)),
            "worst_minutes": minutes(max(values_seconds) if values_seconds else None)}


#: The columns of `report_events` (migration m017) beside kind, time and case; the other
#: fields the report reads are in its `facts` JSON.
COLUMNS = ("step", "role", "contact", "message", "via", "due_at")
#: The kinds of the chains (rule A, escalations, exhaustion, rule L) and of texts per contact.
CHAIN_KINDS = ("step.due", "sms.sent", "step.acknowledged", "step.escalated", "step.exhausted")
TEXT_KINDS = ("sms.sent", "sms.stand_down", "sms.failed", "sms.undelivered")


class _Log:
    """The period's events of a few kinds, from `report_events`: the log's narrow copy (m017).

    That table is clustered by (kind, at), so a period is one contiguous range per kind, read
    without touching the wide `events` rows. Events of a case happen at or after its
    registration, so `at >= since` loses none of them; other cases' events are dropped here.
    """

    def __init__(self, store: Store, period: Period) -> None:
        self.store = store
        self.since, self.until = to_iso(period.since), to_iso(period.until)
        self.cases: dict[str, str] = {}
        self.earlier: dict[str, bool] = {}
        for _seq, _kind, ref, at, earlier in self._select(("case.registered",), ("earlier_episode_count",)):
            self.cases[ref] = at
            self.earlier[ref] = bool(earlier)

    def _select(self, kinds: tuple[str, ...], fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
        columns = "".join(f", {f}" if f in COLUMNS else f", json_extract(facts, '$.{f}')" for f in fields)
        marks = ",".join("?" * len(kinds))
        return self.store.conn.execute(
            f"SELECT seq, kind, case_ref, at{columns} FROM report_events"
            f" WHERE kind IN ({marks}) AND at >= ? AND at < ?", [*kinds, self.since, self.until]
        ).fetchall()

    def rows(self, kinds: tuple[str, ...], fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """(seq, kind, case, at, *fields) of the period's cases before `until`, in log order."""
        cases = self.cases
        found = [row for row in self._select(kinds, fields) if row[2] in cases]
        found.sort()  # by seq, which is unique: one range per kind, merged into log order
        return found


def report(store: Store, period: Period) -> dict[str, Any]:
    log = _Log(store, period)
    planned = log.rows(("steps.planned",), ("phase", "steps"))
    # one read for the chains and the texts per contact: the sms.sent events serve both
    events = log.rows(tuple(dict.fromkeys(CHAIN_KINDS + TEXT_KINDS)), COLUMNS)
    roles, steps, first_alerts = _chains(events, planned)
    return {
        "period": period.as_dict(),
        "cases": _cases(log),
        "first_alert": spread([seconds_between(log.cases[ref], at) for ref, at in first_alerts.items()]),
        "steps": {**steps, "skipped": _skipped(log)},
        "roles": roles,
        "contacts": _contacts(events),
        "followups": _followups(log, planned),
    }


def _skipped(log: _Log) -> int:
    """Steps skipped: nobody to message on the case; neither acknowledged nor done."""
    return len(log.rows(("step.skipped",), ()))


def _last_assessment(log: _Log) -> dict[str, dict[str, Any]]:
    fields = ("worrying", "alarming", "grade", "suspected_victim")
    return {row[2]: dict(zip(fields, row[4:], strict=True))
            for row in log.rows(("case.assessed",), fields)}


def _cases(log: _Log) -> dict[str, Any]:
    assessed = _last_assessment(log)
    outcome: dict[str, tuple[str, str]] = {}
    for _seq, _kind, ref, at, value in log.rows(("case.resolved",), ("outcome",)):
        if at < log.until:
            outcome[ref] = (value, at)
    decided: dict[str, str] = {}
    for _seq, _kind, ref, at, value in log.rows(("case.decided",), ("societal_necessity",)):
        if at < log.until:
            decided[ref] = value
    open_too_long = 0
    for ref, registered in log.cases.items():
        end = outcome[ref][1] if ref in outcome else log.until
        if seconds_between(registered, end) > OPEN_TOO_LONG.total_seconds():
            open_too_long += 1
    judgements = Counter()
    for ref in log.cases:
        a = assessed.get(ref, {})
        judgements["worrying"] += bool(a.get("worrying"))
        judgements["alarming"] += bool(a.get("alarming"))
        judgements["neither"] += not a.get("worrying") and not a.get("alarming")
    return {
        "registered": len(log.cases),
        "by_judgement": dict(judgements),
        "by_grade": dict(sorted(Counter(str(assessed.get(r, {}).get("grade")) for r in log.cases).items())),
        "by_outcome": dict(sorted(Counter(outcome.get(r, ("open",))[0] for r in log.cases).items())),
        "by_societal_necessity": dict(sorted(
            Counter(str(decided.get(r, "undecided")) for r in log.cases).items())),
        "repeat_episodes": sum(log.earlier.values()),
        "open_longer_than_24h": open_too_long,
    }


def _planned_times(planned_rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], list[str]]:
    """(case, step) -> the times it was planned (`steps.planned`), in log order."""
    planned: dict[tuple[str, str], list[str]] = defaultdict(list)
    for _seq, _kind, ref, at, _phase, steps in planned_rows:
        for step in json.loads(steps or "[]"):
            planned[(ref, step.get("id"))].append(at)
    return planned


def _chains(events: list[tuple[Any, ...]], planned_rows: list[tuple[Any, ...]]
            ) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, str]]:
    """One pass over the chains' events: rule A per role, escalations, exhausted chains, rule L
    for the steps fired, and each case's first alert (its earliest `sms.sent`). Each field is
    read only from the kinds that carry it."""
    planned = _planned_times(planned_rows)
    clock = AckClock()
    alerted, fired_at, delay = clock.alerted, clock.fired, clock.delay
    step_role: dict[tuple[str, str], str] = {}
    delays: dict[str, list[float]] = defaultdict(list)
    escalations: Counter[str] = Counter()
    exhausted: Counter[str] = Counter()
    channels: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    first_alerts: dict[str, str] = {}
    fired = late = 0
    for _seq, kind, ref, at, step, role, _contact, _message, via, due_at in events:
        if kind == "sms.sent":
            alerted(ref, step, role, at)
            if at < first_alerts.get(ref, "~"):  # MIN(at): the fixed-width text orders as time
                first_alerts[ref] = at
        elif kind == "step.due":
            fired_at(ref, step, at)
            step_role[(ref, step)] = role
            fired += 1
            plan = at
            for p in planned.get((ref, step), ()):  # the last plan at or before the firing
                if p <= at:
                    plan = p
            if lateness(at, due_at or at, plan) > LATE_AFTER_SECONDS:
                late += 1
        elif kind == "step.acknowledged":
            waited = delay(ref, step, role, at)
            waited = waited if waited is not None else 0.0
            delays[role].append(waited)
            channels[role][via or "cli"].append(waited)
        elif kind == "step.escalated":
            escalations[step_role.get((ref, step), "unknown")] += 1
        elif kind == "step.exhausted":
            exhausted[role] += 1
    names = sorted(set(delays) | set(escalations) | set(exhausted))
    roles = [{"role": role, "acknowledgements": len(delays[role]), **spread(delays[role]),
              "escalations": escalations[role], "exhausted": exhausted[role],
              "by_channel": {via: {"acknowledgements": len(waits), "median_minutes": minutes(median(waits))}
                             for via, waits in sorted(channels[role].items())}}
             for role in names]
    return roles, {"fired": fired, "fired_late": late}, first_alerts


def _contacts(events: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Distinct messages per (role, contact): texts (sent, stood down or failed), failed, and
    undelivered; a message without an id is not counted (SQL's COUNT DISTINCT, as before)."""
    groups: dict[tuple[Any, Any], tuple[set[Any], set[Any], set[Any]]] = {}
    for _seq, kind, _ref, _at, _step, role, contact, message, _via, _due in events:
        if kind not in TEXT_KINDS:
            continue
        sets = groups.get((role, contact))
        if sets is None:
            sets = groups[(role, contact)] = (set(), set(), set())
        if message is None:
            continue
        if kind == "sms.undelivered":
            sets[2].add(message)
        else:
            sets[0].add(message)
            if kind == "sms.failed":
                sets[1].add(message)
    ordered = sorted(groups.items(), key=lambda g: (str(g[0][0]), str(g[0][1])))
    return [{"role": role, "contact": contact, "texts": len(texts), "failed": len(failed),
             "undelivered": len(undelivered)}
            for (role, contact), (texts, failed, undelivered) in ordered]


FOLLOWUP_TYPES = ("safe_and_well", "return_interview", "referral", "other")
#: `followup.recorded` results that mean it happened; other answers close it without it,
#: except those that leave it to do (safe and well `unknown`: the check is still open).
FOLLOWUP_DONE = ("done", "yes")
FOLLOWUP_OPEN = ("open", "unknown")


def followup_state(result: str | None) -> str:
    """Rule F's state of a follow-up from its state or recorded result."""
    return "open" if result in FOLLOWUP_OPEN else "done" if result in FOLLOWUP_DONE else "not_done"


def followup_type(name: str, role: str | None = None) -> str:
    """Rule F's type of a follow-up, from its kind or step id, and role."""
    text = name.lower().replace("_", "-")
    if "safe-and-well" in text or "welzijnscheck" in text:
        return "safe_and_well"
    if "interview" in text or "terugkeergesprek" in text:
        return "return_interview"
    if ("referral" in text or "doorverwijzing" in text or text in ("reference-centre", "care-centre")
            or role in REFERRAL_ROLES):
        return "referral"
    return "other"


def _followups(log: _Log, planned_rows: list[tuple[Any, ...]]) -> dict[str, dict[str, int]]:
    """Rule F. A case that went through `case.returned` (issue 9) has the follow-ups listed
    there; a case without one (an older log) has its `after_resolved` steps."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    returned: set[str] = set()
    for _seq, _kind, ref, _at, followups in log.rows(("case.returned",), ("followups",)):
        returned.add(ref)
        for f in json.loads(followups or "[]"):
            state = f.get("state")
            items[(ref, f.get("kind"))] = {
                "type": followup_type(f.get("kind") or ""), "due_at": f.get("due_at"),
                "state": followup_state(state)}
    recorded = log.rows(("followup.recorded",), ("followup", "result"))
    for _seq, _kind, ref, at, kind, result in recorded:
        item = items.setdefault((ref, kind), {"type": followup_type(kind or ""), "due_at": at})
        if followup_state(result) == "open" != item.get("state", "open"):
            # a yes that is doubted now: open again, due as long after this as after the return
            item["due_at"] = to_iso(from_iso(at) + DUE_AFTER.get(kind or "", timedelta(0)))
        item["state"] = followup_state(result)
    steps_planned = False
    for _seq, _kind, ref, _at, phase, steps in planned_rows:
        if phase != "after_resolved" or ref in returned:
            continue
        steps_planned = True
        for step in json.loads(steps or "[]"):
            items[(ref, step.get("id"))] = {"type": followup_type(step.get("id") or "", step.get("role")),
                                            "due_at": step.get("due_at"), "state": "open"}
    done_steps = log.rows(("step.acknowledged", "step.done"), ("step",)) if steps_planned else []
    for _seq, _kind, ref, _at, step in done_steps:
        item = items.get((ref, step))
        if item is not None and ref not in returned:
            item["state"] = "done"
    out = {t: {"due": 0, "done": 0, "not_done": 0, "overdue": 0} for t in FOLLOWUP_TYPES}
    for item in items.values():
        counts = out[item["type"]]
        if item["state"] != "open":
            counts[item["state"]] += 1
        if item["due_at"] and item["due_at"] < log.until:
            counts["due"] += 1
            counts["overdue"] += item["state"] == "open"
    return out


def policy(store: Store, period: Period, tz: ZoneInfo) -> dict[str, Any]:
    """Counts by month for the action plan's monitoring (action 4.3); nothing identifies a minor."""
    log = _Log(store, period)
    assessed = _last_assessment(log)
    months: dict[str, Counter[str]] = defaultdict(Counter)

    def month(at: str) -> str:
        return from_iso(at).astimezone(tz).strftime("%Y-%m")

    for ref, at in log.cases.items():
        row = months[month(at)]
        a = assessed.get(ref, {})
        row["registered"] += 1
        row["worrying"] += bool(a.get("worrying"))
        row["alarming"] += bool(a.get("alarming"))
        row["suspected_victims"] += bool(a.get("suspected_victim"))
        row["repeat_episodes"] += log.earlier[ref]
    for _seq, _kind, _ref, at, value in log.rows(("case.decided",), ("societal_necessity",)):
        months[month(at)][f"societal_necessity_{value}"] += 1
    first_referral: dict[tuple[str, str], str] = {}
    for _seq, kind, ref, at, role, followup, result in log.rows(
        ("sms.sent", "followup.recorded"), ("role", "followup", "result")
    ):
        if kind == "followup.recorded" and result in FOLLOWUP_DONE:
            role = (followup or "").replace("-", "_")
        if role in REFERRAL_ROLES:
            first_referral.setdefault((ref, role), at)
    for (_ref, role), at in first_referral.items():
        months[month(at)][f"referred_{role}"] += 1
    return {"period": period.as_dict(), "columns": list(POLICY_COLUMNS),
            "months": [{"month": m, **{c: months[m][c] for c in POLICY_COLUMNS}} for m in sorted(months)]}


POLICY_COLUMNS = ("registered", "worrying", "alarming", "suspected_victims",
                  "societal_necessity_yes", "societal_necessity_suspected", "societal_necessity_no",
                  "referred_reference_centre", "referred_care_centre", "repeat_episodes")
