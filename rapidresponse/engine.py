"""The escalation state machine: register, plan, fire due steps, time out, acknowledge, resolve.

No scheduler state lives here: every function reads the rows, decides, and writes rows and audit
events inside one `BEGIN IMMEDIATE` transaction. Any process can run any function at any time,
and a process that dies loses nothing.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from rapidresponse import audit, casecontacts
from rapidresponse.assessment import (
    GRADE_WORDS,
    NECESSITY_AT_REGISTRATION,
    PLACEMENT_WORDS,
    Assessment,
    assess,
    case_flags,
    check_decision,
)
from rapidresponse.clock import Clock
from rapidresponse.contacts import Contact, Contacts, Role
from rapidresponse.errors import InputError
from rapidresponse.flags import REPEAT_EPISODES, with_flag
from rapidresponse.playbooks import Playbook, Step, from_snapshot, render
from rapidresponse.refs import case_ref
from rapidresponse.states import (
    ACCEPTED,
    NOT_DELIVERED,
    OUTCOMES,
    RETURNED_OUTCOMES,
    RUNNING_STEPS,
    STOPPED_STEPS,
    UNSENT,
    CaseState,
    Channel,
    MessageKind,
    MessageState,
    Phase,
    StepState,
    sql,
)
from rapidresponse.store import Store, dumps
from rapidresponse.timeutil import format_duration, from_iso, to_iso
from rapidresponse.vocab import Vocabulary

SYSTEM = "system"
#: Dutch as the field says it; never `teruggevonden` for a withdrawn report (domain.md).
OUTCOME_WORDS = Vocabulary.of("outcome", OUTCOMES, aliases={
    "gevonden": "found", "teruggevonden": "found", "teruggekeerd": "returned", "terug": "returned",
    "ingetrokken": "withdrawn", "andere": "other", "ander": "other",
})
BATCH = 200


@dataclass
class Context:
    """What every engine call needs: the rows, the time, who is on duty, and who acts."""

    store: Store
    clock: Clock
    contacts: Contacts
    actor: str = SYSTEM


@dataclass(frozen=True)
class Person:
    """The minor. These values go to the `persons` table and nowhere else."""

    alias: str
    birth_date: date
    last_seen: str
    full_name: str | None = None
    profile_id: int | None = None  # registered from a pre-registered profile


@dataclass
class Registration:
    ref: str
    case_id: int
    assessment: Assessment
    playbook: Playbook
    ack_code: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    earlier_episodes: list[str] = field(default_factory=list)  # every earlier one, oldest first
    recent_episodes: list[str] = field(default_factory=list)  # those in the last 30 days


# ---------------------------------------------------------------- registration


def register(
    ctx: Context,
    *,
    person: Person,
    missing_since: datetime,
    playbook: Playbook | None,
    playbooks_for: Any = None,
    placement: str = "home",
    indicators: tuple[str, ...] = (),
    suspected_victim: bool | None = None,
    societal_necessity: str = NECESSITY_AT_REGISTRATION,
    reason: str | None = None,
    new_episode: bool = False,
    case_contacts: Mapping[str, str] | None = None,
) -> Registration:
    """Write the case, its person, its assessment and its planned steps in one transaction.

    `playbooks_for(assessment)` picks the playbook when none is given, so the choice can follow
    the assessment (worrying-situation or missing-minor). `reason` says why the officer decided
    on societal necessity or lowered a suspicion the signals raised; it is kept as a note.
    A minor who already has an open case is refused unless `new_episode`. `case_contacts` are
    the E.164 numbers of the carer, consulent and guardian (`casecontacts.parse_numbers`); the
    third episode in 30 days adds `repeat-runaway` and the flag `repeat-episodes`.
    """
    now = ctx.clock.now()
    _check_person(person)
    if missing_since > now:
        raise InputError("the minor cannot have gone missing in the future (check --missing-since)")
    placement = PLACEMENT_WORDS.pick(placement)
    tz = ctx.contacts.timezone
    necessity = check_decision(societal_necessity, reason)
    year = now.astimezone(tz).year
    with ctx.store.transaction():
        db = ctx.store.db
        if not new_episode:
            refuse_second_open_case(ctx.store, person)
        earlier = earlier_episodes(ctx.store, person, missing_since)
        recent = recent_episodes(earlier, missing_since)
        repeat_reason = repeat_rule(recent)
        result = assess(
            birth_date=person.birth_date,
            missing_day=missing_since.astimezone(tz).date(),
            indicators=(*indicators, *(["repeat-runaway"] if repeat_reason else [])),
            placement=placement,
            suspected_victim=suspected_victim,
            lowering_reason=reason,
        )
        if repeat_reason:
            result = with_flag(result, REPEAT_EPISODES, repeat_reason)
        flags = case_flags(result.flags, necessity)
        if playbook is None:
            playbook = playbooks_for(result)
        assert playbook is not None
        seq = (ctx.store.scalar("SELECT MAX(seq) FROM cases WHERE year = ?", [year]) or 0) + 1
        ref = case_ref(year, seq)
        ack_code = _new_ack_code(ctx.store)
        case_id = db["cases"].insert(
            {
                "ref": ref, "year": year, "seq": seq, "state": CaseState.OPEN,
                "registered_at": to_iso(now), "registered_by": ctx.actor,
                "missing_since": to_iso(missing_since), "age": result.age,
                "placement": placement, "alarming": int(result.alarming),
                "worrying": int(result.worrying),
                "suspected_victim": int(result.suspected_victim),
                "victim_judgement": result.victim_judgement,
                "societal_necessity": necessity, "grade": result.grade,
                "flags": dumps(list(flags)), "indicators": dumps(list(result.indicators)),
                "reasons": dumps(list(result.reasons)), "playbook": playbook.name,
                "playbook_snapshot": playbook.snapshot, "playbook_hash": playbook.digest,
                "ack_code": ack_code,
            }
        ).last_pk
        db["persons"].insert(
            {
                "case_id": case_id,
                "alias": person.alias,
                "full_name": person.full_name,
                "birth_date": person.birth_date.isoformat(),
                "last_seen": person.last_seen,
                "profile_id": person.profile_id,
            }
        )
        casecontacts.save(ctx.store, case_contacts or {}, case_id=int(case_id))
        profile_key = None
        if person.profile_id is not None:
            profile_key = ctx.store.scalar("SELECT key FROM profiles WHERE id = ?", [person.profile_id])
            ctx.store.conn.execute("UPDATE profiles SET used_at = ? WHERE id = ?",
                                   [to_iso(now), person.profile_id])
        audit.append(
            ctx.store, at=now, kind="case.registered", actor=ctx.actor, case=ref,
            detail={
                "playbook": playbook.name, "playbook_hash": playbook.digest,
                "missing_since": to_iso(missing_since), "placement": placement,
                "earlier_episodes": [e["ref"] for e in earlier],
                "episodes_in_30_days": len(recent) + 1, "profile": profile_key,
                "case_contacts": sorted(case_contacts or {}),
            },
        )
        why = _note(ctx, int(case_id), "register", reason) if reason and reason.strip() else None
        audit.append(
            ctx.store, at=now, kind="case.assessed", actor=ctx.actor, case=ref,
            detail={**result.as_dict(), "flags": list(flags),
                    **({"why": why} if result.victim_judgement == "lowered" else {})},
        )
        if necessity != NECESSITY_AT_REGISTRATION:
            record_decision(ctx, int(case_id), ref, necessity, why)
        steps = _plan(ctx, case_id, ref, playbook, flags, Phase.MAIN,
                      {"registered": now, "missing": missing_since})
    return Registration(ref, int(case_id), result, playbook, ack_code, steps,
                        [e["ref"] for e in earlier], recent)


def record_decision(
    ctx: Context, case_id: int, ref: str, necessity: str, why: dict[str, Any] | None
) -> None:
    """Who decided on societal necessity, and when; the reason is a note, the log has its id."""
    now = ctx.clock.now()
    ctx.store.conn.execute(
        "UPDATE cases SET societal_necessity = ?, necessity_decided_by = ?, necessity_decided_at = ?"
        " WHERE id = ?",
        [necessity, ctx.actor, to_iso(now), case_id],
    )
    audit.append(
        ctx.store, at=now, kind="case.decided", actor=ctx.actor, case=ref,
        detail={"societal_necessity": necessity, "why": why},
    )


EPISODE_WINDOW = timedelta(days=30)
MULTI_AGENCY_EPISODES = 3


def earlier_episodes(store: Store, person: Person, missing_since: datetime) -> list[dict[str, Any]]:
    """Every earlier episode of the same minor (ref, missing_since), oldest first. A purged
    case is no longer linked: its person is gone."""
    same, params = same_minor(person)
    return store.all(
        f"SELECT c.ref, c.missing_since FROM cases c JOIN persons p ON p.case_id = c.id WHERE {same}"
        " AND c.missing_since <= ? ORDER BY c.missing_since, c.id",
        [*params, to_iso(missing_since)],
    )


def recent_episodes(earlier: list[dict[str, Any]], missing_since: datetime) -> list[str]:
    """The refs of the earlier episodes that went missing in the 30 days up to this one."""
    since = to_iso(missing_since - EPISODE_WINDOW)
    return [e["ref"] for e in earlier if e["missing_since"] >= since]


def repeat_rule(recent: list[str]) -> str | None:
    """The reason to add `repeat-runaway` and plan a casusoverleg, or None: the third episode
    in 30 days (domain.md; art. 458ter allows the meeting)."""
    episodes = len(recent) + 1
    if episodes < MULTI_AGENCY_EPISODES:
        return None
    return (f"{episodes} episodes in 30 days (earlier: {', '.join(recent)}): repeat-runaway added"
            " automatically, and a multi-agency meeting (casusoverleg) is planned")


def same_minor(person: Person) -> tuple[str, list[Any]]:
    """The rule for "the same minor", as SQL on `persons p`: the same alias (case and spaces
    around it aside) and birth date, or an episode of the same pre-registered profile (whose
    alias may have been changed since)."""
    rule = "(p.birth_date = ? AND lower(trim(p.alias)) = lower(trim(?)))"
    params: list[Any] = [person.birth_date.isoformat(), person.alias]
    if person.profile_id is not None:
        rule = f"({rule} OR p.profile_id = ?)"
        params.append(person.profile_id)
    return rule, params


def refuse_second_open_case(store: Store, person: Person) -> None:
    """One open case per minor: a second officer registering the same child is told which
    case is open (by reference, never the minor). Call inside the registering transaction, so
    two concurrent registrations cannot both pass."""
    same, params = same_minor(person)
    ref = store.scalar(
        f"SELECT c.ref FROM cases c JOIN persons p ON p.case_id = c.id WHERE {same}"
        f" AND c.state = '{CaseState.OPEN}' ORDER BY c.id LIMIT 1",
        params,
    )
    if ref:
        raise InputError(
            f"this minor already has an open case, {ref}: add to it (reassess, note), or"
            " register with --new-episode if this is truly a new episode"
        )


def _check_person(person: Person) -> None:
    if not person.alias.strip():
        raise InputError("--alias is empty: give the name the team uses for the minor")
    if not person.last_seen.strip():
        raise InputError("--last-seen is empty: say where the minor was last seen")


def _new_ack_code(store: Store) -> str:
    """Four digits, easy to type on a phone; unique among cases that can still be acked."""
    for digits in (4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 8):
        code = f"{secrets.randbelow(10**digits):0{digits}d}"
        taken = store.scalar(
            f"SELECT 1 FROM cases WHERE ack_code = ? AND (state = '{CaseState.OPEN}' OR id IN"
            f" (SELECT case_id FROM steps WHERE state IN {sql(RUNNING_STEPS)}))",
            [code],
        )
        if not taken:
            return code
    raise RuntimeError("no free acknowledgement code")


def _plan(
    ctx: Context,
    case_id: int,
    ref: str,
    playbook: Playbook,
    flags: tuple[str, ...] | list[str],
    phase: str,
    bases: dict[str, datetime],
    skip: set[str] | None = None,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    planned = []
    _keep_snapshot(ctx.store, playbook)
    if generation is None:
        generation = ctx.store.scalar(
            "SELECT COALESCE(MAX(generation), 0) FROM steps WHERE case_id = ?", [case_id]
        )
    pool = playbook.steps if phase == Phase.MAIN else playbook.after_resolved
    for step in pool:
        if not step.applies(flags) or (skip and step.id in skip):
            continue
        due = bases[step.base] + step.at
        ctx.store.db["steps"].insert(
            {"case_id": case_id, "phase": phase, "step_key": step.id, "role": step.role,
             "playbook_hash": playbook.digest, "generation": generation,
             "due_at": to_iso(due), "state": StepState.PENDING}
        )
        planned.append({"id": step.id, "role": step.role, "due_at": to_iso(due)})
    audit.append(
        ctx.store, at=ctx.clock.now(), kind="steps.planned", actor=ctx.actor, case=ref,
        detail={"phase": phase, "steps": planned},
    )
    return planned


# ---------------------------------------------------------------- lookups

_playbook_cache: dict[str, Playbook] = {}


def case_playbook(case: dict[str, Any]) -> Playbook:
    """The playbook the case runs now (its snapshot, never the file)."""
    digest = case["playbook_hash"]
    if digest not in _playbook_cache:
        _playbook_cache[digest] = from_snapshot(case["playbook_snapshot"], case["ref"])
    return _playbook_cache[digest]


def _keep_snapshot(store: Store, playbook: Playbook) -> None:
    store.conn.execute(
        "INSERT OR IGNORE INTO snapshots (hash, name, body) VALUES (?, ?, ?)",
        [playbook.digest, playbook.name, playbook.snapshot],
    )


def step_definition(store: Store, step_row: dict[str, Any]) -> Step:
    """The definition a step row was planned from, even after its case changed playbook."""
    digest = step_row["playbook_hash"]
    if digest not in _playbook_cache:
        body = store.scalar("SELECT body FROM snapshots WHERE hash = ?", [digest])
        _playbook_cache[digest] = from_snapshot(body, f"snapshot {digest[:12]}")
    return _playbook_cache[digest].step(step_row["phase"], step_row["step_key"])


_REF = re.compile(r"^RR-\d{4}-\d{4,}$")


def get_case(store: Store, ref: str) -> dict[str, Any]:
    wanted = ref.strip().upper()
    case = store.one("SELECT * FROM cases WHERE ref = ?", [wanted])
    if case is None:
        if _REF.match(wanted):
            raise InputError(f"unknown case '{wanted}'")
        # Not shaped like a reference: perhaps a name typed in the wrong place; don't repeat it.
        raise InputError("unknown case: give its reference, like RR-2026-0001 (see 'rapidresponse cases')")
    return case


def template_values(ctx: Context, case: dict[str, Any], role: str) -> dict[str, Any]:
    role_obj = ctx.contacts.roles.get(role)
    title = role_obj.title if role_obj else casecontacts.title(role) if casecontacts.is_case_role(
        role) else role
    return {
        "case": case["ref"],
        "grade": GRADE_WORDS.get(case["grade"], case["grade"]),
        "age": case["age"],
        "ack": case["ack_code"],
        "callback": ctx.contacts.callback_display,
        "missing_for": format_duration(ctx.clock.now() - from_iso(case["missing_since"])),
        "role_title": title,
    }


# ---------------------------------------------------------------- stages


@dataclass(frozen=True)
class Stage:
    """One link of a step's chain: a contact of the role, all of it, or the escalation role."""

    role: str
    members: tuple[Contact, ...]
    escalation: bool


