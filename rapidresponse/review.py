"""What people look at: a case with its timeline, the open cases, the system's status."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rapidresponse.assessment import KIND_PLURALS, KINDS, UNDECIDED_FLAG
from rapidresponse.clock import FakeClock
from rapidresponse.config import Settings
from rapidresponse.erasure import pending as pending_erasure
from rapidresponse.states import (
    NOT_DELIVERED,
    UNSENT,
    CaseState,
    MessageKind,
    MessageState,
    StepState,
    sql,
)
from rapidresponse.store import Store
from rapidresponse.timeutil import format_duration, from_iso, to_iso

if TYPE_CHECKING:
    from rapidresponse.contacts import Contacts
    from rapidresponse.engine import Upcoming


def case_summary(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "case": case["ref"],
        "state": case["state"],
        "registered_at": case["registered_at"],
        "registered_by": case["registered_by"],
        "missing_since": case["missing_since"],
        "age": case["age"],
        "placement": case["placement"],
        "alarming": bool(case["alarming"]),
        "worrying": bool(case["worrying"]),
        "suspected_victim": bool(case["suspected_victim"]),
        "societal_necessity": case["societal_necessity"],
        "necessity_decided_by": case["necessity_decided_by"],
        "necessity_decided_at": case["necessity_decided_at"],
        "grade": case["grade"],
        "flags": json.loads(case["flags"]),
        "reasons": json.loads(case["reasons"]),
        "indicators": json.loads(case["indicators"]),
        **indicator_kinds(json.loads(case["indicators"])),
        "playbook": case["playbook"],
        "playbook_hash": case["playbook_hash"],
        "ack_code": case["ack_code"],
        "resolved_at": case["resolved_at"],
        "outcome": case["outcome"],
    }


def indicator_kinds(indicators: list[str]) -> dict[str, list[str]]:
    """The case's indicators by kind: police_criteria, red_flags, risk_factors."""
    return {plural.replace(" ", "_"): [n for n in indicators if KINDS.get(n) == kind]
            for kind, plural in KIND_PLURALS.items()}


def steps_of(store: Store, case_id: int) -> list[dict[str, Any]]:
    return store.all(
        "SELECT * FROM steps WHERE case_id = ? ORDER BY phase DESC, due_at, id", [case_id]
    )


def messages_of(store: Store, case_id: int) -> list[dict[str, Any]]:
    return store.all("SELECT * FROM messages WHERE case_id = ? ORDER BY id", [case_id])


def skip_reasons(store: Store, ref: str) -> dict[str, str]:
    """Why each skipped step of a case was skipped: the reason its `step.skipped` event logged
    (the log is where the engine said it; the steps table keeps only the state)."""
    rows = store.conn.execute(
        "SELECT json_extract(detail, '$.step'), json_extract(detail, '$.reason') FROM events"
        " WHERE case_ref = ? AND kind = 'step.skipped' ORDER BY seq", [ref]).fetchall()
    return {step: reason for step, reason in rows}


def step_view(store: Store, case: dict[str, Any], now: datetime,
              contacts: Contacts | None = None) -> list[dict[str, Any]]:
    """Each step with who was messaged when, and what comes next: with the contacts, what the
    engine will do at a waiting step's deadline (call, next contact, escalate, exhausted)."""
    from rapidresponse.engine import Context, step_definition, upcoming

    messages = messages_of(store, case["id"])
    skipped = skip_reasons(store, case["ref"])
    views = []
    for row in steps_of(store, case["id"]):
        step = step_definition(store, row)
        sent = [
            {"role": m["role"], "contact": m["contact"], "to": m["to_number"],
             "state": m["state"], "at": m["sent_at"] or m["created_at"],
             "error": m["error_text"], "possible_duplicate": bool(m["possible_duplicate"]),
             "channel": m["channel"]}
            for m in messages if m["step_id"] == row["id"]
        ]
        nxt = None
        if row["state"] == StepState.PENDING:
            nxt = {"what": "fires", "at": row["due_at"]}
        elif row["state"] == StepState.ACTIVE and row["ack_deadline"]:
            then = upcoming(Context(store, FakeClock(now), contacts), row) if contacts is not None else None
            nxt = {"what": "moves on if not acknowledged", "at": row["ack_deadline"]}
            if then is not None:
                nxt = {**nxt, **next_words(then)}
        views.append(
            {
                "id": row["step_key"], "phase": row["phase"], "role": row["role"],
                "due_at": row["due_at"], "state": row["state"], "round": row["round"] + 1,
                "escalated": bool(row["escalated"]), "escalate_to": step.escalate_to,
                "ack_within": step.ack_within.total_seconds() if step.ack_within else None,
                "finished_at": row["finished_at"], "finished_by": row["finished_by"],
                "overdue": row["state"] == StepState.PENDING and from_iso(row["due_at"]) < now,
                "skipped_because": (skipped.get(row["step_key"])
                                    if row["state"] == StepState.SKIPPED else None),
                "messages": sent, "next": nxt,
            }
        )
    return views


