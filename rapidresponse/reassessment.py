"""Re-assessment: signals surface after the first hour; the case follows, and the log says why.

Indicators only accumulate and a suspicion of victimhood, once stated, stays: a re-assessment
raises the response, and lowers it only when the officer says so with a reason
(`--no-suspected-victim`). A case that becomes worrying moves to the playbook for worrying
cases (its pending steps cancelled, the new ones planned from now); a case that stays on its
playbook follows its flags (`follow_flags`): steps whose `when` now holds are planned from this
moment, steps whose `when` no longer holds are cancelled. A decision on societal necessity
follows the same rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rapidresponse import audit
from rapidresponse.assessment import Assessment, assess, case_flags
from rapidresponse.engine import (
    Context,
    _keep_snapshot,
    _note,
    _plan,
    case_playbook,
    get_case,
    queue_stand_downs,
    step_definition,
    stop_chain,
)
from rapidresponse.errors import InputError
from rapidresponse.flags import carried_over
from rapidresponse.playbooks import Playbook
from rapidresponse.states import RUNNING_STEPS, CaseState, Phase, StepState, sql
from rapidresponse.store import dumps
from rapidresponse.timeutil import from_iso


@dataclass
class Reassessment:
    ref: str
    before: dict[str, Any]
    after: Assessment
    flags: tuple[str, ...] = ()
    playbook_changed: str | None = None
    cancelled: list[str] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)


def reassess(
    ctx: Context,
    ref: str,
    *,
    reason: str,
    playbook_for: Callable[[Assessment], Playbook],
    indicators: tuple[str, ...] = (),
    suspected_victim: bool | None = None,
    keep_playbook: bool = False,
) -> Reassessment:
    if not reason.strip():
        raise InputError("say why you re-assess (--reason): the log records who, when and why")
    now = ctx.clock.now()
    case = get_case(ctx.store, ref)
    if case["state"] != CaseState.OPEN:
        raise InputError(f"case {case['ref']} is {case['state']}: only open cases are re-assessed")
    birth = ctx.store.scalar("SELECT birth_date FROM persons WHERE case_id = ?", [case["id"]])
    known = tuple(json.loads(case["indicators"]))
    result = assess(
        birth_date=date.fromisoformat(birth),
        missing_day=from_iso(case["missing_since"]).astimezone(ctx.contacts.timezone).date(),
        indicators=(*known, *indicators),
        placement=case["placement"],
        suspected_victim=_standing_judgement(case, suspected_victim, set(indicators) - set(known)),
        lowering_reason=reason,
    )
    flags = case_flags(carried_over(result.flags, json.loads(case["flags"])), case["societal_necessity"])
    target = None if keep_playbook or not result.worrying or case["worrying"] else playbook_for(result)
    current = case_playbook(case)
    before = {"alarming": bool(case["alarming"]), "worrying": bool(case["worrying"]),
              "grade": case["grade"], "flags": json.loads(case["flags"])}
    outcome = Reassessment(case["ref"], before, result, flags)
    with ctx.store.transaction():
        if get_case(ctx.store, ref)["state"] != CaseState.OPEN:
            raise InputError(f"case {case['ref']} was closed meanwhile")
        ctx.store.conn.execute(
            "UPDATE cases SET alarming = ?, worrying = ?, suspected_victim = ?, victim_judgement = ?,"
            " grade = ?, flags = ?, indicators = ?, reasons = ? WHERE id = ?",
            [int(result.alarming), int(result.worrying), int(result.suspected_victim),
             result.victim_judgement, result.grade, dumps(list(flags)),
             dumps(list(result.indicators)), dumps(list(result.reasons)), case["id"]],
        )
        audit.append(
            ctx.store, at=now, kind="case.assessed", actor=ctx.actor, case=case["ref"],
            detail={**result.as_dict(), "flags": list(flags), "reassessment": True,
                    "before": before, "why": _note(ctx, case["id"], "reassess", reason)},
        )
        if target is not None and target.name != current.name:
            outcome.playbook_changed = target.name
            outcome.cancelled, outcome.planned = _move_to(ctx, case, target, flags)
        else:
            outcome.cancelled, outcome.planned = follow_flags(ctx, case, flags)
    return outcome


def _standing_judgement(
    case: dict[str, Any], said: bool | None, new_indicators: set[str]
) -> bool | None:
    """What the officer said now, else what was said before: a stated suspicion stays; a
    lowered one stays lowered until new signals come in."""
    if said is not None:
        return said
    if case["victim_judgement"] == "stated":
        return True
    if case["victim_judgement"] == "lowered" and not new_indicators:
        return False
    return None


def follow_flags(
    ctx: Context, case: dict[str, Any], flags: tuple[str, ...],
    *, phase: str = Phase.MAIN, before: tuple[str, ...] | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The case's steps follow its flags, from this moment. Call inside a transaction.

    A step whose `when` no longer holds and has not finished is cancelled; a step whose `when`
    now holds and that the case does not have yet is planned from now (steps timed from the
    disappearance keep that base). One rule for re-assessments, decisions and answers changed
    after the return (`phase` after_resolved, with `before` the flags the steps followed).
    """
    now = ctx.clock.now()
    playbook = case_playbook(case)
    rows = ctx.store.all(
        "SELECT * FROM steps WHERE case_id = ? AND phase = ? AND playbook_hash = ?"
        " ORDER BY generation",
        [case["id"], phase, case["playbook_hash"]],
    )
    latest = {r["step_key"]: r for r in rows}  # the last row of each step
    stale = [r for r in latest.values() if r["state"] in RUNNING_STEPS
             and not step_definition(ctx.store, r).applies(flags)]
    cancelled = cancel_steps(ctx, case, stale, "its flags no longer hold")
    _withdraw(ctx, case, list(latest.values()),
              json.loads(case["flags"]) if before is None else list(before), flags)
    pool = playbook.steps if phase == Phase.MAIN else playbook.after_resolved
    wanted = [s.id for s in pool if s.applies(flags)
              and (s.id not in latest or latest[s.id]["state"] == StepState.CANCELLED)]
    if not wanted:
        return cancelled, []
    generation = ctx.store.scalar(
        "SELECT COALESCE(MAX(generation), 0) FROM steps WHERE case_id = ?", [case["id"]]
    )
    if any(key in latest for key in wanted):
        generation += 1  # a step cancelled earlier is wanted again: a new row
    bases = ({"registered": now, "missing": from_iso(case["missing_since"])}
             if phase == Phase.MAIN else {"resolved": now})
    planned = _plan(
        ctx, case["id"], case["ref"], playbook, flags, phase, bases,
        skip={s.id for s in pool if s.id not in wanted},
        generation=generation,
    )
    return cancelled, planned