def chain(ctx: Context, step: Step, case_id: int | None = None) -> list[Stage]:
    """The stages of a step now: its role in roster order (who is on duty first), then the
    escalation role; a case role resolves to the number on the case (none without one)."""
    now = ctx.clock.now()
    if casecontacts.is_case_role(step.role):
        members = casecontacts.members(ctx.store, case_id, step.role) if case_id is not None else ()
    else:
        members = ctx.contacts.chain_order(step.role, now)
    stages: list[Stage] = []
    if step.notify == "all":
        stages.append(Stage(step.role, members, False))
    else:
        stages.extend(Stage(step.role, (c,), False) for c in members)
    if step.escalate_to:
        target = ctx.contacts.chain_order(step.escalate_to, now)
        stages.append(Stage(step.escalate_to, target, True))
    return stages


def _recipients(ctx: Context, stage: Stage, now: datetime) -> tuple[Contact, ...]:
    """Members on duty; if nobody of the whole role is on duty, everybody (a miss is worse)."""
    if casecontacts.is_case_role(stage.role):
        return stage.members  # the people around the minor keep no duty hours
    on_duty_in_role = ctx.contacts.on_duty(stage.role, now)
    return tuple(c for c in stage.members if c in on_duty_in_role)


# ---------------------------------------------------------------- firing due steps


