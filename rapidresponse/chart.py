"""The timeline chart's geometry: one lane per role, a mark per alert, delivery, acknowledgement,
escalation and exhausted chain, placed by the time since registration.

Pure data (numbers and short labels); the template draws it as inline SVG, so the page needs no
script and no network, and prints as it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rapidresponse.timeline import Timeline
from rapidresponse.timeutil import from_iso

WIDTH, LANE_HEIGHT, LEFT, RIGHT, TOP, AXIS = 760, 34, 150, 20, 10, 30

#: Timeline entry kind (or message state) → the mark drawn for it.
MARKS = {
    "message.alert": "alert",
    "step.acknowledged": "ack",
    "step.escalated": "escalation",
    "step.next_contact": "escalation",
    "step.exhausted": "exhausted",
    "message.stand-down": "stand-down",
}


#: Drawing order: a mark of a higher layer is drawn over a lower one at the same place.
LAYER = {"alert": 0, "stand-down": 0, "delivered": 1, "failed": 1, "escalation": 2, "ack": 3, "exhausted": 4}


@dataclass
class Mark:
    x: float
    y: float
    shape: str
    title: str
    seq: int


@dataclass
class Chart:
    width: int
    height: int
    lanes: list[dict[str, Any]] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    left: int = LEFT
    right: int = WIDTH - RIGHT
    axis_y: int = 0


def build(story: Timeline) -> Chart:
    lanes: list[str] = []
    for entry in story.entries:
        charted = entry.kind in MARKS or entry.state in ("delivered", "failed", "undelivered")
        if entry.lane and charted and entry.lane not in lanes:
            lanes.append(entry.lane)
    span = max([e.since_registration_seconds or 0 for e in story.entries] + [60.0])
    plot = WIDTH - LEFT - RIGHT

    def x_of(seconds: float | None) -> float:
        return round(LEFT + plot * max(seconds or 0.0, 0.0) / span, 1)

    def y_of(lane: str) -> float:
        return TOP + LANE_HEIGHT * lanes.index(lane) + LANE_HEIGHT / 2

    chart = Chart(WIDTH, TOP + LANE_HEIGHT * max(len(lanes), 1) + AXIS)
    chart.axis_y = TOP + LANE_HEIGHT * max(len(lanes), 1)
    chart.lanes = [{"role": role, "y": TOP + LANE_HEIGHT * i, "mid": y_of(role), "height": LANE_HEIGHT}
                   for i, role in enumerate(lanes)]
    for entry in story.entries:
        shape = MARKS.get(entry.kind)
        if not entry.lane or entry.lane not in lanes:
            continue
        if shape:
            chart.marks.append(Mark(x_of(entry.since_registration_seconds), y_of(entry.lane), shape,
                                    entry.what, entry.seq))
        if entry.kind.startswith("message.") and entry.state in ("delivered", "failed", "undelivered"):
            at = (from_iso(entry.state_at or entry.at) - from_iso(story.registered_at)).total_seconds()
            chart.marks.append(Mark(x_of(at), y_of(entry.lane),
                                    "delivered" if entry.state == "delivered" else "failed",
                                    f"{entry.state}: {entry.what}", entry.seq))
    # texts underneath, what people did on top: an escalation at the moment of its alert shows
    chart.marks.sort(key=lambda m: (LAYER.get(m.shape, 0), m.seq))
    step = _tick_step(span)
    t = 0.0
    while t <= span + 1:
        chart.ticks.append({"x": x_of(t), "label": _label(t)})
        t += step
    return chart


def _tick_step(span: float) -> float:
    for step in (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800):
        if span / step <= 10:
            return float(step)
    return span / 10


def _label(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"+{minutes}m"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"+{hours}h{rest:02d}" if rest else f"+{hours}h"
    return f"+{hours // 24}d{hours % 24}h" if hours % 24 else f"+{hours // 24}d"
