"""Replay a playbook on the real engine against a fake clock, in a throw-away database.

A coordinator sees what a playbook will do before a real case meets it: who gets which text at
which minute, who is skipped off duty, time-outs, escalation, exhaustion, the stand-down and the
after-return steps. Nothing is sent: a recording transport stands in for the SMS provider, and
can fail chosen contacts. The clock jumps from one interesting moment (a step due, a deadline,
a retry, an answer) to the next, so 72 hours replay in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from rapidresponse import audit, engine, flagspace
from rapidresponse.assessment import GRADE_WORDS, NECESSITY_AT_REGISTRATION
from rapidresponse.clock import FakeClock
from rapidresponse.config import Settings
from rapidresponse.contacts import Contacts
from rapidresponse.dispatch import run_pass
from rapidresponse.engine import Context, Person
from rapidresponse.errors import InputError
from rapidresponse.playbooks import FLAG_WORDS, Playbook, Step
from rapidresponse.sms import PermanentSendError, Sent
from rapidresponse.states import MessageState, StepState
from rapidresponse.store import Store, create_store
from rapidresponse.timeutil import format_duration, from_iso, parse_duration, parse_when
from rapidresponse.vocab import Vocabulary

ACTOR = "simulation"
#: A replay stops here even if something is still waiting (a runaway retry, a typo in --ack).
HORIZON = timedelta(days=30)
#: The fictitious minor of every simulation; kept only in the throw-away database.
SIM_PERSON_ALIAS = "Simulatie"


@dataclass(frozen=True)
class Action:
    """Something a person does at an offset from the start: answer for a role, or resolve."""

    what: str  # a role (ack) or an outcome (resolve)
    offset: timedelta


@dataclass(frozen=True)
class Event:
    offset: timedelta
    at: datetime
    kind: str
    text: str
    step: str | None = None
    role: str | None = None
    contact: str | None = None
    body: str | None = None

    def as_dict(self, tz: Any) -> dict[str, Any]:
        return {
            "minute": int(self.offset.total_seconds() // 60), "offset": format_duration(self.offset),
            "at": self.at.astimezone(tz).isoformat(), "kind": self.kind, "text": self.text,
            "step": self.step, "role": self.role, "contact": self.contact, "body": self.body,
        }


@dataclass
class Simulation:
    playbook: str
    start: datetime
    flags: tuple[str, ...]
    grade: str
    events: list[Event] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, tz: Any) -> dict[str, Any]:
        return {
            "playbook": self.playbook, "start": self.start.astimezone(tz).isoformat(),
            "flags": list(self.flags), "grade": self.grade,
            "events": [e.as_dict(tz) for e in self.events], "steps": self.steps,
        }


def parse_action(text: str, kind: str, choices: Iterable[str]) -> Action:
    """'youth_prosecutor@20m' or 'found@30m': a word of `choices` and an offset."""
    word, at, offset = text.partition("@")
    if not at:
        example = "youth_prosecutor@20m" if kind == "ack" else "found@30m"
        raise InputError(f"--{kind} takes WORD@OFFSET, e.g. {example}")
    vocabulary = Vocabulary.of("role" if kind == "ack" else "outcome", choices)
    try:
        delay = parse_duration(offset)
    except ValueError as exc:
        raise InputError(f"--{kind}: {exc}") from None
    return Action(vocabulary.pick(word, what=f"the {vocabulary.kind} of --{kind}"), delay)


def choose_flags(playbook: Playbook, wanted: Iterable[str] | None) -> flagspace.Sample:
    """The case to replay: the simplest one with the wanted flags, or by default the one that
    fires the most of the playbook's steps. A fresh registration: flags that come from the minor's
    history or from the answers at the return cannot be replayed."""
    pool = flagspace.registrable()
    # Like a real registration: societal necessity undecided, unless the flags need a decision.
    as_registered = {f: s for f, s in pool.items() if s.societal_necessity == NECESSITY_AT_REGISTRATION}
    if wanted is not None:
        names = [FLAG_WORDS.pick(w, what="a flag of --flags") for w in wanted]
        elsewhere = [n for n in names if not any(n in flags for flags in pool)]
        if elsewhere:
            raise InputError("a simulated case is registered afresh, so it cannot carry "
                             + ", ".join(elsewhere) + " (set by the minor's history or at the return)")
        sample = flagspace.smallest_superset(names, as_registered) or flagspace.smallest_superset(names, pool)
        if sample is None:
            raise InputError("no assessment has all of these flags at once: " + ", ".join(names))
        return sample
    return flagspace.firing_most(playbook.steps, as_registered)


class SimulatedTransport:
    """Sends nothing; remembers every text, and fails the numbers it is told to."""

    name = "simulation"

    def __init__(self, failing: Iterable[str]) -> None:
        self.failing = set(failing)
        self.sent = 0

    def check(self) -> None:
        return None

    def send(self, to: str, body: str) -> Sent:
        if to in self.failing:
            raise PermanentSendError("simulated failure: the number does not take texts", "simulated")
        self.sent += 1
        return Sent(sid=f"SIM{self.sent:08d}")

    def call(self, to: str, speech: str, message_id: int) -> Sent:
        """A call rings and nobody picks up (no status comes back): the step waits its
        `ack_within` from the call, as it would for a call answered without a key."""
        if to in self.failing:
            raise PermanentSendError("simulated failure: the number cannot be called", "simulated")
        self.sent += 1
        return Sent(sid=f"SIMCALL{self.sent:08d}")


def simulate(
    playbook: Playbook,
    contacts: Contacts,
    *,
    start: datetime,
    flags: Iterable[str] | None = None,
    acks: Iterable[Action] = (),
    fail: Iterable[str] = (),
    resolve: Action | None = None,
) -> Simulation:
    """Register a fictitious case at `start` and run it to the end on the real engine."""
    # The log keeps milliseconds: a start with microseconds would put every offset a hair short
    # of the playbook's own (15m shown as 14m59s).
    start = start.replace(microsecond=0)
    sample = choose_flags(playbook, flags)
    failing = _failing_numbers(contacts, fail)
    actions = sorted(
        [("ack", a) for a in acks] + ([("resolve", resolve)] if resolve else []),
        key=lambda pair: pair[1].offset,
    )
    with tempfile.TemporaryDirectory(prefix="rapidresponse-sim-", dir=_scratch()) as folder:
        store = create_store(Path(folder) / "simulation.db")
        store.conn.execute("PRAGMA synchronous = OFF")  # a throw-away file: no need to fsync
        try:
            return _run(store, playbook, contacts, start, sample, failing, actions)
        finally:
            store.close()


def _scratch() -> str | None:
    """Memory-backed /dev/shm when there is one: creating the database there costs no disk
    syncs (about 100 ms less), and the fictitious case never touches a disk. Else the temp dir."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _failing_numbers(contacts: Contacts, names: Iterable[str]) -> set[str]:
    everyone = {c.name: c.phone for role in contacts.roles.values() for c in role.contacts}
    words = Vocabulary.of("contact", sorted(everyone), listed_as="the contacts file has")
    return {everyone[words.pick(name, what="the contact of --fail")] for name in names}


