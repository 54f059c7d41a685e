"""Re-assessment: signals surface after the first hour; the case follows, and the log says why.

Indicators only accumulate and a suspicion of victimhood, once stated, stays: a re-assessment
can raise the response, never quietly lower it. A case that becomes worrying moves to the
playbook for worrying cases (its pending steps cancelled, the new ones planned from now); a case
that stays on its playbook gets the steps whose `when` flags now hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rapidresponse import audit
from rapidresponse.assessment import Assessment, assess
from rapidresponse.engine import (
    SYSTEM,
    Context,
    _keep_snapshot,
    _note,
    _plan,
    case_playbook,
    get_case,
    stop_chain,
)
from rapidresponse.errors import InputError
from rapidresponse.playbooks import Playbook
from rapidresponse.states import RUNNING_STEPS, CaseState, Phase, sql
from rapidresponse.store import dumps
from rapidresponse.timeutil import from_iso


@dataclass
class Reassessment:
    ref: str
    before: dict[str, Any]
    after: Assessment
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
    suspected_victim: bool = False,
    societal_necessity: bool | None = None,
    keep_playbook: bool = False,
) -> Reassessment:
    if not reason.strip():
        raise InputError("say why you re-assess (--reason): the log records who, when and why")
    now = ctx.clock.now()
    case = get_case(ctx.store, ref)
    if case["state"] != CaseState.OPEN:
        raise InputError(f"case {case['ref']} is {case['state']}: only open cases are re-assessed")
    birth = ctx.store.scalar("SELECT birth_date FROM persons WHERE case_id = ?", [case["id"]])
    result = assess(
        birth_date=date.fromisoformat(birth),
        missing_day=from_iso(case["missing_since"]).astimezone(ctx.contacts.timezone).date(),
        indicators=(*json.loads(case["indicators"]), *indicators),
        suspected_victim=suspected_victim or bool(case["suspected_victim"]),
        societal_necessity=societal_necessity,
    )
    target = None if keep_playbook or not result.worrying or case["worrying"] else playbook_for(result)
    current = case_playbook(case)
    before = {"worrying": bool(case["worrying"]), "grade": case["grade"],
              "flags": json.loads(case["flags"])}
    outcome = Reassessment(case["ref"], before, result)
    with ctx.store.transaction():
        if get_case(ctx.store, ref)["state"] != CaseState.OPEN:
            raise InputError(f"case {case['ref']} was closed meanwhile")
        ctx.store.conn.execute(
            "UPDATE cases SET worrying = ?, suspected_victim = ?, societal_necessity = ?, grade = ?,"
            " flags = ?, indicators = ?, reasons = ? WHERE id = ?",
            [int(result.worrying), int(result.suspected_victim), int(result.societal_necessity),
             result.grade, dumps(list(result.flags)), dumps(list(result.indicators)),
             dumps(list(result.reasons)), case["id"]],
        )
        audit.append(
            ctx.store, at=now, kind="case.assessed", actor=ctx.actor, case=case["ref"],
            detail={**result.as_dict(), "reassessment": True, "before": before,
                    "why": _note(ctx, case["id"], "reassess", reason)},
        )
        if target is not None and target.name != current.name:
            outcome.playbook_changed = target.name
            outcome.cancelled, outcome.planned = _move_to(ctx, case, target, result)
        else:
            existing = {r["step_key"] for r in ctx.store.all(
                "SELECT step_key FROM steps WHERE case_id = ? AND phase = ?", [case["id"], Phase.MAIN])}
            outcome.planned = _plan(
                ctx, case["id"], case["ref"], current, result.flags, Phase.MAIN,
                {"registered": from_iso(case["registered_at"]),
                 "missing": from_iso(case["missing_since"])},
                skip=existing,
            )
    return outcome


def _move_to(
    ctx: Context, case: dict[str, Any], target: Playbook, result: Assessment
) -> tuple[list[str], list[dict[str, Any]]]:
    """Cancel what the old playbook still had to do; plan the new one from this moment."""
    now = ctx.clock.now()
    running = ctx.store.all(
        f"SELECT * FROM steps WHERE case_id = ? AND state IN {sql(RUNNING_STEPS)} ORDER BY id",
        [case["id"]],
    )
    cancelled = [r["step_key"] for r in stop_chain(ctx, case["id"], steps=running, by=SYSTEM)]
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
    planned = _plan(ctx, case["id"], case["ref"], target, result.flags, Phase.MAIN,
                    {"registered": now, "missing": from_iso(case["missing_since"])},
                    generation=generation)
    return cancelled, planned