def activate_due(ctx: Context, limit: int = BATCH) -> int:
    """Fire every pending step whose time has come; an overdue one fires now, logged late."""
    now = ctx.clock.now()
    due = ctx.store.all(
        "SELECT id FROM steps WHERE state = ? AND due_at <= ? ORDER BY due_at, id LIMIT ?",
        [StepState.PENDING, to_iso(now), limit],
    )
    fired = 0
    for row in due:
        with ctx.store.transaction():
            step_row = ctx.store.one(
                "SELECT * FROM steps WHERE id = ? AND state = ?", [row["id"], StepState.PENDING]
            )
            if step_row is None:
                continue  # another process fired it
            case = ctx.store.one("SELECT * FROM cases WHERE id = ?", [step_row["case_id"]])
            assert case is not None
            lateness = (now - from_iso(step_row["due_at"])).total_seconds()
            ctx.store.conn.execute(
                "UPDATE steps SET state = ?, activated_at = ? WHERE id = ?",
                [StepState.ACTIVE, to_iso(now), step_row["id"]],
            )
            audit.append(
                ctx.store, at=now, kind="step.due", actor=SYSTEM, case=case["ref"],
                detail={"step": step_row["step_key"], "role": step_row["role"],
                        "due_at": step_row["due_at"], "late_seconds": round(lateness, 3)},
            )
            _enter_stage(ctx, case, step_row, 0, 0, reason=None)
            fired += 1
    return fired