def _run(
    store: Store, playbook: Playbook, contacts: Contacts, start: datetime,
    sample: flagspace.Sample, failing: set[str], actions: list[tuple[str, Action]],
) -> Simulation:
    clock = FakeClock(start)
    ctx = Context(store, clock, contacts, ACTOR)
    transport = SimulatedTransport(failing)
    settings = Settings()
    age_years = 10 if sample.under_13 else 15
    local_day = start.astimezone(contacts.timezone).date()
    person = Person(alias=SIM_PERSON_ALIAS, birth_date=date(local_day.year - age_years - 1, 1, 1),
                    last_seen="simulatie")
    registration = engine.register(
        ctx, person=person, missing_since=start, playbook=playbook,
        indicators=sample.indicators, suspected_victim=sample.suspected_victim,
        societal_necessity=sample.societal_necessity, reason=flagspace.LOWERING_REASON,
    )
    ref = registration.ref
    pending = list(actions)
    limit = start + HORIZON
    while True:
        while pending and start + pending[0][1].offset <= clock.now():
            kind, action = pending.pop(0)
            _act(ctx, ref, kind, action)
        run_pass(ctx, transport, settings)
        moment = _next_moment(store, start, pending)
        if moment is None or moment > limit:
            break
        clock.set(moment if moment > clock.now() else clock.now() + timedelta(seconds=1))
    case = store.one("SELECT flags, grade FROM cases WHERE ref = ?", [ref])
    assert case is not None
    flags, grade = tuple(json.loads(case["flags"])), GRADE_WORDS.get(case["grade"], case["grade"])
    simulation = Simulation(playbook.name, start, flags, grade)
    registered = Event(timedelta(0), start, "case.registered",
                       f"case registered: flags {', '.join(flags) or 'none'}, grade {grade}")
    simulation.events = [registered, *_events(ctx, playbook, ref, start)]
    simulation.steps = [
        {"step": r["step_key"], "phase": r["phase"], "role": r["role"], "state": r["state"]}
        for r in store.all("SELECT * FROM steps ORDER BY due_at, id")
    ]
    return simulation


def _act(ctx: Context, ref: str, kind: str, action: Action) -> None:
    """A person's answer or resolution; one that comes too late or too early is logged, not fatal."""
    try:
        if kind == "ack":
            engine.acknowledge(ctx, ref, action.what, via="simulation")
        else:
            engine.resolve(ctx, ref, action.what)
    except InputError as exc:
        with ctx.store.transaction():
            audit.append(ctx.store, at=ctx.clock.now(), kind="simulation.ignored", actor=ACTOR, case=ref,
                         detail={"action": kind, "what": action.what, "why": str(exc)})


