"""A home with 10,000 cases and a million audit events, filled fast by direct inserts.

Used by `supervisor.py`. The events have the shapes the engine writes (registration, assessment,
planned steps, alerts sent and delivered, time-outs, escalations, exhausted chains, acks by CLI and
SMS, notes, resolution, stand-downs, after-return steps) and a valid hash chain; each case gets
about a hundred events (the chain's events, then retried and delivered texts and notes up to the
hundred), registered over the `days` before `end`. Nothing here identifies anyone:
there are no persons rows at all.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rapidresponse import audit
from rapidresponse.app import init_home
from rapidresponse.refs import case_ref
from rapidresponse.store import dumps
from rapidresponse.timeutil import to_iso

END = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ROLES = ("youth_prosecutor", "child_focus", "mandated_agency", "police", "coordinator")
CONTACTS = {role: [f"{role} contact {i}" for i in range(1, 4)] for role in ROLES}


def build(home: Path, cases: int = 10_000, events: int = 1_000_000, days: int = 400, seed: int = 7) -> int:
    """Create the home and fill it; returns the number of events written."""
    init_home(home)
    rnd = random.Random(seed)
    per_case = events // cases
    rows: list[tuple] = []  # type: ignore[type-arg]
    case_rows: list[tuple] = []  # type: ignore[type-arg]
    start = END - timedelta(days=days)
    for n in range(1, cases + 1):
        registered = start + timedelta(seconds=rnd.randrange(days * 86400 - 7 * 86400))
        ref = case_ref(registered.year, n)  # as the CLI spells it: RR-2026-0012, RR-2026-10000
        resolved = rnd.random() < 0.97
        case_rows.append(_case_row(n, ref, registered, resolved, rnd))
        rows.extend(_case_events(ref, registered, resolved, per_case, rnd))
    rows.sort(key=lambda r: r[0])
    conn = sqlite3.connect(home / "rapidresponse.db", isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO cases (id, ref, year, seq, state, registered_at, registered_by, missing_since, age,"
        " placement, worrying, suspected_victim, grade, flags, indicators, reasons,"
        " playbook, playbook_snapshot, playbook_hash, ack_code, resolved_at, resolved_by, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        case_rows,
    )
    prev = audit.GENESIS
    batch = []
    for seq, (at, case, actor, kind, detail) in enumerate(rows, 1):
        text = audit.canonical_text(seq, at, case, actor, kind, detail)
        digest = hashlib.sha256((prev + text).encode()).hexdigest()
        batch.append((seq, at, case, actor, kind, detail, prev, digest))
        prev = digest
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return len(batch)


def _case_row(n: int, ref: str, registered: datetime, resolved: bool, rnd: random.Random) -> tuple:  # type: ignore[type-arg]
    grade = rnd.choice(("HIGH", "MEDIUM", "LOW"))
    closed = to_iso(registered + timedelta(hours=6)) if resolved else None
    return (n, ref, registered.year, n, "resolved" if resolved else "open", to_iso(registered), "officer",
            to_iso(registered - timedelta(hours=2)), 15, "home", int(grade != "LOW"), 1, grade, "[]",
            "[]", "[]", "worrying-situation", "", "0" * 64, f"{n:08d}", closed,
            "officer" if resolved else None, "found" if resolved else None)


def _case_events(ref: str, registered: datetime, resolved: bool, total: int,
                 rnd: random.Random) -> list[tuple]:  # type: ignore[type-arg]
    out: list[tuple] = []  # type: ignore[type-arg]
    clock = [registered]

    def add(kind: str, detail: dict, actor: str = "system", after: float = 0.0) -> None:  # type: ignore[type-arg]
        clock[0] += timedelta(seconds=after)
        out.append((to_iso(clock[0]), ref, actor, kind, dumps(detail)))

    grade = rnd.choice(("HIGH", "MEDIUM", "LOW"))
    add("case.registered", {"playbook": "worrying-situation", "playbook_hash": "0" * 64,
                            "missing_since": to_iso(registered - timedelta(hours=2)), "placement": "home",
                            "earlier_episodes": []}, "officer")
    add("case.assessed", {"age": 15, "alarming": True, "worrying": grade != "LOW", "suspected_victim": True,
                          "grade": grade,
                          "flags": ["worrying", "suspected-victim"], "reasons": ["benchmark"],
                          "indicators": ["older-partner"]}, "officer")
    if rnd.random() < 0.6:
        add("case.decided", {"societal_necessity": rnd.choice(("yes", "suspected", "no")), "why": None},
            "coordinator", after=600)
    steps = [(f"alert-{role}", role) for role in ROLES]
    add("steps.planned", {"phase": "main", "steps": [
        {"id": s, "role": r, "due_at": to_iso(registered)} for s, r in steps]}, "officer")
    message = 0
    for step, role in steps:
        add("step.due", {"step": step, "role": role, "due_at": to_iso(registered), "late_seconds": 0.2})
        for contact in CONTACTS[role]:
            message += 1
            base = {"message": message, "step": step, "role": role, "contact": contact,
                    "to": "+32470000000", "body": f"{ref}: benchmark. Antwoord ACK 1234",
                    "transport": "twilio", "sid": f"SM{message:032d}"}
            add("sms.sent", base, after=1)
            add("sms.delivered", base, after=2)
            if rnd.random() < 0.6:
                add("step.acknowledged", {"step": step, "role": role, "via": rnd.choice(("cli", "sms")),
                                          "seconds_after_alert": 60.0, "note": None, "contact": contact},
                    contact, after=rnd.randrange(30, 900))
                break
            add("step.next_contact", {"step": step, "reason": "no acknowledgement in time", "to_role": role,
                                      "to": [contact], "round": 1}, after=900)
        else:
            add("step.escalated", {"step": step, "reason": "no acknowledgement in time",
                                   "to_role": "coordinator", "to": ["coordinator contact 1"], "round": 1})
            if rnd.random() < 0.5:
                add("step.exhausted", {"step": step, "role": role, "rounds": 1, "reason": "no acknowledgement"},
                    after=900)
    while len(out) < total - 4:  # the rest of a busy case: retried and delivered texts, notes
        pick = rnd.random()
        if pick < 0.4:
            add("sms.retry", {"message": message, "step": "alert-police", "role": "police",
                              "contact": CONTACTS["police"][0], "error": "HTTP 503", "retry_in": 2.0}, after=2)
        elif pick < 0.7:
            add("sms.delivered", {"message": message, "step": "alert-police", "role": "police",
                                  "contact": CONTACTS["police"][0], "to": "+32470000000", "status": "delivered"},
                after=5)
        else:
            add("case.note", {"note": {"id": rnd.randrange(10**6)}}, "officer", after=60)
    if resolved:
        add("case.resolved", {"outcome": "found", "cancelled_steps": [], "stand_down_messages": 5,
                              "note": None}, "officer", after=3600)
        for role in ROLES[:3]:
            message += 1
            add("sms.stand_down", {"message": message, "step": None, "role": role, "contact": CONTACTS[role][0],
                                   "to": "+32470000000", "body": f"{ref}: zoekactie afgerond.",
                                   "transport": "twilio", "sid": f"SM{message:032d}"}, after=1)
    return out
