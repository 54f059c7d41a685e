"""One case's story, in order: who decided, who was texted, who confirmed, and how fast.

Built from the case's audit events only (read through the `events (case_ref, seq)` index), so
what a supervisor sees is what the log can prove. Delivery receipts are folded into the message
they belong to (its final state and when it was known); every other event is one entry. Free
text stays out: a note appears by its id, a re-assessment's reason by its id.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rapidresponse.engine import get_case
from rapidresponse.rules import LATE_AFTER_SECONDS, AckClock, lateness
from rapidresponse.store import Store
from rapidresponse.timeutil import from_iso
from rapidresponse.voice import answered_by_machine

#: Message events: the first makes the entry, receipts update its state.
SENT_KINDS = {"sms.sent": "alert", "sms.stand_down": "stand-down", "sms.test": "test",
              "call.placed": "call", "call.test": "test call"}
RECEIPT_KINDS = {"sms.delivered": "delivered", "sms.undelivered": "undelivered",
                 "sms.failed": "failed", "call.answered": "answered",
                 "call.not_answered": "not answered", "call.failed": "failed"}
CALL_LABELS = ("call", "test call")


@dataclass
class Entry:
    seq: int
    at: str
    kind: str
    what: str
    actor: str
    lane: str | None = None  # the role whose lane of the chart it belongs to
    step: str | None = None
    contact: str | None = None
    state: str | None = None
    state_at: str | None = None
    via: str | None = None
    delay_seconds: float | None = None
    since_missing_seconds: float | None = None
    since_registration_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timeline:
    case: str
    state: str
    missing_since: str
    registered_at: str
    entries: list[Entry]

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case, "state": self.state, "missing_since": self.missing_since,
                "registered_at": self.registered_at, "entries": [asdict(e) for e in self.entries]}


def timeline(store: Store, ref: str) -> Timeline:
    case = get_case(store, ref)
    rows = store.conn.execute(
        "SELECT seq, at, actor, kind, detail FROM events WHERE case_ref = ? ORDER BY seq", [case["ref"]]
    ).fetchall()
    missing, registered = from_iso(case["missing_since"]), from_iso(case["registered_at"])
    builder = _Builder(case["ref"])
    for seq, at, actor, kind, detail in rows:
        builder.add(seq, at, actor, kind, json.loads(detail))
    # A writer reads the time before it waits for the write lock, so the log's order can put an
    # event after one of a later second (a hang-up behind an acknowledgement): a story reads in time.
    builder.entries.sort(key=lambda e: (from_iso(e.at), e.seq))
    for entry in builder.entries:
        moment = from_iso(entry.at)
        entry.since_missing_seconds = (moment - missing).total_seconds()
        entry.since_registration_seconds = (moment - registered).total_seconds()
    return Timeline(case["ref"], case["state"], case["missing_since"], case["registered_at"],
                    builder.entries)


class _Builder:
    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.entries: list[Entry] = []
        self.messages: dict[Any, Entry] = {}
        self.clock = AckClock()
        self.planned: dict[str, str] = {}  # step id -> when it was last planned

    def add(self, seq: int, at: str, actor: str, kind: str, d: dict[str, Any]) -> None:
        entry = Entry(seq, at, kind, "", actor, lane=d.get("role"), step=d.get("step"),
                      contact=d.get("contact"))
        if kind in RECEIPT_KINDS and d.get("message") in self.messages:
            sent = self.messages[d["message"]]
            sent.state, sent.state_at = RECEIPT_KINDS[kind], at
            if answered_by_machine(d.get("answered_by")):
                sent.state = "answered by a machine"  # nobody heard it: not answered
            if d.get("error_code"):
                sent.extra["error_code"] = d["error_code"]
            return
        handler = getattr(self, "_" + kind.replace(".", "_").replace("-", "_"), None)
        if handler is not None:
            handler(entry, d)
        elif kind in SENT_KINDS:
            self._message(entry, d, SENT_KINDS[kind])
        else:
            entry.what = kind.replace("_", " ").replace(".", ": ")
            entry.extra = _plain(d)
        self.entries.append(entry)

    def _message(self, entry: Entry, d: dict[str, Any], label: str) -> None:
        entry.kind = f"message.{label}"
        step = f" ({d['step']})" if d.get("step") else ""
        verb = "placed to" if label in CALL_LABELS else "texted to"
        entry.what = f"{label}{step} {verb} {d.get('role')}"
        entry.state, entry.state_at = ("ringing" if label in CALL_LABELS else "sent"), entry.at
        entry.extra = {"to": d.get("to"), "transport": d.get("transport")}
        if d.get("possible_duplicate"):
            entry.extra["possible_duplicate"] = True
        self.messages[d.get("message")] = entry
        if label == "alert":
            self.clock.alerted(self.ref, d.get("step"), d.get("role") or "", entry.at)

    def _case_registered(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.what = f"registered by {entry.actor} (playbook {d.get('playbook')})"
        entry.extra = {"earlier_episodes": d.get("earlier_episodes") or []}

    def _case_assessed(self, entry: Entry, d: dict[str, Any]) -> None:
        judgement = "worrying situation" if d.get("worrying") else "not (yet) worrying"
        if "alarming" in d:
            judgement = ("alarming disappearance, " if d["alarming"] else "") + judgement
        again = "re-assessed" if d.get("reassessment") else "assessed"
        entry.what = f"{again} by {entry.actor}: {judgement}, grade {d.get('grade')}"
        entry.extra = {k: d[k] for k in ("flags", "indicators", "societal_necessity",
                                         "suspected_victim", "alarming", "worrying") if k in d}
        if isinstance(d.get("why"), dict):
            entry.extra["reason_note"] = d["why"].get("id")

    def _case_decided(self, entry: Entry, d: dict[str, Any]) -> None:
        decision = d.get("decision") or d.get("societal_necessity") or d.get("value")
        entry.what = f"decided by {entry.actor}: societal necessity {decision}"
        entry.extra = _plain(d)

    def _steps_planned(self, entry: Entry, d: dict[str, Any]) -> None:
        steps = d.get("steps") or []
        for step in steps:
            self.planned[step.get("id")] = entry.at
        entry.what = f"planned {len(steps)} step(s) ({d.get('phase')})"
        entry.extra = {"steps": [s.get("id") for s in steps]}

    def _step_due(self, entry: Entry, d: dict[str, Any]) -> None:
        self.clock.fired(self.ref, d.get("step") or "", entry.at)
        late = lateness(entry.at, d.get("due_at") or entry.at, self.planned.get(d.get("step"), entry.at))
        entry.what = f"step {d.get('step')} fired for {d.get('role')}"
        if late > LATE_AFTER_SECONDS:
            entry.what += f", {round(late)} s late"
        entry.extra = {"late_seconds": round(late, 3)}

    def _step_acknowledged(self, entry: Entry, d: dict[str, Any]) -> None:
        via = d.get("via")
        contact = d.get("contact") or (entry.actor if via != "cli" else None)
        entry.contact, entry.via = contact, via
        entry.delay_seconds = self.clock.delay(self.ref, d.get("step") or "", d.get("role") or "", entry.at)
        who = f" ({contact})" if contact else ""
        by = f", recorded by {entry.actor}" if via == "cli" else ""
        entry.what = f"{d.get('step')} acknowledged by {d.get('role')}{who} via {via}{by}"
        if d.get("late"):
            entry.what += ", after the chain was exhausted"
            entry.extra["late"] = True
        if isinstance(d.get("note"), dict):
            entry.extra["note"] = d["note"].get("id")

    def _step_escalated(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.lane = d.get("to_role")
        entry.what = f"step {d.get('step')} escalated to {d.get('to_role')} ({d.get('reason')})"
        entry.extra = {"to": d.get("to"), "round": d.get("round")}

    def _step_next_contact(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.lane = d.get("to_role")
        entry.what = f"step {d.get('step')} moved to the next contact ({d.get('reason')})"
        entry.extra = {"to": d.get("to"), "round": d.get("round")}

    def _step_calling(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.what = f"step {d.get('step')}: calling {d.get('role')} ({d.get('reason')})"
        entry.extra = {"to": d.get("to"), "round": d.get("round")}

    def _call_key(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.via = "voice"
        entry.what = f"key {d.get('key') or 'none'} pressed on the call to {d.get('role')}: {d.get('result')}"
        entry.extra = {"key": d.get("key"), "result": d.get("result"), "sid": d.get("sid")}

    def _call_hung_up(self, entry: Entry, d: dict[str, Any]) -> None:
        self._hang_up(entry, d, f"hung up ({d.get('status')})")

    def _call_hangup_retry(self, entry: Entry, d: dict[str, Any]) -> None:
        self._hang_up(entry, d, f"not hung up yet: tried again in {round(d.get('retry_in') or 0)} s")

    def _call_hangup_failed(self, entry: Entry, d: dict[str, Any]) -> None:
        self._hang_up(entry, d, "could not be hung up (it had ended, or the provider refused)")

    @staticmethod
    def _hang_up(entry: Entry, d: dict[str, Any], result: str) -> None:
        """Which call of which step, to whom (never the minor), and what became of the hang-up."""
        step = f" ({d['step']})" if d.get("step") else ""
        contact = f" ({d['contact']})" if d.get("contact") else ""
        entry.via = "voice"
        entry.what = f"the call{step} to {d.get('role')}{contact} {result}"
        entry.extra = {k: d[k] for k in ("sid", "status", "error_code", "attempt") if d.get(k) is not None}

    def _step_exhausted(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.what = f"step {d.get('step')} EXHAUSTED: nobody of {d.get('role')} answered"
        entry.extra = {"rounds": d.get("rounds"), "reason": d.get("reason")}

    def _step_skipped(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.what = f"step {d.get('step')} skipped for {d.get('role')}, nobody informed: {d.get('reason')}"
        entry.state = "skipped"
        entry.extra = _plain(d)

    def _step_skipped_contact(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.what = (f"step {d.get('step')}: contact {d.get('position', 0) + 1} of {d.get('role')}"
                      f" skipped ({d.get('why')})")
        entry.extra = _plain(d)

    def _step_withdrawn(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.what = (f"step {d.get('step')} no longer holds: its request withdrawn to"
                      f" {d.get('messages')} number(s) it reached")
        entry.extra = _plain(d)

    def _step_done(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.what = f"step {d.get('step')} done (sent, no acknowledgement asked)"

    def _case_note(self, entry: Entry, d: dict[str, Any]) -> None:
        note = d.get("note") or {}
        entry.what = f"note #{note.get('id')} added by {entry.actor}"
        entry.extra = {"note": note.get("id")}

    def _case_returned(self, entry: Entry, d: dict[str, Any]) -> None:
        followups = d.get("followups") or []
        entry.what = (f"return recorded by {entry.actor}: safe and well {d.get('safe_and_well')},"
                      f" sexual violence ruled out {d.get('sexual_violence_ruled_out')};"
                      f" follow-ups: {', '.join(_followup_text(f) for f in followups) or 'none'}")
        entry.extra = {"followups": followups, "flags": d.get("flags") or []}

    def _return_answer_changed(self, entry: Entry, d: dict[str, Any]) -> None:
        answer = str(d.get("answer") or "answer").replace("-", " ")
        entry.what = f"{answer} changed by {entry.actor}: {d.get('was')} → {d.get('result')}"
        if d.get("followup_opened"):
            entry.what += f"; follow-up {d['followup_opened'].get('kind')} opened"
        if d.get("followup_dropped"):
            entry.what += f"; follow-up {d['followup_dropped']} dropped"
        entry.extra = {"answer": d.get("answer"), "was": d.get("was"), "result": d.get("result")}
        if isinstance(d.get("note"), dict):
            entry.extra["note"] = d["note"].get("id")

    def _followup_recorded(self, entry: Entry, d: dict[str, Any]) -> None:
        late = ", late" if d.get("late") else ""
        late += ", open again" if d.get("followup_opened") else ""  # a doubted safe and well
        entry.what = f"follow-up {d.get('followup')} recorded by {entry.actor}: {d.get('result')}{late}"
        entry.extra = {"followup": d.get("followup"), "result": d.get("result")}
        if isinstance(d.get("note"), dict):
            entry.extra["note"] = d["note"].get("id")

    def _case_resolved(self, entry: Entry, d: dict[str, Any]) -> None:
        entry.what = f"resolved by {entry.actor}: {d.get('outcome')}"
        entry.extra = {"outcome": d.get("outcome"), "cancelled_steps": d.get("cancelled_steps") or []}


def _followup_text(f: dict[str, Any]) -> str:
    return str(f.get("kind")) + ("" if f.get("state") == "open" else f" ({f.get('state')})")


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    """An unknown event's detail without message bodies and free-text holders."""
    return {k: v for k, v in detail.items() if k not in ("body", "reasons", "note", "why", "text")}