def _enter_stage(
    ctx: Context,
    case: dict[str, Any],
    step_row: dict[str, Any],
    round_: int,
    position: int,
    reason: str | None,
) -> None:
    """Move a step to the next stage that has someone to message, and queue its alerts;
    past the last stage of the last round, the step is exhausted."""
    now = ctx.clock.now()
    step = step_definition(ctx.store, step_row)
    if casecontacts.is_case_role(step.role) and not casecontacts.members(ctx.store, case["id"], step.role):
        _skip(ctx, case, step_row, f"the case names no {casecontacts.kind_of(step.role)}")
        return
    found, passed = _find_stage(ctx, case, step_row, step, round_, position)
    for kind, detail in passed:  # the rounds begun and the contacts skipped on the way
        audit.append(ctx.store, at=now, kind=kind, actor=SYSTEM, case=case["ref"], detail=detail)
    if found is None:
        _exhaust(ctx, case, step_row, step, reason)
        return
    round_, position, stage, recipients = found
    deadline = to_iso(now + _first_wait(step, stage.role, recipients, ctx)) if step.ack_within else None
    ctx.store.conn.execute(
        "UPDATE steps SET state = ?, round = ?, position = ?, stage_started_at = ?,"
        " ack_deadline = ?, escalated = escalated OR ? WHERE id = ?",
        [StepState.ACTIVE, round_, position, to_iso(now), deadline, int(stage.escalation),
         step_row["id"]],
    )
    if reason is not None:
        kind = "step.escalated" if stage.escalation else "step.next_contact"
        audit.append(
            ctx.store, at=now, kind=kind, actor=SYSTEM, case=case["ref"],
            detail={"step": step.id, "reason": reason, "to_role": stage.role,
                    "to": [c.name for c in recipients], "round": round_ + 1},
        )
    body = render(step.message, template_values(ctx, case, stage.role))
    for contact in recipients:
        queue_message(
            ctx, case_id=case["id"], step_id=step_row["id"], kind=MessageKind.ALERT,
            role=stage.role, contact=contact, body=body, round_=round_, position=position,
        )
    if step.call:
        _queue_calls(ctx, case, step_row, step, stage.role, recipients, round_, position)


# ---------------------------------------------------------------- calls


def _first_wait(step: Step, role: str, recipients: tuple[Contact, ...], ctx: Context) -> timedelta:
    """How long a stage waits before anything else happens: `call_after` when someone of it
    will be called then, else `ack_within` (which counts from the call once it is placed)."""
    assert step.ack_within is not None
    if step.call_after is not None and any(ctx.contacts.callable(role, c.phone) for c in recipients):
        return step.call_after
    return step.ack_within


def _queue_calls(
    ctx: Context,
    case: dict[str, Any],
    step_row: dict[str, Any],
    step: Step,
    role: str,
    contacts: tuple[Contact, ...] | list[Contact],
    round_: int,
    position: int,
) -> list[Contact]:
    """A call to each contact who may be called (not `voice = false`), in the same outbox as
    the texts; the spoken text is rendered from the same values, spelled out for a voice."""
    from rapidresponse.voice import spoken_values

    callees = [c for c in contacts if ctx.contacts.callable(role, c.phone)]
    if not callees:
        return []
    speech = render(step.voice_template, spoken_values(template_values(ctx, case, role)))
    for contact in callees:
        queue_message(
            ctx, case_id=case["id"], step_id=step_row["id"], kind=MessageKind.ALERT, role=role,
            contact=contact, body=speech, round_=round_, position=position, channel=Channel.VOICE,
        )
    return callees


def _stage_messages(ctx: Context, step_row: dict[str, Any]) -> list[dict[str, Any]]:
    return ctx.store.all(
        "SELECT * FROM messages WHERE step_id = ? AND round = ? AND position = ?"
        f" AND kind = '{MessageKind.ALERT}' ORDER BY id",
        [step_row["id"], step_row["round"], step_row["position"]],
    )


def _stage_callees(ctx: Context, step_row: dict[str, Any], step: Step) -> tuple[str, list[Contact]]:
    """Who this stage's call after an unanswered text rings: its texted contacts who may be
    called; nobody when the step does not call after a text or this stage has been called."""
    role = step_row["role"]
    if step.call_after is None or step.ack_within is None:
        return role, []
    rows = _stage_messages(ctx, step_row)
    if any(r["channel"] == Channel.VOICE for r in rows):
        return role, []
    texted: dict[str, dict[str, Any]] = {}
    for row in rows:
        texted.setdefault(row["to_number"], row)
    role = next(iter(texted.values()))["role"] if texted else role
    contacts = [Contact(name=r["contact"], phone=r["to_number"]) for r in texted.values()]
    return role, [c for c in contacts if ctx.contacts.callable(role, c.phone)]