def _withdraw(ctx: Context, case: dict[str, Any], rows: list[dict[str, Any]],
              before: list[str], after: tuple[str, ...]) -> None:
    """A step whose `when` held and no longer does, finished or not, with a `withdraw_message`:
    every number its alerts reached (or may have) is told, in the playbook's words."""
    for row in rows:
        step = step_definition(ctx.store, row)
        if not step.withdraw_message or not step.applies(before) or step.applies(after):
            continue
        told = queue_stand_downs(ctx, case, step.withdraw_message, step_ids=[row["id"]])
        if told:
            audit.append(ctx.store, at=ctx.clock.now(), kind="step.withdrawn", actor=ctx.actor,
                         case=case["ref"], detail={"step": row["step_key"], "role": row["role"],
                                                   "messages": told})


def cancel_steps(
    ctx: Context, case: dict[str, Any], rows: list[dict[str, Any]], why: str
) -> list[str]:
    """Stop these running steps (and their queued texts), logged with why."""
    if not rows:
        return []
    keys = [r["step_key"] for r in stop_chain(ctx, case["id"], steps=rows, by=ctx.actor)]
    audit.append(ctx.store, at=ctx.clock.now(), kind="steps.cancelled", actor=ctx.actor,
                 case=case["ref"], detail={"steps": keys, "why": why})
    return keys


def _move_to(
    ctx: Context, case: dict[str, Any], target: Playbook, flags: tuple[str, ...]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Cancel what the old playbook still had to do; plan the new one from this moment."""
    now = ctx.clock.now()
    running = ctx.store.all(
        f"SELECT * FROM steps WHERE case_id = ? AND state IN {sql(RUNNING_STEPS)} ORDER BY id",
        [case["id"]],
    )
    cancelled = cancel_steps(ctx, case, running, f"the case moves to playbook {target.name}")
    _keep_snapshot(ctx.store, target)
    ctx.store.conn.execute(
        "UPDATE cases SET playbook = ?, playbook_snapshot = ?, playbook_hash = ? WHERE id = ?",
        [target.name, target.snapshot, target.digest, case["id"]],
    )
    audit.append(
        ctx.store, at=now, kind="case.playbook_changed", actor=ctx.actor, case=case["ref"],
        detail={"from": case["playbook"], "to": target.name, "playbook_hash": target.digest,
                "cancelled_steps": cancelled},
    )
    generation = ctx.store.scalar(
        "SELECT COALESCE(MAX(generation), 0) + 1 FROM steps WHERE case_id = ?", [case["id"]]
    )
    planned = _plan(ctx, case["id"], case["ref"], target, flags, Phase.MAIN,
                    {"registered": now, "missing": from_iso(case["missing_since"])},
                    generation=generation)
    return cancelled, planned