def next_words(up: Upcoming) -> dict[str, Any]:
    """`Upcoming` in words for `show`, and in fields for --json; after a call, what follows it."""
    words: dict[str, Any] = {"what": f"{_deed(up)} if not acknowledged", "action": up.action,
                             "role": up.role, "contacts": list(up.contacts), "then": None}
    if up.then is not None and up.wait is not None:
        words["then"] = {"what": f"{_deed(up.then)} if the call is not acknowledged within"
                                 f" {format_duration(up.wait)}",
                         "after_seconds": up.wait.total_seconds(), "action": up.then.action,
                         "role": up.then.role, "contacts": list(up.then.contacts)}
    return words


def _deed(up: Upcoming) -> str:
    names = ", ".join(up.contacts)
    if up.action == "call":
        return f"calls {names} ({up.role})"
    if up.action == "text":
        again = f" again (round {up.round})" if up.round else ""
        return f"texts {names} ({up.role}){again}"
    if up.action == "escalate":
        return f"escalates to {up.role} ({names})"
    if up.action == "skip":
        return f"is skipped (the case names nobody for {up.role})"
    return "is exhausted (nobody left to try)"


def show_case(store: Store, ref: str, now: datetime, contacts: Contacts | None = None) -> dict[str, Any]:
    from rapidresponse.engine import get_case

    case = get_case(store, ref)
    person = store.one("SELECT * FROM persons WHERE case_id = ?", [case["id"]])
    notes = store.all(
        "SELECT at, author, kind, text FROM notes WHERE case_id = ? ORDER BY id", [case["id"]]
    )
    view = case_summary(case)
    view["person"] = (
        {"alias": person["alias"], "name": person["full_name"],
         "birth_date": person["birth_date"], "last_seen": person["last_seen"]}
        if person
        else None
    )
    view["notes"] = notes
    from rapidresponse import audit, casecontacts  # here: listing cases needs neither

    view["case_contacts"] = casecontacts.shown(casecontacts.of_case(store, case["id"]))
    view["followups"] = followups_of(store, case["id"], now)
    view["profile"] = person and person["profile_id"] and store.scalar(
        "SELECT key FROM profiles WHERE id = ?", [person["profile_id"]])
    view["steps"] = step_view(store, case, now, contacts)
    view["events"] = list(audit.events(store, case["ref"]))
    return view


#: Most urgent first: what nobody answered, then the grade, then what is waiting, then the longest
#: missing. A grade this list does not know sorts after these.
GRADE_ORDER = ("HIGH", "MEDIUM", "LOW")