def _call_if_due(ctx: Context, case: dict[str, Any], step_row: dict[str, Any], reason: str) -> bool:
    """The text of this stage went unanswered (or undelivered): call the same contacts before
    the chain moves on, once per stage, and wait `ack_within` from the call. False when the
    step does not call after a text, already called, or nobody of the stage may be called."""
    step = step_definition(ctx.store, step_row)
    role, contacts = _stage_callees(ctx, step_row, step)
    if not contacts:
        return False
    assert step.ack_within is not None
    callees = _queue_calls(ctx, case, step_row, step, role, contacts, step_row["round"],
                           step_row["position"])
    now = ctx.clock.now()
    ctx.store.conn.execute(
        "UPDATE steps SET ack_deadline = ? WHERE id = ?",
        [to_iso(now + step.ack_within), step_row["id"]],
    )
    audit.append(
        ctx.store, at=now, kind="step.calling", actor=SYSTEM, case=case["ref"],
        detail={"step": step.id, "role": role, "reason": reason,
                "to": [c.name for c in callees], "round": step_row["round"] + 1},
    )
    return True


def _stage_unreachable(rows: list[dict[str, Any]]) -> bool:
    """Nobody of the stage can be reached: for each number, its calls were not answered or,
    if it was not called, its texts did not arrive. A call speaks louder than a text."""
    by_number: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_number.setdefault(row["to_number"], []).append(row)
    for attempts in by_number.values():
        calls = [r for r in attempts if r["channel"] == Channel.VOICE]
        if not all(r["state"] in NOT_DELIVERED for r in (calls or attempts)):
            return False
    return bool(by_number)


#: A stage found: (round, position, the stage, who of it is messaged).
Found = tuple[int, int, Stage, tuple[Contact, ...]]


def _find_stage(
    ctx: Context,
    case: dict[str, Any],
    step_row: dict[str, Any],
    step: Step,
    round_: int,
    position: int,
) -> tuple[Found | None, list[tuple[str, dict[str, Any]]]]:
    """The first stage from (round, position) with someone on duty not yet messaged (None when
    the chain has run out), and the events of what it passed on the way, for the caller to log
    (`_enter_stage`) or not (`upcoming`).

    Stages are found by who was messaged (the message rows), not by their index alone, so a
    coordinator's edit of contacts.toml mid-chain neither skips a contact nor repeats one.
    Off-duty and empty stages are skipped; past the last stage comes the next round.
    """
    now = ctx.clock.now()
    stages = chain(ctx, step, case["id"])
    messaged = _messaged(ctx, step_row["id"], round_)
    passed: list[tuple[str, dict[str, Any]]] = []
    while True:
        if position >= len(stages):
            if round_ >= step.repeat:
                return None, passed
            round_, position = round_ + 1, 0
            messaged = _messaged(ctx, step_row["id"], round_)
            passed.append(("step.repeated", {"step": step.id, "round": round_ + 1, "of": step.repeat + 1}))
            continue
        stage = stages[position]
        if stage.members and all(c.phone in messaged for c in stage.members):
            position += 1
            continue
        recipients = _recipients(ctx, stage, now)
        if recipients:
            return (round_, position, stage, recipients), passed
        why = "off duty" if stage.members else "the role has no contacts"
        passed.append(("step.skipped_contact",
                       {"step": step.id, "role": stage.role, "position": position, "why": why}))
        position += 1


@dataclass(frozen=True)
class Upcoming:
    """What the engine does when a waiting step's time runs out, by the rules that do it.

    `action`: "call" (the stage's contacts, after their text), "text" (the next contact of the
    role, or the role again in a new `round`), "escalate" (to the escalation role), "skip" (a
    case role the case no longer names) or "exhausted" (nobody left). After a call, `then` is
    what its wait of `wait` leads to."""

    action: str
    role: str
    contacts: tuple[str, ...] = ()
    round: int | None = None
    then: Upcoming | None = None
    wait: timedelta | None = None


def upcoming(ctx: Context, step_row: dict[str, Any]) -> Upcoming | None:
    """For an active step with a deadline: what happens at it if nobody acknowledges (who is on
    duty is judged at the deadline, as the engine will). Nothing is written."""
    if step_row["state"] != StepState.ACTIVE or not step_row["ack_deadline"]:
        return None
    from dataclasses import replace

    from rapidresponse.clock import FakeClock

    at_deadline = replace(ctx, clock=FakeClock(from_iso(step_row["ack_deadline"])))
    step = step_definition(ctx.store, step_row)
    after = _upcoming_stage(at_deadline, step_row, step)
    role, callees = _stage_callees(at_deadline, step_row, step)
    if callees:
        return Upcoming("call", role, tuple(c.name for c in callees), then=after, wait=step.ack_within)
    return after


def _upcoming_stage(ctx: Context, step_row: dict[str, Any], step: Step) -> Upcoming:
    """What `expire_deadlines` → `_enter_stage` would move the step to."""
    case = ctx.store.one("SELECT * FROM cases WHERE id = ?", [step_row["case_id"]])
    assert case is not None
    if casecontacts.is_case_role(step.role) and not casecontacts.members(ctx.store, case["id"], step.role):
        return Upcoming("skip", step.role)
    found, _ = _find_stage(ctx, case, step_row, step, step_row["round"], 0)
    if found is None:
        return Upcoming("exhausted", step.role)
    round_, _, stage, recipients = found
    names = tuple(c.name for c in recipients)
    if stage.escalation:
        return Upcoming("escalate", stage.role, names)
    return Upcoming("text", stage.role, names, round=round_ + 1 if round_ != step_row["round"] else None)


def _exhaust(
    ctx: Context, case: dict[str, Any], step_row: dict[str, Any], step: Step, reason: str | None
) -> None:
    """Nobody is left to try: the step shows red in `status` until someone answers late."""
    _finish(ctx, step_row, StepState.EXHAUSTED, None)
    audit.append(
        ctx.store, at=ctx.clock.now(), kind="step.exhausted", actor=SYSTEM, case=case["ref"],
        detail={"step": step.id, "role": step.role, "rounds": step.repeat + 1,
                "reason": reason or "no reachable contact"},
    )


