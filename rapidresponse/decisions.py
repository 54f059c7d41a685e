"""Societal necessity (maatschappelijke noodzaak) is decided by a named professional, not presumed.

The addendum: a worrying situation *can* be reported to the mandated agency (OCJ/VK) on
(suspected) societal necessity. Until someone decides, the worrying playbook keeps asking the
coordinator; `yes` or `suspected` start the steps that ask the agency for contact from the moment
of the decision; `no` cancels those not yet finished, and every number such a step already
texted gets its `withdraw_message` (the request for contact is withdrawn). Who decided and when
is on the case and in the log; the reason is kept as a note (the log records its id only).

A case the rules did not judge worrying may be decided too: the judgement is the professional's,
not the signals' (youth care's verontrusting is wider than a suspicion of victimhood). Its
playbook's text then names the decision, not a worrying situation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rapidresponse.assessment import NECESSITY_DECISIONS, case_flags, check_decision
from rapidresponse.engine import Context, _note, get_case, record_decision
from rapidresponse.errors import InputError
from rapidresponse.reassessment import follow_flags
from rapidresponse.store import dumps


@dataclass
class Decision:
    ref: str
    before: str
    after: str
    cancelled: list[str] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)


def decide(ctx: Context, ref: str, societal_necessity: str, reason: str) -> Decision:
    if societal_necessity.strip().lower() == "undecided":
        raise InputError(f"decide {', '.join(NECESSITY_DECISIONS)}: 'undecided' is where a case starts")
    value = check_decision(societal_necessity, reason)
    with ctx.store.transaction():
        case = get_case(ctx.store, ref)
        if case["state"] != "open":
            raise InputError(f"case {case['ref']} is {case['state']}: decisions are taken on open cases")
        flags = case_flags(json.loads(case["flags"]), value)
        ctx.store.conn.execute(
            "UPDATE cases SET flags = ? WHERE id = ?", [dumps(list(flags)), case["id"]]
        )
        record_decision(ctx, case["id"], case["ref"], value, _note(ctx, case["id"], "decision", reason))
        cancelled, planned = follow_flags(ctx, case, flags)
    return Decision(case["ref"], case["societal_necessity"], value, cancelled, planned)
