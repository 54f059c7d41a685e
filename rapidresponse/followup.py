"""The return, followed through: when the minor is back the search ends, the care starts.

`resolve` with outcome found or returned records two answers (is she safe and well? can sexual
violence in the last 7 days be ruled out?), turns them into flags for the playbook's after-return
steps (`flags.return_flags`), and opens the follow-ups that somebody must close:

- `safe-and-well`: closed at once by a yes or a no; open (due in 2 h) when nobody could say.
  A later `unknown` keeps it open (or reopens it after a yes that is doubted now) and never lowers
  a `no`: not safe and well stands until someone checks she is (`yes`);
- `return-interview`: by an independent person within 72 h (UK statutory guidance);
- `reference-centre`: for a suspected victim, assessment of victimhood (action plan 2.2–2.3);
- `care-centre`: unless sexual violence was ruled out, the Zorgcentrum (the first 7 days matter).

`followup CASE` records how each went, and an answer that changed after the return (a late
safe-and-well check, sexual violence no longer ruled out or ruled out after all): the
after-return steps then follow the new answers from that moment, by the one rule for flags
(`reassessment.follow_flags`). The rows are data of the case and go with the purge; the audit
log records the answers and each follow-up by kind, never a note's text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rapidresponse import audit, engine
from rapidresponse.engine import Context, get_case
from rapidresponse.errors import InputError
from rapidresponse.flags import ANSWERS, DUE_AFTER, FOLLOWUP_KINDS, return_flags
from rapidresponse.reassessment import follow_flags
from rapidresponse.states import RETURNED_OUTCOMES, RUNNING_STEPS, CaseState, Phase, StepState, sql
from rapidresponse.store import Store
from rapidresponse.timeutil import to_iso
from rapidresponse.vocab import Vocabulary

SAFE_AND_WELL, RETURN_INTERVIEW, REFERENCE_CENTRE, CARE_CENTRE = FOLLOWUP_KINDS
KINDS = FOLLOWUP_KINDS
REFERRALS = (REFERENCE_CENTRE, CARE_CENTRE)
#: The second question at the return: an answer, not a follow-up (no row of its own).
SEXUAL_VIOLENCE = "sexual-violence-ruled-out"


OPEN = "open"
#: What `followup` may record, per kind. Safe and well `unknown`: the check is still to do.
RESULTS: dict[str, tuple[str, ...]] = {
    SAFE_AND_WELL: ANSWERS,
    RETURN_INTERVIEW: ("done", "declined", "not-possible"),
    REFERENCE_CENTRE: ("done", "declined"),
    CARE_CENTRE: ("done", "declined"),
}
ANSWER_WORDS = Vocabulary.of("answer", ANSWERS, {"ja": "yes", "nee": "no", "onbekend": "unknown"})
REFERRAL_WORDS = Vocabulary.of("referral", REFERRALS)


@dataclass
class Returned:
    ref: str
    resolution: engine.Resolution
    safe_and_well: str | None = None
    sexual_violence_ruled_out: str | None = None
    flags: tuple[str, ...] = ()
    followups: list[dict[str, Any]] = field(default_factory=list)


def resolve(
    ctx: Context,
    ref: str,
    outcome: str,
    note: str | None = None,
    *,
    safe_and_well: str | None = None,
    sexual_violence_ruled_out: str | None = None,
) -> Returned:
    """Close the case; when the minor is back, record the answers (None is recorded as
    'unknown'), start the after-return steps for them and open the follow-ups. One transaction."""
    outcome = engine.OUTCOME_WORDS.pick(outcome)
    back = outcome in RETURNED_OUTCOMES
    if not back and (safe_and_well or sexual_violence_ruled_out):
        raise InputError("--safe-and-well and --sexual-violence-ruled-out are asked when the minor"
                         " is back: only with outcome found or returned")
    safe = ANSWER_WORDS.pick(safe_and_well or "unknown", what="--safe-and-well") if back else None
    ruled_out = (ANSWER_WORDS.pick(sexual_violence_ruled_out or "unknown",
                                   what="--sexual-violence-ruled-out") if back else None)
    flags = return_flags(safe, ruled_out) if safe is not None and ruled_out is not None else ()
    with ctx.store.transaction():
        resolution = engine.resolve(ctx, ref, outcome, note, return_flags=flags)
        result = Returned(resolution.ref, resolution, safe, ruled_out, flags)
        if back:
            case = get_case(ctx.store, resolution.ref)
            result.followups = _open_followups(ctx, case, safe or "unknown", ruled_out or "unknown")
            audit.append(
                ctx.store, at=ctx.clock.now(), kind="case.returned", actor=ctx.actor,
                case=resolution.ref,
                detail={"safe_and_well": safe, "sexual_violence_ruled_out": ruled_out,
                        "flags": list(flags), "followups": result.followups},
            )
    return result


def _open_followups(ctx: Context, case: dict[str, Any], safe: str, ruled_out: str) -> list[dict[str, Any]]:
    now = ctx.clock.now()
    wanted = [(SAFE_AND_WELL, {"yes": "done", "no": "no"}.get(safe, OPEN)), (RETURN_INTERVIEW, OPEN)]
    if case["suspected_victim"]:
        wanted.append((REFERENCE_CENTRE, OPEN))
    if ruled_out != "yes":
        wanted.append((CARE_CENTRE, OPEN))
    rows = []
    for kind, state in wanted:
        due = to_iso(now + DUE_AFTER[kind])
        answered = (to_iso(now), ctx.actor) if state != OPEN else (None, None)
        ctx.store.conn.execute(
            "INSERT INTO followups (case_id, kind, due_at, state, answered_at, answered_by)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [case["id"], kind, due, state, *answered],
        )
        rows.append({"kind": kind, "due_at": due, "state": state})
    return rows


def record(
    ctx: Context,
    ref: str,
    answers: list[tuple[str, str]],
    note: str | None = None,
) -> list[dict[str, Any]]:
    """Record how follow-ups went: [(kind, result)], e.g. ('return-interview', 'done')."""
    if not answers:
        raise InputError("say what to record: --return-interview, --referral, --safe-and-well"
                         " or --sexual-violence-ruled-out")
    checked = [(kind, _result(kind, value)) for kind, value in answers]
    now = ctx.clock.now()
    done = []
    with ctx.store.transaction():
        case = get_case(ctx.store, ref)
        if case["state"] == CaseState.PURGED:
            raise InputError(f"case {case['ref']} has been purged")
        if case["state"] != CaseState.RESOLVED or case["outcome"] not in RETURNED_OUTCOMES:
            raise InputError(f"case {case['ref']} has no follow-ups: they start when the minor is"
                             " back (resolve --outcome found or returned)")
        before = answers_now(ctx.store, case["ref"])
        for index, (kind, value) in enumerate(checked):
            event = "followup.recorded"
            if kind == SEXUAL_VIOLENCE:
                entry = _change_sexual_violence(ctx, case, value, before[1])
                event = "return.answer-changed"
            elif (kind, value) == (SAFE_AND_WELL, "unknown"):
                entry = _safe_and_well_unknown(ctx, case, before[0])
            else:
                entry = _record_result(ctx, case, kind, value)
            if index == 0 and note:
                entry["note"] = engine._note(ctx, case["id"], "followup", note)
            audit.append(ctx.store, at=now, kind=event, actor=ctx.actor, case=case["ref"], detail=entry)
            done.append(entry)
        after = answers_now(ctx.store, case["ref"])
        if after != before and done:
            done[-1].update(_follow_answers(ctx, case, before, after))
    return done


def answers_now(store: Store, ref: str) -> tuple[str, str]:
    """(safe and well, sexual violence ruled out) as they stand now: the answers at the return,
    changed by a later safe-and-well check or a changed answer. Read from the log, which records
    each of them anyway."""
    safe = ruled_out = "unknown"
    for event in audit.events(store, ref):
        detail = event["detail"]
        if event["kind"] == "case.returned":
            safe = detail["safe_and_well"] or "unknown"
            ruled_out = detail["sexual_violence_ruled_out"] or "unknown"
        elif event["kind"] == "followup.recorded" and detail.get("followup") == SAFE_AND_WELL:
            safe = "yes" if detail["result"] == "done" else detail["result"]
        elif event["kind"] == "return.answer-changed" and detail.get("answer") == SEXUAL_VIOLENCE:
            ruled_out = detail["result"]
    return safe, ruled_out


def _follow_answers(ctx: Context, case: dict[str, Any], before: tuple[str, str],
                    after: tuple[str, str]) -> dict[str, Any]:
    """The after-return steps follow the changed answers from now, as if given at the return:
    the one rule for flags (`follow_flags`); texts already sent are not recalled."""
    flags = tuple(json.loads(case["flags"]))
    stopped, planned = follow_flags(ctx, case, (*flags, *return_flags(*after)),
                                    phase=Phase.AFTER_RESOLVED,
                                    before=(*flags, *return_flags(*before)))
    changed: dict[str, Any] = {}
    if stopped:
        changed["steps_stopped"] = stopped
    if planned:
        changed["steps_planned"] = [s["id"] for s in planned]
    return changed


def _change_sexual_violence(ctx: Context, case: dict[str, Any], value: str, was: str) -> dict[str, Any]:
    """Not ruled out (any more): the care-centre follow-up is opened, due as at the return.
    Ruled out after all: a care-centre follow-up nobody closed yet is no longer asked."""
    entry: dict[str, Any] = {"answer": SEXUAL_VIOLENCE, "result": value, "was": was}
    row = _followup_row(ctx, case, CARE_CENTRE)
    if value != "yes" and row is None:
        due = to_iso(ctx.clock.now() + DUE_AFTER[CARE_CENTRE])
        ctx.store.conn.execute(
            "INSERT INTO followups (case_id, kind, due_at, state) VALUES (?, ?, ?, ?)",
            [case["id"], CARE_CENTRE, due, OPEN])
        entry["followup_opened"] = {"kind": CARE_CENTRE, "due_at": due}
    elif value == "yes" and row is not None and row["state"] == OPEN:
        ctx.store.conn.execute("DELETE FROM followups WHERE id = ?", [row["id"]])
        entry["followup_dropped"] = CARE_CENTRE
    return entry


def _followup_row(ctx: Context, case: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return ctx.store.one("SELECT * FROM followups WHERE case_id = ? AND kind = ?", [case["id"], kind])


def _record_result(ctx: Context, case: dict[str, Any], kind: str, value: str) -> dict[str, Any]:
    """A follow-up's result: the row answered (made, for one not asked for: a referral made
    anyway), and the after-return steps that remind of it finished."""
    now = to_iso(ctx.clock.now())
    row = _followup_row(ctx, case, kind)
    if row is None:
        ctx.store.conn.execute(
            "INSERT INTO followups (case_id, kind, due_at, state) VALUES (?, ?, ?, ?)",
            [case["id"], kind, now, OPEN],
        )
    ctx.store.conn.execute(
        "UPDATE followups SET state = ?, answered_at = ?, answered_by = ? WHERE case_id = ? AND kind = ?",
        [value, now, ctx.actor, case["id"], kind],
    )
    entry = {"followup": kind, "result": value, "was": row["state"] if row else None,
             "late": bool(row and row["state"] == OPEN and row["due_at"] < now)}
    closed = _close_steps(ctx, case["id"], kind)
    if closed:
        entry["steps_closed"] = closed
    return entry


def _safe_and_well_unknown(ctx: Context, case: dict[str, Any], was: str) -> dict[str, Any]:
    """Nobody can say yet whether she is safe and well: the check stays to do. Still open, it
    keeps its due time (an overdue check stays overdue); after a yes that is doubted now it is
    open again, due as at the return. A `no` is never lowered by not knowing: refused."""
    if was == "no":
        raise InputError(f"case {case['ref']} was found not safe and well: 'unknown' does not"
                         " lower that; record --safe-and-well yes once she is")
    now = to_iso(ctx.clock.now())
    row = _followup_row(ctx, case, SAFE_AND_WELL)
    if row is None or row["state"] != OPEN:
        due = to_iso(ctx.clock.now() + DUE_AFTER[SAFE_AND_WELL])
        if row is None:
            ctx.store.conn.execute("INSERT INTO followups (case_id, kind, due_at, state)"
                                   " VALUES (?, ?, ?, ?)", [case["id"], SAFE_AND_WELL, due, OPEN])
        else:
            ctx.store.conn.execute("UPDATE followups SET state = ?, due_at = ?, answered_at = NULL,"
                                   " answered_by = NULL WHERE id = ?", [OPEN, due, row["id"]])
        return {"followup": SAFE_AND_WELL, "result": "unknown", "was": row["state"] if row else None,
                "late": False, "followup_opened": {"kind": SAFE_AND_WELL, "due_at": due}}
    return {"followup": SAFE_AND_WELL, "result": "unknown", "was": OPEN, "late": row["due_at"] < now}


def _close_steps(ctx: Context, case_id: int, kind: str) -> list[str]:
    """The after-return steps that say `closes = KIND` are done once it is recorded: a reminder
    about an interview that took place is noise at 3 a.m."""
    rows = [
        row for row in ctx.store.all(
            f"SELECT * FROM steps WHERE case_id = ? AND phase = ? AND state IN {sql(RUNNING_STEPS)}",
            [case_id, Phase.AFTER_RESOLVED])
        if engine.step_definition(ctx.store, row).closes == kind
    ]
    return [r["step_key"] for r in engine.stop_chain(ctx, case_id, steps=rows, state=StepState.DONE,
                                                       by=ctx.actor)]


def _result(kind: str, value: str) -> str:
    if kind == SEXUAL_VIOLENCE:
        return ANSWER_WORDS.pick(value, what="--sexual-violence-ruled-out")
    if kind == SAFE_AND_WELL:
        answer = ANSWER_WORDS.pick(value, what="--safe-and-well")
        return "done" if answer == "yes" else answer  # the check is done
    if kind not in RESULTS:
        raise InputError(f"unknown follow-up: choose {', '.join(KINDS)}")
    word = value.strip().lower()
    if word not in RESULTS[kind]:
        raise InputError(f"{kind}: the result is one of {', '.join(RESULTS[kind])}")
    return word


def of_case(store: Store, case_id: int, now: datetime) -> list[dict[str, Any]]:
    """The follow-ups of a case, each with whether it is overdue."""
    rows = store.all(
        "SELECT kind, due_at, state, answered_at, answered_by FROM followups WHERE case_id = ?"
        " ORDER BY due_at, id", [case_id],
    )
    stamp = to_iso(now)
    return [{**r, "overdue": r["state"] == OPEN and r["due_at"] <= stamp} for r in rows]


def overdue(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Every open follow-up past its time, oldest first: what `status` shows in red."""
    return store.all(
        "SELECT c.ref AS case_ref, f.kind, f.due_at FROM followups f JOIN cases c ON c.id = f.case_id"
        " WHERE f.state = ? AND f.due_at <= ? AND c.state = ? ORDER BY f.due_at, f.id",
        [OPEN, to_iso(now), CaseState.RESOLVED],
    )


def open_count(store: Store, case_id: int) -> int:
    return int(store.scalar("SELECT COUNT(*) FROM followups WHERE case_id = ? AND state = ?",
                            [case_id, OPEN]))


def last_activity(store: Store, case: dict[str, Any]) -> str:
    """When the case last moved: its last answered follow-up, or its resolution. Retention
    counts from here."""
    last = store.scalar("SELECT MAX(answered_at) FROM followups WHERE case_id = ?", [case["id"]])
    return max(x for x in (last, case["resolved_at"]) if x)