def _skip(ctx: Context, case: dict[str, Any], step_row: dict[str, Any], reason: str) -> None:
    """A step that has nobody to message on this case: not an error, a logged reason. It ends
    `skipped`, never `done`: nobody was informed, and nothing may read as if someone was."""
    _finish(ctx, step_row, StepState.SKIPPED, None)
    audit.append(
        ctx.store, at=ctx.clock.now(), kind="step.skipped", actor=SYSTEM, case=case["ref"],
        detail={"step": step_row["step_key"], "role": step_row["role"], "reason": reason},
    )


def _messaged(ctx: Context, step_id: int, round_: int) -> set[str]:
    rows = ctx.store.all(
        "SELECT to_number FROM messages WHERE step_id = ? AND round = ? AND kind = ?",
        [step_id, round_, MessageKind.ALERT],
    )
    return {row["to_number"] for row in rows}


def queue_message(
    ctx: Context,
    *,
    case_id: int | None,
    step_id: int | None,
    kind: str,
    role: str,
    contact: Contact,
    body: str,
    round_: int = 0,
    position: int = 0,
    channel: str = Channel.SMS,
) -> int:
    """A text (or, with channel 'voice', a call saying `body`) into the outbox."""
    now = to_iso(ctx.clock.now())
    return int(
        ctx.store.db["messages"].insert(
            {"case_id": case_id, "step_id": step_id, "kind": kind, "role": role,
             "contact": contact.name, "to_number": contact.phone, "body": body,
             "state": MessageState.QUEUED, "round": round_, "position": position,
             "not_before": now, "created_at": now, "channel": channel}
        ).last_pk
    )


def stop_chain(
    ctx: Context,
    case_id: int,
    *,
    steps: list[dict[str, Any]] | None = None,
    state: StepState = StepState.CANCELLED,
    by: str | None = None,
) -> list[dict[str, Any]]:
    """Stop chains: the one rule behind resolve, acknowledge, reassess and purge.

    Each step given (by default every running step of the case) ends in `state` with no
    deadline left, and its alerts still waiting in the outbox are cancelled. Without `steps`
    that holds for every alert of the case, also those of a finished step still being retried:
    nothing more of the case's search goes out. Call inside the caller's transaction; returns
    the steps stopped.
    """
    whole_case = steps is None
    if steps is None:
        steps = ctx.store.all(
            f"SELECT * FROM steps WHERE case_id = ? AND state IN {sql(RUNNING_STEPS)} ORDER BY id",
            [case_id],
        )
    for row in steps:
        _finish(ctx, row, state, by)
        withdraw_alerts(ctx, "step_id = ? AND state = ?", [row["id"], MessageState.QUEUED])
        hang_up_calls(ctx, "step_id = ?", [row["id"]])
    if whole_case:
        withdraw_alerts(ctx, "case_id = ? AND kind = ? AND state = ?",
                        [case_id, MessageKind.ALERT, MessageState.QUEUED])
        hang_up_calls(ctx, "case_id = ?", [case_id])
    return steps


def hang_up_calls(ctx: Context, where: str, params: list[Any]) -> None:
    """Mark the calls placed (or being placed) that have no final status yet to be hung up.

    The request to the provider goes out from the senders, after this transaction: a crash in
    between leaves the mark, and the next run hangs up all the same. A call answered meanwhile
    is ended too; one that ended by itself (its final status arrived) is left alone.
    """
    ctx.store.conn.execute(
        "UPDATE messages SET hangup = 'due' WHERE channel = ? AND kind = ? AND hangup IS NULL"
        f" AND state IN (?, ?) AND {where}",
        [Channel.VOICE, MessageKind.ALERT, MessageState.SENDING, MessageState.SENT, *params],
    )


def withdraw_alerts(ctx: Context, where: str, params: list[Any]) -> None:
    """Take unsent alerts out of the outbox for good, saying truthfully what became of them.

    One that may have reached the provider already (an earlier attempt timed out, or its
    sender died mid-send) is `unconfirmed`; one that certainly did not is `cancelled`.
    """
    ctx.store.conn.execute(
        "UPDATE messages SET state = CASE WHEN state = ? OR possible_duplicate THEN ? ELSE ? END,"
        f" final_at = ?, claim_deadline = NULL WHERE {where}",
        [MessageState.SENDING, MessageState.UNCONFIRMED, MessageState.CANCELLED,
         to_iso(ctx.clock.now()), *params],
    )


def alert_wanted(store: Store, message: dict[str, Any]) -> bool:
    """May this message still go out? Not an alert whose chain was stopped (answered, moved to
    another playbook), and never an alert of a search that is over: once its case is resolved,
    whatever its step's state (waiting, exhausted and being retried, or claimed by a process
    that died), it would send a contact looking for a minor who has been found."""
    if message["kind"] != MessageKind.ALERT or message["step_id"] is None:
        return True
    step = store.one("SELECT state, phase, case_id FROM steps WHERE id = ?", [message["step_id"]])
    if step is None or step["state"] in STOPPED_STEPS:
        return False
    if step["phase"] != Phase.MAIN:
        return True  # the after-return steps start when the case is resolved
    return store.scalar("SELECT state FROM cases WHERE id = ?", [step["case_id"]]) == CaseState.OPEN


def _finish(ctx: Context, step_row: dict[str, Any], state: str, by: str | None) -> None:
    ctx.store.conn.execute(
        "UPDATE steps SET state = ?, finished_at = ?, finished_by = ?, ack_deadline = NULL"
        " WHERE id = ?",
        [state, to_iso(ctx.clock.now()), by, step_row["id"]],
    )


# ---------------------------------------------------------------- timeouts and outcomes


