"""A playbook as a coordinator reads it: a timeline of its steps, who each would text now, and
the very text a partner would receive for an example case, with what it costs in SMS segments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rapidresponse import flagspace
from rapidresponse.contacts import Contacts
from rapidresponse.playbooks import Playbook, Step, render
from rapidresponse.segments import Length, measure
from rapidresponse.timeutil import format_duration

EXAMPLE_SEQ = 1
EXAMPLE_AGE = 15
EXAMPLE_ACK = "1234"


@dataclass(frozen=True)
class Line:
    """One step (or the stand-down) of the timeline."""

    phase: str  # 'main', 'stand-down' or 'after_resolved'
    id: str
    offset: str  # '0m after registration', '1h after missing', '72h after resolution'
    role: str
    when: tuple[str, ...]
    notify: str
    recipients: tuple[str, ...]  # in the order they would be texted now
    off_duty: tuple[str, ...]
    escalate_to: str | None
    escalation_recipients: tuple[str, ...]
    ack_within: str | None
    repeat: int
    text: str
    length: Length
    call: str | None = None  # 'at once' or the call_after duration; None: never calls
    spoken: str | None = None  # what the call says, as a voice reads it

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "id": self.id, "offset": self.offset, "role": self.role,
            "when": list(self.when), "notify": self.notify, "recipients": list(self.recipients),
            "off_duty": list(self.off_duty), "escalate_to": self.escalate_to,
            "escalation_recipients": list(self.escalation_recipients), "ack_within": self.ack_within,
            "repeat": self.repeat, "text": self.text, "encoding": self.length.encoding,
            "units": self.length.units, "segments": self.length.segments,
            "call": self.call, "spoken": self.spoken,
        }


def example_values(
    contacts: Contacts, role: str, now: datetime, missing_for: timedelta, grade: str
) -> dict[str, Any]:
    """The values of an example case registered now."""
    title = contacts.roles[role].title if role in contacts.roles else role
    return {
        "case": f"RR-{now.astimezone(contacts.timezone).year}-{EXAMPLE_SEQ:04d}",
        "grade": grade,
        "age": EXAMPLE_AGE, "ack": EXAMPLE_ACK, "callback": contacts.callback_display,
        "missing_for": format_duration(missing_for), "role_title": title,
    }


_BASES = {"registered": "registration", "missing": "going missing", "resolved": "resolution"}


def _who(contacts: Contacts, role: str, now: datetime) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Who of a role would be texted now, in order, and who is skipped as off duty."""
    if role not in contacts.roles:
        return (), ()
    order = contacts.chain_order(role, now)
    on_duty = set(contacts.on_duty(role, now))
    return (tuple(c.name for c in order if c in on_duty),
            tuple(c.name for c in order if c not in on_duty))


def _line(contacts: Contacts, step: Step, phase: str, now: datetime, grade: str) -> Line:
    recipients, off = _who(contacts, step.role, now)
    escalation, _ = _who(contacts, step.escalate_to, now) if step.escalate_to else ((), ())
    values = example_values(contacts, step.role, now, step.at, grade)
    text = render(step.message, values)
    call = spoken = None
    if step.calls:
        from rapidresponse.voice import spoken_values

        call = "at once" if step.call else format_duration(step.call_after) if step.call_after else None
        spoken = render(step.voice_template, spoken_values(values))
    return Line(
        phase=phase, id=step.id, offset=f"{format_duration(step.at)} after {_BASES[step.base]}",
        role=step.role, when=step.when, notify=step.notify, recipients=recipients, off_duty=off,
        escalate_to=step.escalate_to, escalation_recipients=escalation,
        ack_within=format_duration(step.ack_within) if step.ack_within else None,
        repeat=step.repeat, text=text, length=measure(text), call=call, spoken=spoken,
    )


def timeline(playbook: Playbook, contacts: Contacts, now: datetime) -> list[Line]:
    """Every step in time order, the stand-down, then the after-return steps; the example case
    is the one that fires most of the steps (as `simulate` uses by default)."""
    grade = flagspace.firing_most(playbook.steps).grade_word
    lines = [_line(contacts, s, "main", now, grade) for s in sorted(playbook.steps, key=_order)]
    roles = sorted({r for s in playbook.steps for r in s.roles()})
    # One stand-down per outcome (`message` stands in for outcomes without their own text).
    texts = {"on_resolved": playbook.stand_down,
             **{f"on_resolved.{k}": v for k, v in playbook.stand_downs.items()}}
    for key, template in texts.items():
        if not template:
            continue
        text = render(template, example_values(contacts, roles[0] if roles else "", now,
                                               timedelta(hours=2), grade))
        lines.append(Line(
            phase="stand-down", id=key, offset="at resolution", role=", ".join(roles),
            when=(), notify="all", recipients=("everyone who got an alert",), off_duty=(),
            escalate_to=None, escalation_recipients=(), ack_within=None, repeat=0, text=text,
            length=measure(text),
        ))
    after = sorted(playbook.after_resolved, key=_order)
    lines += [_line(contacts, s, "after_resolved", now, grade) for s in after]
    return lines


def _order(step: Step) -> timedelta:
    """By offset; the file's order among equals (a minor goes missing before registration, so
    '1h after going missing' is at most '1h after registration')."""
    return step.at