def list_cases(
    store: Store, include_closed: bool = False, limit: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The cases an officer should look at first, and how many there are in all.

    Only the columns the list shows are read, so 10,000 open cases stay quick to list.
    """
    where = "" if include_closed else "WHERE c.state = 'open'"
    grade_rank = " ".join(f"WHEN '{g}' THEN {i}" for i, g in enumerate(GRADE_ORDER))
    rows = store.all(
        "SELECT * FROM (SELECT c.id, c.ref, c.state, c.grade, c.age, c.missing_since,"
        " c.registered_at, c.outcome,"
        " (SELECT COUNT(*) FROM steps s WHERE s.state = 'active' AND s.case_id = c.id) AS waiting,"
        " (SELECT COUNT(*) FROM steps s WHERE s.state = 'exhausted' AND s.case_id = c.id) AS exhausted"
        f" FROM cases c {where})"
        " ORDER BY state = 'open' DESC, exhausted > 0 DESC,"
        f" CASE grade {grade_rank} ELSE {len(GRADE_ORDER)} END,"
        " waiting > 0 DESC, missing_since, id"
        + (" LIMIT ?" if limit is not None else ""),
        [limit] if limit is not None else [],
    )
    # The aliases of the listed cases only: reading 10,000 persons to show 20 is most of the cost.
    ids = [r["id"] for r in rows]
    aliases = {r["case_id"]: r["alias"] for r in store.all(
        f"SELECT case_id, alias FROM persons WHERE case_id IN ({','.join('?' * len(ids))})", ids
    )} if ids else {}
    total = store.scalar(f"SELECT COUNT(*) FROM cases c {where}")
    listed = [
        {"case": r["ref"], "state": r["state"], "grade": r["grade"], "age": r["age"],
         "missing_since": r["missing_since"], "registered_at": r["registered_at"],
         "outcome": r["outcome"], "alias": aliases.get(r["id"]), "waiting": r["waiting"],
         "exhausted": r["exhausted"]}
        for r in rows
    ]
    return listed, total


def open_refs(store: Store) -> list[str]:
    """The open cases' references, newest first: what a shell completes a CASE argument to."""
    return [r["ref"] for r in store.all("SELECT ref FROM cases WHERE state = ? ORDER BY id DESC",
                                        [CaseState.OPEN])]


def status(
    store: Store, now: datetime, settings: Settings, contacts_problem: str | None = None
) -> dict[str, Any]:
    """What needs a human now: a dead daemon, steps nobody answered, steps overdue, texts that
    do not get through, failed stand-downs, a broken contacts file."""
    from rapidresponse.daemon import heartbeat

    beat = heartbeat(store, now, settings)
    stamp = to_iso(now)
    followups_overdue = overdue_followups(store, now)
    retention_due = past_retention(store, now, settings.retention_days)
    open_cases = store.scalar("SELECT COUNT(*) FROM cases WHERE state = ?", [CaseState.OPEN])
    waiting = store.all(
        "SELECT c.ref AS case_ref, s.step_key, s.role, s.ack_deadline, s.escalated FROM steps s"
        " JOIN cases c ON c.id = s.case_id WHERE s.state = ? AND s.ack_deadline IS NOT NULL"
        " ORDER BY s.ack_deadline",
        [StepState.ACTIVE],
    )
    exhausted = store.all(
        "SELECT c.ref AS case_ref, s.step_key, s.role, s.finished_at FROM steps s"
        " JOIN cases c ON c.id = s.case_id WHERE s.state = ? AND c.state = ?"
        " ORDER BY s.finished_at",
        [StepState.EXHAUSTED, CaseState.OPEN],
    )
    overdue = store.all(
        "SELECT c.ref AS case_ref, s.step_key, s.role, s.due_at FROM steps s"
        " JOIN cases c ON c.id = s.case_id WHERE s.state = ? AND s.due_at <= ?"
        " ORDER BY s.due_at",
        [StepState.PENDING, stamp],
    )
    failed_roles = store.all(
        "SELECT c.ref AS case_ref, m.role, COUNT(*) AS failed FROM messages m"
        " JOIN cases c ON c.id = m.case_id WHERE c.state = ?"
        f" AND m.state IN {sql(NOT_DELIVERED)} GROUP BY c.ref, m.role",
        [CaseState.OPEN],
    )
    queued = store.scalar(f"SELECT COUNT(*) FROM messages WHERE state IN {sql(UNSENT)}")
    # Texts the provider keeps refusing for now (outage, rate limit, wrong credentials).
    stuck_messages = store.all(
        "SELECT c.ref AS case_ref, m.role, m.contact, m.attempts, m.error_text, m.created_at"
        " FROM messages m LEFT JOIN cases c ON c.id = m.case_id"
        " WHERE m.state = ? AND m.attempts >= ? ORDER BY m.created_at",
        [MessageState.QUEUED, settings.max_attempts],
    )
    # A stand-down that did not arrive leaves a contact searching for a minor who was found.
    stand_down_failed = store.all(
        "SELECT c.ref AS case_ref, m.role, m.contact, m.to_number, m.error_text FROM messages m"
        " JOIN cases c ON c.id = m.case_id WHERE m.kind = ?"
        f" AND m.state IN {sql(NOT_DELIVERED)} AND m.final_at >= ? ORDER BY m.id",
        [MessageKind.STAND_DOWN, to_iso(now - timedelta(days=7))],
    )
    undecided = undecided_cases(store, now)
    erasure_pending = pending_erasure(store)  # old copies of purged data in the WAL
    return {
        "daemon": beat.as_dict(),
        "open_cases": open_cases,
        "undecided_necessity": undecided,
        "waiting_for_ack": waiting,
        "exhausted": exhausted,
        "overdue": overdue,
        "failed_messages": failed_roles,
        "messages_in_queue": queued,
        "not_getting_through": stuck_messages,
        "stand_down_failed": stand_down_failed,
        "followups_overdue": followups_overdue,
        "past_retention": retention_due,  # a reminder, not an alarm: 'purge --due'
        "retention_days": settings.retention_days,
        "contacts_problem": contacts_problem,
        "erasure_pending": erasure_pending,
        "needs_attention": (not beat.alive) or beat.stuck or bool(exhausted) or bool(overdue)
        or bool(stuck_messages) or bool(stand_down_failed) or bool(contacts_problem)
        or bool(undecided) or bool(followups_overdue) or erasure_pending,
    }


#: How long a worrying case may wait for a decision on societal necessity when its playbook
#: has no step that asks for one (a playbook made before decisions existed).
DECISION_WAIT = timedelta(hours=1)


def undecided_cases(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Open worrying cases whose societal necessity nobody decided within the time their
    playbook gives the coordinator (the asking step's time plus its `ack_within`)."""
    from rapidresponse.engine import case_playbook

    rows = store.all(
        "SELECT * FROM cases WHERE state = 'open' AND worrying = 1"
        " AND societal_necessity = 'undecided' ORDER BY registered_at"
    )
    late = []
    for case in rows:
        allowed = decision_wait(case_playbook(case))
        since = from_iso(case["registered_at"])
        if now - since >= allowed:
            late.append({"case_ref": case["ref"], "registered_at": case["registered_at"],
                         "decision_due": to_iso(since + allowed)})
    return late


def decision_wait(playbook: Any) -> timedelta:
    """The time the playbook's asking step gives the coordinator (its `at` + `ack_within`)."""
    asking = [s for s in playbook.steps if UNDECIDED_FLAG in s.when and s.base == "registered"]
    if not asking:
        return DECISION_WAIT
    return min(s.at + (s.ack_within or timedelta(0)) for s in asking)


def detail_text(detail: dict[str, Any]) -> str:
    return json.dumps(detail, ensure_ascii=False, sort_keys=True)


def followups_of(store: Store, case_id: int, now: datetime) -> list[dict[str, Any]]:
    from rapidresponse.followup import of_case  # it loads the engine: only when asked

    return of_case(store, case_id, now)


def overdue_followups(store: Store, now: datetime) -> list[dict[str, Any]]:
    from rapidresponse.followup import overdue

    return overdue(store, now)


def past_retention(store: Store, now: datetime, days: int) -> list[str]:
    """The resolved cases kept longer than the retention period after their last follow-up."""
    from rapidresponse.retention import past_retention as select

    return [d.ref for d in select(store, now, days)]