def reanchor_waits(ctx: Context) -> int:
    """The clock went back (an NTP step, a wrong manual setting): a stage that started later
    than now measures its wait again from now, so the jump never delays an escalation by its size.
    """
    now = to_iso(ctx.clock.now())
    rows = ctx.store.all(
        "SELECT id FROM steps WHERE state = ? AND stage_started_at > ? AND ack_deadline IS NOT NULL",
        [StepState.ACTIVE, now],
    )
    for row in rows:
        with ctx.store.transaction():
            step_row = ctx.store.one("SELECT * FROM steps WHERE id = ? AND state = ?",
                                     [row["id"], StepState.ACTIVE])
            if step_row is None or step_row["ack_deadline"] is None:
                continue
            wait = from_iso(step_row["ack_deadline"]) - from_iso(step_row["stage_started_at"])
            ctx.store.conn.execute(
                "UPDATE steps SET stage_started_at = ?, ack_deadline = ? WHERE id = ?",
                [now, to_iso(ctx.clock.now() + wait), row["id"]],
            )
            audit.append(
                ctx.store, at=ctx.clock.now(), kind="step.clock_went_back", actor=SYSTEM,
                case=ctx.store.scalar("SELECT ref FROM cases WHERE id = ?", [step_row["case_id"]]),
                detail={"step": step_row["step_key"], "stage_started_at": step_row["stage_started_at"],
                        "waits_seconds": wait.total_seconds()},
            )
    return len(rows)


def expire_deadlines(ctx: Context, limit: int = BATCH) -> int:
    """Nobody acknowledged in time: on to the next contact, the escalation role, or exhausted."""
    reanchor_waits(ctx)
    now = ctx.clock.now()
    rows = ctx.store.all(
        "SELECT id FROM steps WHERE state = ? AND ack_deadline <= ?"
        " ORDER BY ack_deadline LIMIT ?",
        [StepState.ACTIVE, to_iso(now), limit],
    )
    moved = 0
    for row in rows:
        with ctx.store.transaction():
            step_row = ctx.store.one(
                "SELECT * FROM steps WHERE id = ? AND state = ? AND ack_deadline <= ?",
                [row["id"], StepState.ACTIVE, to_iso(now)],
            )
            if step_row is None:
                continue
            case = ctx.store.one("SELECT * FROM cases WHERE id = ?", [step_row["case_id"]])
            assert case is not None
            if not _call_if_due(ctx, case, step_row, reason="text not acknowledged in time"):
                _enter_stage(ctx, case, step_row, step_row["round"], 0,
                             reason="no acknowledgement in time")
            moved += 1
    return moved


def on_message_outcome(ctx: Context, message_id: int) -> None:
    """React to a message's fate; call inside the transaction that recorded it.

    Every message of the current stage failed: move on at once, don't wait for the timeout.
    All sent and no acknowledgement wanted: the step is done.
    """
    msg = ctx.store.one("SELECT * FROM messages WHERE id = ?", [message_id])
    if msg is None or msg["kind"] != MessageKind.ALERT or msg["step_id"] is None:
        return
    step_row = ctx.store.one("SELECT * FROM steps WHERE id = ?", [msg["step_id"]])
    if step_row is None or step_row["state"] not in (StepState.ACTIVE, StepState.DONE):
        return
    case_state = ctx.store.scalar("SELECT state FROM cases WHERE id = ?", [step_row["case_id"]])
    if step_row["phase"] == Phase.MAIN and case_state != CaseState.OPEN:
        return  # the minor is found: a late receipt must not restart the search chain
    if (msg["round"], msg["position"]) != (step_row["round"], step_row["position"]):
        return  # an earlier stage: the chain has already moved on
    rows = _stage_messages(ctx, step_row)
    if any(r["state"] in UNSENT for r in rows):
        return
    case = ctx.store.one("SELECT * FROM cases WHERE id = ?", [step_row["case_id"]])
    assert case is not None
    if _stage_unreachable(rows):
        if _call_if_due(ctx, case, step_row, reason="text not delivered"):
            return
        called = any(r["channel"] == Channel.VOICE for r in rows)
        _enter_stage(ctx, case, step_row, step_row["round"], 0,
                     reason="call not answered" if called else "message not delivered")
        return
    step = step_definition(ctx.store, step_row)
    if step.ack_within is None and step_row["state"] == StepState.ACTIVE:
        _finish(ctx, step_row, StepState.DONE, None)
        audit.append(
            ctx.store, at=ctx.clock.now(), kind="step.done", actor=SYSTEM, case=case["ref"],
            detail={"step": step.id, "role": step.role},
        )


# ---------------------------------------------------------------- acknowledgement


def waiting_steps(store: Store, case_id: int, role: str) -> list[dict[str, Any]]:
    """Steps a role can acknowledge: its own, or those escalated to it, while they wait; and
    exhausted ones, so that a late answer is recorded (and `status` turns green again)."""
    rows = store.all(
        "SELECT * FROM steps WHERE case_id = ? AND state IN (?, ?)",
        [case_id, StepState.ACTIVE, StepState.EXHAUSTED],
    )
    matched = []
    for row in rows:
        step = step_definition(store, row)
        if step.ack_within is None:
            continue
        if row["role"] == role or (row["escalated"] and step.escalate_to == role):
            matched.append(row)
    return matched


def acknowledge(
    ctx: Context,
    ref: str,
    role: str,
    *,
    via: str = "cli",
    contact: str | None = None,
    note: str | None = None,
) -> list[str]:
    """Stop the role's waiting steps for the case. Returns the step ids acknowledged.

    `contact` is who confirmed: the sender of an SMS reply or a key press (then also the event's
    actor), or the contact an officer names when acknowledging for someone (`ack --contact`; the
    officer stays the actor; the name must be one of the role's contacts). The log records it as
    `contact`.
    """
    role_obj = ctx.contacts.role(role)
    role = role_obj.key
    if contact is not None and via == "cli":
        contact = contact_of(role_obj, contact)
    actor = ctx.actor if via == "cli" or not contact else contact
    now = ctx.clock.now()
    with ctx.store.transaction():
        case = get_case(ctx.store, ref)
        if case["state"] == CaseState.PURGED:
            raise InputError(f"case {case['ref']} has been purged")
        steps = waiting_steps(ctx.store, case["id"], role)
        if not steps:
            raise InputError(
                f"nothing of case {case['ref']} is waiting for an acknowledgement from {role}"
            )
        acked = []
        stop_chain(ctx, case["id"], steps=steps, state=StepState.ACKNOWLEDGED,
                   by=contact or ctx.actor)
        for row in steps:
            waited = (now - from_iso(row["activated_at"])).total_seconds()
            detail = {"step": row["step_key"], "role": role, "via": via, "contact": contact,
                      "seconds_after_alert": round(waited, 3),
                      "note": _note(ctx, case["id"], "ack", note)}
            if row["state"] == StepState.EXHAUSTED:
                detail["late"] = "after the whole chain was exhausted"
            audit.append(
                ctx.store, at=now, kind="step.acknowledged", actor=actor,
                case=case["ref"], detail=detail,
            )
            acked.append(row["step_key"])
    return acked