def _next_moment(store: Store, start: datetime, pending: list[tuple[str, Action]]) -> datetime | None:
    candidates = [
        store.scalar("SELECT MIN(due_at) FROM steps WHERE state = ?", [StepState.PENDING]),
        store.scalar("SELECT MIN(ack_deadline) FROM steps WHERE state = ? AND ack_deadline IS NOT NULL",
                     [StepState.ACTIVE]),
        store.scalar("SELECT MIN(not_before) FROM messages WHERE state = ?", [MessageState.QUEUED]),
    ]
    moments = [from_iso(c) for c in candidates if c]
    if pending:
        moments.append(start + pending[0][1].offset)
    return min(moments, default=None)


# ---------------------------------------------------------------- what happened, in words


def _events(ctx: Context, playbook: Playbook, ref: str, start: datetime) -> list[Event]:
    found = []
    for event in audit.events(ctx.store, ref):
        detail = event["detail"]
        if isinstance(detail, str):
            detail = json.loads(detail)
        at = from_iso(event["at"])
        described = _describe(ctx, playbook, event["kind"], detail)
        if described is None:
            continue
        text, extra = described
        found.append(Event(at - start, at, event["kind"], text, **extra))
    return found


def _describe(
    ctx: Context, playbook: Playbook, kind: str, d: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    step = d.get("step")
    who = {"step": step, "role": d.get("role"), "contact": d.get("contact")}
    match kind:
        case "steps.planned" if d.get("phase") == "after_resolved":
            names = ", ".join(f"{s['id']} ({s['role']})" for s in d["steps"]) or "none"
            return f"after-return steps planned: {names}", {}
        case "step.due":
            return f"step '{step}' is due for {d['role']}", who
        case "sms.sent":
            return f"text to {d['contact']} ({d['role']})", {**who, "body": d.get("body")}
        case "sms.failed":
            return f"text to {d['contact']} ({d['role']}) FAILED: {d.get('error')}", who
        case "sms.retry":
            return f"text to {d['contact']} ({d['role']}) will be retried: {d.get('error')}", who
        case "sms.stand_down":
            return f"stand-down to {d['contact']} ({d['role']})", {**who, "body": d.get("body")}
        case "sms.cancelled":
            return "a queued text was cancelled: its step ended before it was sent", {}
        case "call.placed":
            return f"call to {d['contact']} ({d['role']})", {**who, "body": d.get("body")}
        case "call.failed":
            return f"call to {d['contact']} ({d['role']}) FAILED: {d.get('error')}", who
        case "call.retry":
            return f"call to {d['contact']} ({d['role']}) will be retried: {d.get('error')}", who
        case "call.cancelled":
            return "a queued call was cancelled: its step ended before it was placed", {}
        case "step.calling":
            return f"step '{step}': {d['reason']} → calling {', '.join(d['to'])}", who
        case "step.skipped":
            return f"step '{step}' skipped, nobody informed: {d['reason']}", who
        case "step.skipped_contact":
            name = _contact_at(ctx, playbook, step, d.get("position", 0))
            return f"step '{step}': {name or d['role']} skipped ({d['why']})", who
        case "step.next_contact":
            return (f"step '{step}': {d['reason']} → next contact: {', '.join(d['to'])}",
                    {**who, "role": d.get("to_role")})
        case "step.escalated":
            return (f"step '{step}': {d['reason']} → escalated to {d['to_role']}: {', '.join(d['to'])}",
                    {**who, "role": d.get("to_role")})
        case "step.repeated":
            return f"step '{step}': the whole chain again (round {d['round']} of {d['of']})", who
        case "step.exhausted":
            return f"step '{step}': EXHAUSTED, nobody of the chain answered ({d['reason']})", who
        case "step.acknowledged":
            late = " (late)" if d.get("late") else ""
            return f"step '{step}' acknowledged by {d['role']}{late}", who
        case "step.done":
            return f"step '{step}' done (sent; no acknowledgement asked)", who
        case "case.resolved":
            cancelled = ", ".join(d.get("cancelled_steps") or []) or "nothing"
            return f"case resolved ({d['outcome']}); cancelled: {cancelled}", {}
        case "simulation.ignored":
            return f"--{d['action']} {d['what']} changed nothing: {d['why']}", {}
    return None


def _contact_at(ctx: Context, playbook: Playbook, step_id: str | None, position: int) -> str | None:
    step: Step | None = next((s for s in playbook.all_steps() if s.id == step_id), None)
    if step is None:
        return None
    stages = engine.chain(ctx, step)
    if 0 <= position < len(stages) and len(stages[position].members) == 1:
        return stages[position].members[0].name
    return None


def start_moment(text: str | None, now: datetime, tz: Any) -> datetime:
    """--start as an officer would type it (local time, 'now', ISO); default: now."""
    if text is None:
        return now
    return parse_when(text, now=now, tz=tz, name="--start")