def contact_of(role: Role, name: str) -> str:
    """The contact of `role` that `name` means (any case), or InputError naming the choices.

    The typed name is never repeated: it may be the minor's, typed in the wrong place.
    """
    words = Vocabulary.of(f"contact of {role.key}", [c.name for c in role.contacts],
                          listed_as="the contacts file has")
    return words.pick(name, what="--contact")


def _note(ctx: Context, case_id: int, kind: str, text: str | None) -> dict[str, Any] | None:
    """Keep free text beside the person (it may name the minor); the log gets its id only.

    Not even a hash: a short note such as a birth date is found again from its hash in seconds,
    and the log outlives the purge.
    """
    if not text:
        return None
    note_id = ctx.store.db["notes"].insert(
        {"case_id": case_id, "at": to_iso(ctx.clock.now()), "author": ctx.actor,
         "kind": kind, "text": text}
    ).last_pk
    return {"id": note_id}


def add_note(ctx: Context, ref: str, text: str) -> int:
    if not text.strip():
        raise InputError("the note is empty")
    with ctx.store.transaction():
        case = get_case(ctx.store, ref)
        if case["state"] == CaseState.PURGED:
            raise InputError(f"case {case['ref']} has been purged")
        note = _note(ctx, case["id"], "note", text)
        assert note is not None
        audit.append(ctx.store, at=ctx.clock.now(), kind="case.note", actor=ctx.actor,
                     case=case["ref"], detail={"note": note})
    return int(note["id"])


# ---------------------------------------------------------------- resolution


@dataclass
class Resolution:
    ref: str
    cancelled: list[str]
    stand_down: int
    after: list[dict[str, Any]]


def resolve(ctx: Context, ref: str, outcome: str, note: str | None = None,
            return_flags: tuple[str, ...] = ()) -> Resolution:
    """Cancel what is pending, stand everyone down in the words for the outcome, and start the
    after-return steps when the minor is back (found or returned), with the case's flags and
    `return_flags` (the answers at the return: `flags.return_flags`)."""
    outcome = OUTCOME_WORDS.pick(outcome)
    now = ctx.clock.now()
    with ctx.store.transaction():
        case = get_case(ctx.store, ref)
        if case["state"] != CaseState.OPEN:
            raise InputError(f"case {case['ref']} is already {case['state']}")
        cancelled = [r["step_key"] for r in stop_chain(ctx, case["id"])]
        ctx.store.conn.execute(
            "UPDATE cases SET state = ?, resolved_at = ?, resolved_by = ?, outcome = ?"
            " WHERE id = ?",
            [CaseState.RESOLVED, to_iso(now), ctx.actor, outcome, case["id"]],
        )
        playbook = case_playbook(case)
        stood_down = _queue_stand_down(ctx, case, playbook, outcome)
        audit.append(
            ctx.store, at=now, kind="case.resolved", actor=ctx.actor, case=case["ref"],
            detail={"outcome": outcome, "cancelled_steps": cancelled,
                    "stand_down_messages": stood_down,
                    "note": _note(ctx, case["id"], "resolve", note)},
        )
        after = []
        if playbook.after_resolved and outcome in RETURNED_OUTCOMES:  # the minor is back
            after = _plan(ctx, case["id"], case["ref"], playbook,
                          [*json.loads(case["flags"]), *return_flags],
                          Phase.AFTER_RESOLVED, {"resolved": now})
    return Resolution(case["ref"], cancelled, stood_down, after)


def _queue_stand_down(ctx: Context, case: dict[str, Any], playbook: Playbook, outcome: str) -> int:
    """One stand-down per number that got (or may have got) an alert for the case, in the
    playbook's words for this outcome."""
    text = playbook.stand_down_for(outcome)
    return queue_stand_downs(ctx, case, text) if text else 0


def queue_stand_downs(ctx: Context, case: dict[str, Any], text: str,
                      step_ids: list[int] | None = None) -> int:
    """One text in `text`'s words per number that got (or may have got) an alert of the case,
    or of these steps only: the one rule for the end of a search and for a request withdrawn."""
    # A send that was tried and may have arrived (in flight, or retried after a time-out) counts
    # as reached: a needless stand-down is better than a contact left searching.
    tried = (MessageState.QUEUED, MessageState.CANCELLED)
    maybe = (MessageState.SENDING, MessageState.UNCONFIRMED, *ACCEPTED)
    scope = "" if step_ids is None else f" AND step_id IN ({', '.join('?' * len(step_ids))})"
    reached = ctx.store.all(
        "SELECT role, contact, to_number FROM messages WHERE id IN (SELECT MIN(id) FROM messages"
        f" WHERE case_id = ? AND kind = ?{scope} AND (state IN {sql(maybe)}"
        f" OR (state IN {sql(tried)} AND attempts > 0)) GROUP BY to_number) ORDER BY id",
        [case["id"], MessageKind.ALERT, *(step_ids or [])],
    )
    for row in reached:
        body = render(text, template_values(ctx, case, row["role"]))
        queue_message(
            ctx, case_id=case["id"], step_id=None, kind=MessageKind.STAND_DOWN, role=row["role"],
            contact=Contact(name=row["contact"], phone=row["to_number"]), body=body,
        )
    return len(reached)
