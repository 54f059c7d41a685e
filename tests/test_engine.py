"""The escalation engine and the outbox, driven by a fake clock through every transition.

Each test registers a case, moves the clock, runs one pass of the machine (`tick`) and reads the
rows and the audit log: who was texted, when, and what the steps became.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    SECRETS,
    RecordingTransport,
    assert_no_secrets,
    register_minor,
    tick,
    write_playbook,
)
from rapidresponse import audit, dispatch, engine
from rapidresponse.app import App
from rapidresponse.clock import FakeClock
from rapidresponse.config import Settings
from rapidresponse.contacts import load_contacts, normalise_number
from rapidresponse.engine import Context
from rapidresponse.errors import InputError
from rapidresponse.playbooks import Playbook
from rapidresponse.sms import PermanentSendError, TransientSendError
from rapidresponse.timeutil import from_iso, to_iso

# The numbers of the packaged example contacts file, as the engine stores them (E.164).
YP1 = normalise_number("+32 470 00 00 01")  # youth_prosecutor, permanentie
YP2 = normalise_number("+32 470 00 00 02")  # youth_prosecutor, backup
CF1 = normalise_number("+32 470 00 00 11")  # child_focus
CF2 = normalise_number("+32 470 00 00 12")
OCJ = normalise_number("+32 470 00 00 21")  # mandated_agency, mon-fri 08:00-20:00 only
VK = normalise_number("+32 470 00 00 22")  # mandated_agency, always
POL1 = normalise_number("+32 470 00 00 31")  # police
POL2 = normalise_number("+32 470 00 00 32")
CO1 = normalise_number("+32 470 00 00 41")  # coordinator
CO2 = normalise_number("+32 470 00 00 42")

ALERT = "{case}: graad {grade}. Bel {callback}. Antwoord ACK {ack}"
NOTICE = "{case}: ter info. Bel {callback}."
STAND_DOWN = "{case}: teruggevonden. Geen actie meer nodig."


# ---------------------------------------------------------------- helpers


def step_toml(section: str = "steps", **fields: Any) -> str:
    """One [[steps]] table; `from_` stands for the reserved word `from`."""
    lines = [f"[[{section}]]"]
    for key, value in fields.items():
        lines.append(f"{key.rstrip('_')} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def playbook_text(
    name: str, *steps: str, stand_down: str | None = STAND_DOWN, after: tuple[str, ...] = ()
) -> str:
    parts = [f'name = "{name}"\ntitle = "Test {name}"\n', *steps]
    if stand_down:
        parts.append(f"[on_resolved]\nmessage = {json.dumps(stand_down)}\n")
    parts.extend(after)
    return "\n".join(parts)


def use_playbook(app: App, name: str, *steps: str, **kwargs: Any) -> Playbook:
    write_playbook(app.home, name, playbook_text(name, *steps, **kwargs))
    return app.playbook(name)


def chain_playbook(app: App, *, repeat: int = 0, notify: str = "first", extra: str = "") -> Playbook:
    """youth_prosecutor one by one, 15 min each, then the coordinators, `repeat` more rounds."""
    step = step_toml(
        id="alert", at="0m", role="youth_prosecutor", notify=notify, message=ALERT,
        ack_within="15m", escalate_to="coordinator", repeat=repeat,
    )
    return use_playbook(app, "chain", step, extra) if extra else use_playbook(app, "chain", step)


def report_undelivered(ctx: Context, message: dict[str, Any]) -> None:
    """The carrier's receipt for a text that did not arrive, through the webhook's own function."""
    from rapidresponse.webhooks import record_receipt

    record_receipt(ctx, message["sid"], "undelivered", "30003")


def steps_of(ctx: Context, ref: str) -> dict[str, dict[str, Any]]:
    rows = ctx.store.all(
        "SELECT * FROM steps WHERE case_id = (SELECT id FROM cases WHERE ref = ?) ORDER BY id", [ref]
    )
    return {row["step_key"]: row for row in rows}


def state_of(ctx: Context, ref: str, step: str) -> str:
    return str(steps_of(ctx, ref)[step]["state"])


def events_of(ctx: Context, kind: str, ref: str | None = None) -> list[dict[str, Any]]:
    return [e for e in audit.events(ctx.store, ref) if e["kind"] == kind]


def messages(ctx: Context, **where: Any) -> list[dict[str, Any]]:
    sql = "SELECT * FROM messages"
    if where:
        sql += " WHERE " + " AND ".join(f"{key} = ?" for key in where)
    return ctx.store.all(sql + " ORDER BY id", list(where.values()))


def new_numbers(transport: RecordingTransport, since: int) -> list[str]:
    return transport.numbers()[since:]


def advance_and_tick(
    clock: FakeClock, ctx: Context, transport: RecordingTransport, settings: Settings, **delta: float
) -> list[str]:
    """Move the clock, run a pass, return the numbers texted during the pass."""
    before = len(transport.sent)
    clock.advance(**delta)
    tick(ctx, transport, settings)
    return new_numbers(transport, before)


@pytest.fixture
def make_app(home: Path, clock: FakeClock) -> Iterator[Callable[[str], App]]:
    """An App over a home whose contacts file the test writes itself."""
    made: list[App] = []

    def build(contacts_text: str) -> App:
        for shipped in (home / "playbooks").glob("*.toml"):  # their roles are not in this file
            shipped.unlink()
        (home / "contacts.toml").write_text(contacts_text, encoding="utf-8")
        application = App(home, "officer-test", clock)
        made.append(application)
        return application

    yield build
    for application in made:
        application.close()


# ---------------------------------------------------------------- planning


def test_a_worrying_case_plans_every_step_of_its_playbook_from_registration(
    app: App, ctx: Context, clock: FakeClock
) -> None:
    now = clock.now()
    reg = register_minor(ctx, app, missing_since=now - timedelta(minutes=20))

    assert reg.playbook.name == "worrying-situation"
    planned = {s["id"]: from_iso(s["due_at"]) for s in reg.steps}
    assert planned == {
        "alert-youth-prosecutor": now,
        "alert-child-focus": now,
        "inform-police": now,
        "consult-reference-magistrate": now,  # a suspected victim
        "decide-societal-necessity": now,  # nobody decided yet: the coordinator is asked
        "inform-carer": now,  # skipped when it fires: this case names no carer
        "inform-consulent": now,
        "confirm-guardian-told": now + timedelta(hours=1),
        "coordinator-check": now + timedelta(minutes=40),  # 1h after going missing
    }
    assert {k: r["state"] for k, r in steps_of(ctx, reg.ref).items()} == dict.fromkeys(planned, "pending")
    [event] = events_of(ctx, "steps.planned", reg.ref)
    assert [s["id"] for s in event["detail"]["steps"]] == list(planned)


def test_a_case_that_is_not_worrying_runs_the_missing_minor_playbook(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app, indicators=())
    assert not reg.assessment.worrying
    assert reg.playbook.name == "missing-minor"
    assert [s["id"] for s in reg.steps] == ["alert-child-focus", "inform-police", "reassess-reminder"]


@pytest.mark.parametrize(
    ("indicators", "societal_necessity", "planned"),
    [
        (("older-partner",), "undecided", False),  # never presumed: the coordinator is asked
        (("older-partner",), "no", False),
        (("older-partner",), "yes", True),
        (("older-partner",), "suspected", True),
        (("out-of-character",), "undecided", False),  # alarming, no suspicion of victimhood
        (("out-of-character",), "yes", True),  # a professional may still decide
    ],
)
def test_the_mandated_agency_is_only_asked_on_decided_societal_necessity(
    app: App, ctx: Context, indicators: tuple[str, ...], societal_necessity: str, planned: bool
) -> None:
    reg = register_minor(ctx, app, indicators=indicators, societal_necessity=societal_necessity,
                         reason="decided at registration")
    assert ("ask-mandated-agency" in steps_of(ctx, reg.ref)) is planned
    assert "alert-youth-prosecutor" in steps_of(ctx, reg.ref)  # worrying or alarming: both alert it


def test_a_step_whose_flags_do_not_hold_is_never_planned(app: App, ctx: Context) -> None:
    pb = use_playbook(
        app, "flags",
        step_toml(id="always", at="0m", role="police", message=NOTICE),
        step_toml(id="high-only", at="0m", role="coordinator", when=["grade-high"], message=NOTICE),
        step_toml(id="victim-only", at="0m", role="child_focus", when=["suspected-victim", "worrying"],
                  message=NOTICE),
    )
    reg = register_minor(ctx, app, playbook=pb, indicators=("school-absence",))  # MEDIUM, no victim
    assert list(steps_of(ctx, reg.ref)) == ["always"]
    victim = register_minor(ctx, app, playbook=pb, indicators=("older-partner",), new_episode=True)
    assert list(steps_of(ctx, victim.ref)) == ["always", "high-only", "victim-only"]


def test_a_step_counted_from_the_disappearance_that_is_already_overdue_fires_at_once_and_says_how_late(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    registered = clock.now()
    reg = register_minor(ctx, app, missing_since=registered - timedelta(hours=3),
                         societal_necessity="no", reason="no need")  # the coordinator is not asked
    check = steps_of(ctx, reg.ref)["coordinator-check"]
    assert from_iso(check["due_at"]) == registered - timedelta(hours=2)

    tick(ctx, transport, settings)

    assert state_of(ctx, reg.ref, "coordinator-check") == "active"
    [due] = [e for e in events_of(ctx, "step.due", reg.ref) if e["detail"]["step"] == "coordinator-check"]
    assert due["detail"]["late_seconds"] == 2 * 3600
    assert due["at"] == to_iso(registered)
    [body] = [b for to, b in transport.sent if to == CO1]
    assert "3h vermist" in body  # {missing_for}
    on_time = [e for e in events_of(ctx, "step.due", reg.ref) if e["detail"]["step"] == "alert-child-focus"]
    assert on_time[0]["detail"]["late_seconds"] == 0


def test_a_step_counted_from_the_disappearance_waits_for_its_time(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, missing_since=clock.now() - timedelta(minutes=20),
                         societal_necessity="no", reason="no need")  # the coordinator is not asked
    tick(ctx, transport, settings)
    assert CO1 not in transport.numbers()
    engine.acknowledge(ctx, reg.ref, "police")  # the search started: no escalation to CO1

    assert CO1 not in advance_and_tick(clock, ctx, transport, settings, minutes=39, seconds=59)
    assert state_of(ctx, reg.ref, "coordinator-check") == "pending"
    assert advance_and_tick(clock, ctx, transport, settings, seconds=1) == [CO1]
    [due] = [e for e in events_of(ctx, "step.due", reg.ref) if e["detail"]["step"] == "coordinator-check"]
    assert due["detail"]["late_seconds"] == 0


# ---------------------------------------------------------------- notify = "first"


def test_an_acknowledgement_before_the_timeout_stops_the_chain(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app, repeat=1))
    tick(ctx, transport, settings)
    assert transport.numbers() == [YP1]
    assert reg.ack_code in transport.sent[0][1]

    clock.advance(minutes=10)
    assert engine.acknowledge(ctx, reg.ref, "youth_prosecutor", via="sms", contact="Parket") == ["alert"]

    step = steps_of(ctx, reg.ref)["alert"]
    assert step["state"] == "acknowledged"
    assert step["finished_by"] == "Parket"
    assert step["ack_deadline"] is None
    [ack] = events_of(ctx, "step.acknowledged", reg.ref)
    assert ack["detail"]["seconds_after_alert"] == 600
    assert ack["detail"]["via"] == "sms"

    for _ in range(8):  # well past every timeout, repeat included
        assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == []
    assert state_of(ctx, reg.ref, "alert") == "acknowledged"
    assert not events_of(ctx, "step.next_contact", reg.ref)


def test_no_acknowledgement_in_time_moves_to_the_next_contact(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    first_deadline = from_iso(steps_of(ctx, reg.ref)["alert"]["ack_deadline"])
    assert first_deadline == clock.now() + timedelta(minutes=15)

    assert advance_and_tick(clock, ctx, transport, settings, minutes=14, seconds=59) == []
    assert advance_and_tick(clock, ctx, transport, settings, seconds=1) == [YP2]

    step = steps_of(ctx, reg.ref)["alert"]
    assert (step["state"], step["round"], step["position"], step["escalated"]) == ("active", 0, 1, 0)
    assert from_iso(step["ack_deadline"]) == clock.now() + timedelta(minutes=15)
    [moved] = events_of(ctx, "step.next_contact", reg.ref)
    assert moved["detail"]["reason"] == "no acknowledgement in time"
    assert moved["detail"]["to"] == ["Parket backup (fictief)"]
    assert YP2 in transport.sent[-1][0] and reg.ref in transport.sent[-1][1]


def test_after_the_last_contact_every_contact_of_the_escalation_role_is_alerted(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    advance_and_tick(clock, ctx, transport, settings, minutes=15)

    assert sorted(advance_and_tick(clock, ctx, transport, settings, minutes=15)) == [CO1, CO2]

    step = steps_of(ctx, reg.ref)["alert"]
    assert (step["state"], step["position"], step["escalated"]) == ("active", 2, 1)
    [escalated] = events_of(ctx, "step.escalated", reg.ref)
    assert escalated["detail"]["to_role"] == "coordinator"
    assert escalated["at"] == to_iso(clock.now())
    assert {m["role"] for m in messages(ctx, position=2)} == {"coordinator"}


def test_repeat_runs_the_whole_chain_again_then_the_step_is_exhausted(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app, repeat=1))
    tick(ctx, transport, settings)
    texted = [transport.numbers()]
    for _ in range(5):
        texted.append(sorted(advance_and_tick(clock, ctx, transport, settings, minutes=15)))
    assert texted == [[YP1], [YP2], [CO1, CO2], [YP1], [YP2], [CO1, CO2]]
    [repeated] = events_of(ctx, "step.repeated", reg.ref)
    assert repeated["detail"] == {"step": "alert", "round": 2, "of": 2}
    assert state_of(ctx, reg.ref, "alert") == "active"

    assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == []

    step = steps_of(ctx, reg.ref)["alert"]
    assert step["state"] == "exhausted"
    assert step["ack_deadline"] is None
    [exhausted] = events_of(ctx, "step.exhausted", reg.ref)
    assert exhausted["detail"]["rounds"] == 2
    assert exhausted["at"] == to_iso(clock.now())
    assert advance_and_tick(clock, ctx, transport, settings, hours=5) == []
    # A late answer is still recorded, marked late, and the step is no longer shown as unanswered.
    assert engine.acknowledge(ctx, reg.ref, "youth_prosecutor") == ["alert"]
    assert steps_of(ctx, reg.ref)["alert"]["state"] == "acknowledged"
    [late] = events_of(ctx, "step.acknowledged", reg.ref)
    assert "exhausted" in late["detail"]["late"]


def test_without_repeat_the_step_is_exhausted_after_the_escalation_role(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    for _ in range(3):
        advance_and_tick(clock, ctx, transport, settings, minutes=15)
    assert state_of(ctx, reg.ref, "alert") == "exhausted"
    assert not events_of(ctx, "step.repeated", reg.ref)
    assert sorted(transport.numbers()) == sorted([YP1, YP2, CO1, CO2])


# ---------------------------------------------------------------- notify = "all", no ack_within


def test_notify_all_texts_every_contact_at_once(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app, notify="all"))
    tick(ctx, transport, settings)
    assert sorted(transport.numbers()) == [YP1, YP2]

    assert sorted(advance_and_tick(clock, ctx, transport, settings, minutes=15)) == [CO1, CO2]
    assert steps_of(ctx, reg.ref)["alert"]["escalated"] == 1
    assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == []
    assert state_of(ctx, reg.ref, "alert") == "exhausted"


def test_a_step_without_ack_within_is_done_once_sent(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    pb = use_playbook(
        app, "inform",
        step_toml(id="inform-all", at="0m", role="police", notify="all", message=NOTICE),
        step_toml(id="inform-first", at="0m", role="youth_prosecutor", message=NOTICE),
    )
    reg = register_minor(ctx, app, playbook=pb)
    tick(ctx, transport, settings)

    assert sorted(transport.numbers()) == sorted([POL1, POL2, YP1])  # not the prosecutor's backup
    steps = steps_of(ctx, reg.ref)
    assert {k: s["state"] for k, s in steps.items()} == {"inform-all": "done", "inform-first": "done"}
    assert all(s["ack_deadline"] is None for s in steps.values())
    assert {e["detail"]["step"] for e in events_of(ctx, "step.done", reg.ref)} == {"inform-all", "inform-first"}
    assert advance_and_tick(clock, ctx, transport, settings, hours=3) == []
    with pytest.raises(InputError, match="nothing .* is waiting"):
        engine.acknowledge(ctx, reg.ref, "police")


# ---------------------------------------------------------------- failed sends


def test_a_permanent_failure_moves_to_the_next_contact_at_once(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    transport.fail[YP1] = PermanentSendError("not a mobile number", code="21614")
    reg = register_minor(ctx, app, playbook=chain_playbook(app))

    tick(ctx, transport, settings)  # no clock movement at all

    assert transport.numbers() == [YP2]
    [failed] = messages(ctx, to_number=YP1)
    assert (failed["state"], failed["error_code"]) == ("failed", "21614")
    step = steps_of(ctx, reg.ref)["alert"]
    assert (step["position"], step["state"]) == (1, "active")
    assert from_iso(step["ack_deadline"]) == clock.now() + timedelta(minutes=15)  # YP2 gets its 15 min
    [moved] = events_of(ctx, "step.next_contact", reg.ref)
    assert moved["detail"]["reason"] == "message not delivered"
    [event] = events_of(ctx, "sms.failed", reg.ref)
    assert event["detail"]["to"] == YP1 and event["detail"]["error_code"] == "21614"


def test_when_every_contact_of_the_role_fails_the_escalation_target_is_alerted_at_once(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    transport.fail[YP1] = PermanentSendError("unreachable")
    transport.fail[YP2] = PermanentSendError("unreachable")
    reg = register_minor(ctx, app, playbook=chain_playbook(app))

    tick(ctx, transport, settings)

    assert sorted(transport.numbers()) == [CO1, CO2]
    assert steps_of(ctx, reg.ref)["alert"]["escalated"] == 1
    [escalated] = events_of(ctx, "step.escalated", reg.ref)
    assert escalated["detail"]["reason"] == "message not delivered"
    assert engine.acknowledge(ctx, reg.ref, "coordinator") == ["alert"]


def test_when_nobody_at_all_can_be_reached_the_step_is_exhausted_without_looping(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    for number in (YP1, YP2, CO1, CO2):
        transport.fail[number] = PermanentSendError("unreachable")
    reg = register_minor(ctx, app, playbook=chain_playbook(app, repeat=2))

    tick(ctx, transport, settings)

    assert state_of(ctx, reg.ref, "alert") == "exhausted"
    assert len(messages(ctx, state="failed")) == 3 * 4  # three rounds of four numbers
    [exhausted] = events_of(ctx, "step.exhausted", reg.ref)
    assert exhausted["detail"]["reason"] == "message not delivered"


def test_an_undelivered_report_moves_the_step_on_like_a_failure(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    """A delivery callback may say `undelivered` after the send looked fine."""
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    [first] = messages(ctx, to_number=YP1)
    clock.advance(minutes=2)

    report_undelivered(ctx, first)
    tick(ctx, transport, settings)

    assert transport.numbers() == [YP1, YP2]
    assert steps_of(ctx, reg.ref)["alert"]["position"] == 1


def test_a_late_failure_of_an_earlier_contact_does_not_move_the_chain_again(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    advance_and_tick(clock, ctx, transport, settings, minutes=15)  # on to YP2
    [first] = messages(ctx, to_number=YP1)

    report_undelivered(ctx, first)
    tick(ctx, transport, settings)

    assert transport.numbers() == [YP1, YP2]
    assert steps_of(ctx, reg.ref)["alert"]["position"] == 1


# ---------------------------------------------------------------- acknowledgement


def test_the_escalation_role_can_acknowledge_once_the_step_is_escalated_to_it(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app, repeat=1))
    tick(ctx, transport, settings)
    with pytest.raises(InputError, match="nothing of case .* waiting .* from coordinator"):
        engine.acknowledge(ctx, reg.ref, "coordinator")  # not escalated yet

    advance_and_tick(clock, ctx, transport, settings, minutes=15)
    advance_and_tick(clock, ctx, transport, settings, minutes=15)
    clock.advance(minutes=3)
    assert engine.acknowledge(ctx, reg.ref, "coordinator") == ["alert"]

    assert state_of(ctx, reg.ref, "alert") == "acknowledged"
    [ack] = events_of(ctx, "step.acknowledged", reg.ref)
    assert ack["detail"]["role"] == "coordinator"
    assert ack["actor"] == "officer-test"
    assert advance_and_tick(clock, ctx, transport, settings, hours=2) == []


def test_the_original_role_can_still_acknowledge_after_escalation(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    advance_and_tick(clock, ctx, transport, settings, minutes=30)
    advance_and_tick(clock, ctx, transport, settings, minutes=15)
    assert steps_of(ctx, reg.ref)["alert"]["escalated"] == 1
    assert engine.acknowledge(ctx, reg.ref, "youth_prosecutor") == ["alert"]


def test_an_acknowledgement_stops_every_waiting_step_of_that_role_and_no_other(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app)  # worrying-situation: prosecutor, Child Focus, police, ...
    tick(ctx, transport, settings)
    assert engine.acknowledge(ctx, reg.ref, "child_focus") == ["alert-child-focus"]
    states = {k: s["state"] for k, s in steps_of(ctx, reg.ref).items()}
    assert states == {
        "alert-youth-prosecutor": "active", "alert-child-focus": "acknowledged",
        "inform-police": "active", "consult-reference-magistrate": "active",
        "decide-societal-necessity": "active", "coordinator-check": "pending",
        "inform-carer": "skipped", "inform-consulent": "skipped",  # nobody named
        "confirm-guardian-told": "pending",
    }
    advance_and_tick(clock, ctx, transport, settings, minutes=5)  # the prosecutor is called
    assert YP2 in advance_and_tick(clock, ctx, transport, settings, minutes=15)
    assert CF2 not in transport.numbers()


def test_an_acknowledgement_cancels_the_steps_alerts_still_waiting_to_be_sent(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app, notify="all"))
    engine.activate_due(ctx)  # alerts queued, the outbox has not run yet
    assert {m["state"] for m in messages(ctx)} == {"queued"}

    engine.acknowledge(ctx, reg.ref, "youth_prosecutor")
    tick(ctx, transport, settings)

    assert transport.sent == []
    assert {m["state"] for m in messages(ctx)} == {"cancelled"}


def test_an_acknowledgement_with_nothing_waiting_is_refused(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    with pytest.raises(InputError, match="nothing of case .* is waiting"):
        engine.acknowledge(ctx, reg.ref, "youth_prosecutor")  # not due yet: nothing sent
    tick(ctx, transport, settings)
    engine.acknowledge(ctx, reg.ref, "youth_prosecutor")
    events_before = len(list(audit.events(ctx.store)))
    with pytest.raises(InputError, match="nothing of case .* is waiting"):
        engine.acknowledge(ctx, reg.ref, "youth_prosecutor")  # twice
    with pytest.raises(InputError, match="nothing of case .* is waiting"):
        engine.acknowledge(ctx, reg.ref, "police")  # a role the case never waited for
    assert len(list(audit.events(ctx.store))) == events_before


def test_an_acknowledgement_by_an_unknown_role_or_for_an_unknown_case_is_refused(
    app: App, ctx: Context, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    with pytest.raises(InputError, match="unknown role"):
        engine.acknowledge(ctx, reg.ref, "judge")
    with pytest.raises(InputError, match="unknown case"):
        engine.acknowledge(ctx, "RR-2026-9999", "youth_prosecutor")
    assert state_of(ctx, reg.ref, "alert") == "active"


def test_a_case_reference_is_accepted_in_lower_case(
    app: App, ctx: Context, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    assert engine.acknowledge(ctx, f" {reg.ref.lower()} ", "youth_prosecutor") == ["alert"]


# ---------------------------------------------------------------- resolve


def resolve_playbook(app: App) -> Playbook:
    return use_playbook(
        app, "resolving",
        step_toml(id="alert", at="0m", role="youth_prosecutor", message=ALERT, ack_within="15m",
                  escalate_to="coordinator", repeat=1),
        step_toml(id="police", at="10m", role="police", notify="all", message=NOTICE),
        step_toml(id="later", at="2h", role="child_focus", message=ALERT, ack_within="15m"),
        after=(
            step_toml("after_resolved", id="debrief", at="0m", role="coordinator", message=ALERT,
                      ack_within="1h"),
            step_toml("after_resolved", id="interview-due", at="72h", role="coordinator",
                      message=ALERT, ack_within="2h"),
        ),
    )


def test_resolving_cancels_what_is_pending_and_active_and_the_alerts_not_yet_sent(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=resolve_playbook(app))
    tick(ctx, transport, settings)  # YP1 texted
    clock.advance(minutes=10)
    engine.activate_due(ctx)  # the police notice is queued but not sent yet
    assert {m["state"] for m in messages(ctx, role="police")} == {"queued"}

    resolved_at = clock.now()
    result = engine.resolve(ctx, reg.ref, "found", note="Gevonden bij een vriendin")

    assert sorted(result.cancelled) == ["alert", "later", "police"]
    steps = steps_of(ctx, reg.ref)
    assert {k: steps[k]["state"] for k in ("alert", "police", "later")} == dict.fromkeys(
        ("alert", "police", "later"), "cancelled"
    )
    assert all(steps[k]["ack_deadline"] is None for k in ("alert", "police", "later"))
    assert {m["state"] for m in messages(ctx, role="police")} == {"cancelled"}
    case = engine.get_case(ctx.store, reg.ref)
    assert (case["state"], case["outcome"], case["resolved_by"]) == ("resolved", "found", "officer-test")
    [resolved] = events_of(ctx, "case.resolved", reg.ref)
    assert resolved["detail"]["outcome"] == "found"
    assert "Gevonden" not in json.dumps(resolved["detail"])  # the note's hash only

    tick(ctx, transport, settings)
    assert POL1 not in transport.numbers() and POL2 not in transport.numbers()
    for _ in range(10):  # no timeout, escalation or later step of the main phase ever fires
        advance_and_tick(clock, ctx, transport, settings, minutes=15)
    later = ctx.store.all(
        "SELECT m.kind, s.phase FROM messages m LEFT JOIN steps s ON s.id = m.step_id"
        " WHERE m.created_at > ?", [to_iso(resolved_at)],
    )
    assert later and {(m["kind"], m["phase"]) for m in later} <= {
        ("stand_down", None), ("alert", "after_resolved"),
    }
    assert [e["detail"]["step"] for e in events_of(ctx, "step.next_contact", reg.ref)] == ["debrief"]


def test_the_stand_down_goes_once_to_every_number_that_got_an_alert_and_to_no_other(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    transport.fail[YP2] = PermanentSendError("unreachable")
    reg = register_minor(ctx, app, playbook=resolve_playbook(app))
    tick(ctx, transport, settings)  # YP1
    advance_and_tick(clock, ctx, transport, settings, minutes=15)  # YP2 fails → CO1, CO2 at once
    advance_and_tick(clock, ctx, transport, settings, minutes=15)  # round 2: YP1 again
    assert transport.numbers().count(YP1) == 2

    result = engine.resolve(ctx, reg.ref, "returned")
    assert result.stand_down == 5
    before = len(transport.sent)
    tick(ctx, transport, settings)

    stand_downs = [m for m in messages(ctx, kind="stand_down")]
    assert sorted(m["to_number"] for m in stand_downs) == sorted([YP1, CO1, CO2, POL1, POL2])
    assert {m["state"] for m in stand_downs} == {"sent"}
    assert all("teruggevonden" in m["body"] and reg.ref in m["body"] for m in stand_downs)
    assert YP2 not in [to for to, _ in transport.sent[before:]]
    assert CF1 not in transport.numbers()  # its step was still pending: never alerted
    assert len(events_of(ctx, "sms.stand_down", reg.ref)) == 5

    advance_and_tick(clock, ctx, transport, settings, hours=1)
    assert len(messages(ctx, kind="stand_down")) == 5  # once


def test_after_resolved_steps_are_planned_from_the_resolve_time_and_fire_later(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=resolve_playbook(app))
    tick(ctx, transport, settings)
    clock.advance(hours=5, minutes=7)
    resolved_at = clock.now()

    result = engine.resolve(ctx, reg.ref, "found")

    assert {a["id"]: from_iso(a["due_at"]) for a in result.after} == {
        "debrief": resolved_at, "interview-due": resolved_at + timedelta(hours=72),
    }
    assert steps_of(ctx, reg.ref)["interview-due"]["phase"] == "after_resolved"
    tick(ctx, transport, settings)
    assert state_of(ctx, reg.ref, "debrief") == "active"
    assert engine.acknowledge(ctx, reg.ref, "coordinator") == ["debrief"]

    assert CO1 not in advance_and_tick(clock, ctx, transport, settings, hours=71, minutes=59, seconds=59)
    assert state_of(ctx, reg.ref, "interview-due") == "pending"
    assert advance_and_tick(clock, ctx, transport, settings, seconds=1) == [CO1]
    assert reg.ack_code in transport.sent[-1][1]
    assert advance_and_tick(clock, ctx, transport, settings, hours=2) == [CO2]  # it escalates too
    assert engine.acknowledge(ctx, reg.ref, "coordinator") == ["interview-due"]


def test_the_default_worrying_playbook_plans_the_return_interview_72_hours_after_the_return(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app)
    tick(ctx, transport, settings)
    clock.advance(hours=9)
    result = engine.resolve(ctx, reg.ref, "found")
    due = {a["id"]: from_iso(a["due_at"]) for a in result.after}
    assert due == {"return-interview-plan": clock.now(), "return-interview-due": clock.now() + timedelta(hours=72),
                   "refer-reference-centre": clock.now()}  # a suspected victim


def test_resolving_twice_or_with_an_unknown_outcome_is_refused(app: App, ctx: Context) -> None:
    reg = register_minor(ctx, app, playbook=resolve_playbook(app))
    events_before = len(list(audit.events(ctx.store)))
    with pytest.raises(InputError, match="unknown outcome"):
        engine.resolve(ctx, reg.ref, "gone")
    assert engine.get_case(ctx.store, reg.ref)["state"] == "open"
    assert len(list(audit.events(ctx.store))) == events_before

    engine.resolve(ctx, reg.ref, "withdrawn")
    with pytest.raises(InputError, match="already resolved"):
        engine.resolve(ctx, reg.ref, "found")
    assert engine.get_case(ctx.store, reg.ref)["outcome"] == "withdrawn"
    assert len(events_of(ctx, "case.resolved", reg.ref)) == 1
    with pytest.raises(InputError, match="unknown case"):
        engine.resolve(ctx, "RR-1999-0001", "found")


def test_a_send_in_flight_at_resolve_time_still_gets_a_stand_down(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    """The text may have left: a duplicate stand-down is better than a silent one."""
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    engine.activate_due(ctx)
    claimed = dispatch.claim(ctx, settings)
    engine.resolve(ctx, reg.ref, "found")
    dispatch.send_claimed(ctx, transport, settings, claimed)
    tick(ctx, transport, settings)
    assert transport.numbers() == [YP1, YP1]
    assert [m["kind"] for m in messages(ctx)] == ["alert", "stand_down"]


def test_an_alert_waiting_to_retry_after_a_time_out_still_gets_a_stand_down(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    """A time-out does not say the text did not arrive."""
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    transport.fail[YP1] = TransientSendError("read timed out")
    tick(ctx, transport, settings)
    assert messages(ctx)[0]["state"] == "queued"
    del transport.fail[YP1]
    assert engine.resolve(ctx, reg.ref, "found").stand_down == 1
    tick(ctx, transport, settings)
    assert [m["kind"] for m in messages(ctx) if m["state"] == "sent"] == ["stand_down"]
    assert transport.numbers() == [YP1]


def test_an_interrupted_alert_of_a_resolved_case_is_not_sent_again_after_the_stand_down(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    engine.activate_due(ctx)
    [claimed] = dispatch.claim(ctx, settings)  # ... and the process dies mid-send
    assert engine.resolve(ctx, reg.ref, "found").stand_down == 1  # it may have left: stand it down
    tick(ctx, transport, settings)
    assert transport.sent == []  # the stand-down waits while the alert may still be in flight

    stand_down = [(YP1, f"{reg.ref}: teruggevonden. Geen actie meer nodig.")]
    assert advance_and_tick(clock, ctx, transport, settings, seconds=settings.claim_seconds + 1) == [YP1]
    assert transport.sent == stand_down  # the stand-down, and never the old alert after it
    # its send may have succeeded: never called cancelled (issue 7)
    assert messages(ctx, id=claimed["id"])[0]["state"] == "unconfirmed"
    [cancelled] = events_of(ctx, "sms.cancelled", reg.ref)
    assert cancelled["detail"]["was"] == "sending"


def test_a_stand_down_never_overtakes_an_alert_still_in_flight(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    engine.activate_due(ctx)
    claimed = dispatch.claim(ctx, settings)  # a slow send, still going
    engine.resolve(ctx, reg.ref, "found")
    tick(ctx, transport, settings)
    assert transport.sent == []
    dispatch.send_claimed(ctx, transport, settings, claimed)  # the slow send completes
    tick(ctx, transport, settings)
    assert ["graad" in body for _, body in transport.sent] == [True, False]  # alert, then stand-down
    assert "teruggevonden" in transport.sent[-1][1]


def test_an_alert_back_for_a_retry_after_the_return_is_not_sent(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    engine.activate_due(ctx)
    claimed = dispatch.claim(ctx, settings)
    engine.resolve(ctx, reg.ref, "found")
    transport.fail[YP1] = TransientSendError("rate limited", code="20429")
    dispatch.send_claimed(ctx, transport, settings, claimed)  # the in-flight send came back: 429
    del transport.fail[YP1]
    advance_and_tick(clock, ctx, transport, settings, minutes=5)
    assert [m["kind"] for m in messages(ctx) if m["state"] == "sent"] == ["stand_down"]
    assert len(transport.sent) == 1


# ---------------------------------------------------------------- the playbook snapshot


def test_editing_the_playbook_after_registration_changes_nothing_for_the_running_case(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    snapshot_hash = engine.get_case(ctx.store, reg.ref)["playbook_hash"]

    edited = chain_playbook(  # another text, a longer timeout, another escalation role, a new step
        app, extra=step_toml(id="extra", at="0m", role="police", notify="all", message=NOTICE)
    )
    text = (app.playbooks_dir / "chain.toml").read_text(encoding="utf-8")
    text = text.replace('"15m"', '"2h"').replace('"coordinator"', '"child_focus"')
    text = text.replace("graad {grade}", "gewijzigd")
    write_playbook(app.home, "chain", text)
    assert app.playbook("chain").digest != snapshot_hash != edited.digest

    tick(ctx, transport, settings)
    assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == [YP2]
    assert sorted(advance_and_tick(clock, ctx, transport, settings, minutes=15)) == [CO1, CO2]

    assert list(steps_of(ctx, reg.ref)) == ["alert"]
    assert all("gewijzigd" not in body for _, body in transport.sent)
    assert engine.get_case(ctx.store, reg.ref)["playbook_hash"] == snapshot_hash

    other = register_minor(ctx, app, playbook=app.playbook("chain"), new_episode=True)  # takes the edit
    assert list(steps_of(ctx, other.ref)) == ["alert", "extra"]


# ---------------------------------------------------------------- on-duty hours


def test_a_contact_outside_their_hours_is_skipped(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    """OCJ is on duty mon-fri 08:00-20:00; START is a Saturday afternoon in Brussels."""
    reg = register_minor(ctx, app, societal_necessity="yes", reason="seen with older men")
    tick(ctx, transport, settings)

    assert VK in transport.numbers()
    assert OCJ not in transport.numbers()
    [skipped] = events_of(ctx, "step.skipped_contact", reg.ref)
    assert skipped["detail"] == {"step": "ask-mandated-agency", "role": "mandated_agency",
                                 "position": 0, "why": "off duty"}
    assert steps_of(ctx, reg.ref)["ask-mandated-agency"]["position"] == 1


def test_a_contact_within_their_hours_is_texted_first(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    clock.set(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))  # Monday 10:00 in Brussels
    reg = register_minor(ctx, app, societal_necessity="yes", reason="seen with older men")
    tick(ctx, transport, settings)
    assert OCJ in transport.numbers()
    assert VK not in transport.numbers()
    assert not events_of(ctx, "step.skipped_contact", reg.ref)


NIGHT_CONTACTS = """
timezone = "Europe/Brussels"
callback = "+32 470 00 00 99"

[roles.office]
title = "Office hours only"
contacts = [
  { name = "Office one", phone = "+32 470 00 09 01", hours = "mon-fri 08:00-18:00" },
  { name = "Office two", phone = "+32 470 00 09 02", hours = "mon-fri 09:00-17:00" },
]

[roles.coordinator]
contacts = [{ name = "Coordinator", phone = "+32 470 00 09 41" }]
"""
OFFICE1 = normalise_number("+32 470 00 09 01")
OFFICE2 = normalise_number("+32 470 00 09 02")
NIGHT_CO = normalise_number("+32 470 00 09 41")


@pytest.mark.parametrize("notify", ["all", "first"])
def test_when_nobody_of_a_role_is_on_duty_everybody_of_it_is_texted(
    make_app: Callable[[str], App], clock: FakeClock, transport: RecordingTransport,
    settings: Settings, notify: str,
) -> None:
    app = make_app(NIGHT_CONTACTS)
    ctx = app.context()
    pb = use_playbook(app, "office", step_toml(
        id="alert", at="0m", role="office", notify=notify, message=ALERT, ack_within="15m",
        escalate_to="coordinator",
    ))
    reg = register_minor(ctx, app, playbook=pb)  # Saturday: both off duty

    tick(ctx, transport, settings)
    if notify == "all":
        assert sorted(transport.numbers()) == [OFFICE1, OFFICE2]
    else:
        assert transport.numbers() == [OFFICE1]
        assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == [OFFICE2]
    assert not events_of(ctx, "step.skipped_contact", reg.ref)
    assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == [NIGHT_CO]


def test_on_duty_hours_are_judged_when_the_chain_reaches_the_contact(
    make_app: Callable[[str], App], clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    app = make_app(NIGHT_CONTACTS)
    ctx = app.context()
    clock.set(datetime(2026, 11, 30, 7, 50, tzinfo=UTC))  # Monday 08:50: only Office one is in
    pb = use_playbook(app, "office", step_toml(
        id="alert", at="0m", role="office", message=ALERT, ack_within="15m",
    ))
    reg = register_minor(ctx, app, playbook=pb)
    tick(ctx, transport, settings)
    assert transport.numbers() == [OFFICE1]
    assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == [OFFICE2]  # 09:05: in
    assert steps_of(ctx, reg.ref)["alert"]["position"] == 1


# ---------------------------------------------------------------- daylight saving time


@pytest.mark.parametrize(
    ("registered", "local_hours"),
    [
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 3),  # 01:30 CET → 04:30 CEST
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), 1),  # 02:30 CEST → 03:30 CET
    ],
    ids=["march", "october"],
)
def test_an_escalation_across_a_daylight_saving_change_fires_after_exactly_its_offset(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings,
    registered: datetime, local_hours: int,
) -> None:
    clock.set(registered)
    pb = use_playbook(
        app, "dst",
        step_toml(id="alert", at="0m", role="youth_prosecutor", notify="all", message=ALERT,
                  ack_within="2h", escalate_to="coordinator"),
        step_toml(id="two-hours", at="2h", role="child_focus", message=NOTICE),
    )
    reg = register_minor(ctx, app, playbook=pb, missing_since=registered - timedelta(minutes=5))
    tick(ctx, transport, settings)
    tz = ctx.contacts.timezone

    due = from_iso(steps_of(ctx, reg.ref)["two-hours"]["due_at"])
    deadline = from_iso(steps_of(ctx, reg.ref)["alert"]["ack_deadline"])
    assert due - registered == timedelta(hours=2)
    assert deadline - registered == timedelta(hours=2)
    local_gap = due.astimezone(tz).replace(tzinfo=None) - registered.astimezone(tz).replace(tzinfo=None)
    assert local_gap == timedelta(hours=local_hours)  # the wall clock jumped; the escalation did not

    assert advance_and_tick(clock, ctx, transport, settings, hours=1, minutes=59, seconds=59) == []
    fired = advance_and_tick(clock, ctx, transport, settings, seconds=1)
    assert sorted(fired) == sorted([CF1, CO1, CO2])
    [escalated] = events_of(ctx, "step.escalated", reg.ref)
    assert from_iso(escalated["at"]) - registered == timedelta(hours=2)
    [two_hours] = [e for e in events_of(ctx, "step.due", reg.ref) if e["detail"]["step"] == "two-hours"]
    assert from_iso(two_hours["at"]) - registered == timedelta(hours=2)
    assert two_hours["detail"]["late_seconds"] == 0


# ---------------------------------------------------------------- the outbox


def test_a_send_interrupted_before_its_result_was_recorded_is_sent_again_as_a_possible_duplicate(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    engine.activate_due(ctx)
    [claimed] = dispatch.claim(ctx, settings)  # ... and the process dies here
    assert messages(ctx)[0]["state"] == "sending"

    assert advance_and_tick(clock, ctx, transport, settings, seconds=settings.claim_seconds - 1) == []
    assert advance_and_tick(clock, ctx, transport, settings, seconds=1) == [YP1]

    [msg] = messages(ctx)
    assert (msg["state"], msg["attempts"], msg["possible_duplicate"]) == ("sent", 2, 1)
    [reclaimed] = events_of(ctx, "sms.reclaimed", reg.ref)
    assert reclaimed["detail"]["message"] == claimed["id"]
    [sent] = events_of(ctx, "sms.sent", reg.ref)
    assert sent["detail"]["possible_duplicate"] is True
    assert sent["detail"]["attempt"] == 2


def test_a_normal_send_is_not_marked_as_a_possible_duplicate(
    app: App, ctx: Context, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    [sent] = events_of(ctx, "sms.sent", reg.ref)
    assert "possible_duplicate" not in sent["detail"]
    assert sent["detail"]["sid"].startswith("SM") and sent["detail"]["transport"] == "recording"
    assert not events_of(ctx, "sms.reclaimed")


def test_two_processes_claiming_at_once_never_claim_the_same_message(
    app: App, ctx: Context, clock: FakeClock, settings: Settings
) -> None:
    pb = use_playbook(app, "many", step_toml(id="all", at="0m", role="police", notify="all", message=NOTICE))
    for _ in range(8):
        register_minor(ctx, app, playbook=pb, new_episode=True)
    engine.activate_due(ctx)
    assert len(messages(ctx, state="queued")) == 16

    others = [App(app.home, "officer-test", clock) for _ in range(4)]
    try:
        contexts = [other.context() for other in others]
        start = threading.Barrier(len(contexts))
        claims: list[list[int]] = [[] for _ in contexts]

        def work(index: int) -> None:
            start.wait(timeout=5)
            while batch := dispatch.claim(contexts[index], settings, limit=3):
                claims[index].extend(row["id"] for row in batch)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(contexts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    finally:
        for other in others:
            other.close()

    every = [mid for batch in claims for mid in batch]
    assert len(every) == len(set(every)) == 16
    assert {m["state"] for m in messages(ctx)} == {"sending"}
    assert {m["attempts"] for m in messages(ctx)} == {1}


def test_a_claim_still_within_its_deadline_is_left_alone(
    app: App, ctx: Context, clock: FakeClock, settings: Settings
) -> None:
    register_minor(ctx, app, playbook=chain_playbook(app))
    engine.activate_due(ctx)
    assert len(dispatch.claim(ctx, settings)) == 1
    clock.advance(seconds=settings.claim_seconds - 1)
    assert dispatch.claim(ctx, settings) == []


def test_a_transient_error_is_retried_with_backoff_and_never_burns_the_chain(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    transport.fail[YP1] = TransientSendError("server error", code="20500")
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)

    [msg] = messages(ctx)
    assert (msg["state"], msg["attempts"]) == ("queued", 1)
    assert from_iso(msg["not_before"]) > clock.now()
    delays = []
    for attempt in range(2, settings.max_attempts + 1):
        [msg] = messages(ctx, to_number=YP1)
        wait = from_iso(msg["not_before"]) - clock.now()
        delays.append(wait.total_seconds())
        assert advance_and_tick(clock, ctx, transport, settings, seconds=wait.total_seconds() - 0.5) == []
        assert messages(ctx, to_number=YP1)[0]["attempts"] == attempt - 1  # not yet
        sent = advance_and_tick(clock, ctx, transport, settings, seconds=0.5)
        assert messages(ctx, to_number=YP1)[0]["attempts"] == attempt
        if attempt < settings.max_attempts:
            assert sent == []

    retries = events_of(ctx, "sms.retry", reg.ref)
    assert [e["detail"]["attempt"] for e in retries] == list(range(1, settings.max_attempts + 1))
    assert all(0 < d <= dispatch.BACKOFF_CAP for d in delays)
    assert all(e["detail"]["error_code"] == "20500" for e in retries)
    assert retries[-1]["detail"]["not_getting_through"] is True

    # The provider is down, not the number: the message waits, the chain does not burn through
    # the backups (they would fail the same way), and status calls for a human.
    [msg] = messages(ctx, to_number=YP1)
    assert msg["state"] == "queued" and transport.numbers() == []
    assert steps_of(ctx, reg.ref)["alert"]["position"] == 0
    from rapidresponse.review import status

    report = status(ctx.store, clock.now(), settings)
    assert report["needs_attention"] and report["not_getting_through"][0]["role"] == "youth_prosecutor"

    del transport.fail[YP1]  # the provider is back
    advance_and_tick(clock, ctx, transport, settings, seconds=dispatch.BACKOFF_CAP)
    assert transport.numbers() == [YP1]
    assert messages(ctx, to_number=YP1)[0]["state"] == "sent"


def test_a_transient_error_that_clears_is_sent_on_the_next_attempt(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    transport.fail[YP1] = TransientSendError("rate limited", code="20429", retry_after=30)
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    [msg] = messages(ctx)
    assert from_iso(msg["not_before"]) - clock.now() >= timedelta(seconds=30)  # as the provider asked

    del transport.fail[YP1]
    assert advance_and_tick(clock, ctx, transport, settings, seconds=29) == []
    assert advance_and_tick(clock, ctx, transport, settings, seconds=31) == [YP1]
    [msg] = messages(ctx)
    assert (msg["state"], msg["attempts"], msg["possible_duplicate"]) == ("sent", 2, 0)
    assert steps_of(ctx, reg.ref)["alert"]["position"] == 0


def test_backoff_grows_and_is_bounded() -> None:
    import random

    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(dispatch.BACKOFF_CAP, dispatch.BACKOFF_BASE * 2 ** (attempt - 1))
        assert ceiling / 2 <= dispatch.backoff(attempt, rng=rng) <= ceiling
    assert dispatch.backoff(1, retry_after=90, rng=rng) == 90


def test_a_bug_in_the_transport_does_not_lose_the_message(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    transport.fail[YP1] = KeyError("oops")
    register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    [msg] = messages(ctx)
    assert (msg["state"], msg["error_text"]) == ("queued", "KeyError in the transport")


def test_messages_due_together_are_sent_in_parallel(
    app: App, ctx: Context, settings: Settings
) -> None:
    """Four sends that can only finish together: sequential sending would break the barrier."""
    together = threading.Barrier(4, timeout=5)

    class SlowTransport(RecordingTransport):
        def send(self, to: str, body: str) -> Any:
            together.wait()
            return super().send(to, body)

    slow = SlowTransport()
    pb = use_playbook(app, "many", step_toml(id="all", at="0m", role="police", notify="all", message=NOTICE))
    register_minor(ctx, app, playbook=pb)
    register_minor(ctx, app, playbook=pb, new_episode=True)
    report = tick(ctx, slow, settings)
    assert len(report.sent) == 4 and not report.failed and not report.retrying


# ---------------------------------------------------------------- the whole story


def test_after_a_full_scenario_the_audit_chain_verifies_and_holds_no_personal_data(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    transport.fail[CF1] = PermanentSendError("unreachable")
    transport.fail[POL2] = TransientSendError("busy")
    reg = register_minor(ctx, app, missing_since=clock.now() - timedelta(hours=2))
    tick(ctx, transport, settings)
    del transport.fail[POL2]
    advance_and_tick(clock, ctx, transport, settings, minutes=15)
    advance_and_tick(clock, ctx, transport, settings, minutes=15)
    engine.acknowledge(ctx, reg.ref, "youth_prosecutor", note="Zorbalina gebeld")
    engine.add_note(ctx, reg.ref, "Zorbalina gezien in Vlinderdorp")
    advance_and_tick(clock, ctx, transport, settings, hours=1)
    engine.resolve(ctx, reg.ref, "found", note="Zorbalina Quixtersen thuis")
    advance_and_tick(clock, ctx, transport, settings, minutes=1)
    engine.acknowledge(ctx, reg.ref, "coordinator")
    advance_and_tick(clock, ctx, transport, settings, hours=73)

    result = audit.verify(ctx.store)
    assert result.ok, result.problem
    kinds = {e["kind"] for e in audit.events(ctx.store)}
    assert {
        "case.registered", "case.assessed", "steps.planned", "step.due", "sms.sent", "sms.failed",
        "sms.retry", "step.next_contact", "step.escalated", "step.acknowledged", "case.note",
        "case.resolved", "sms.stand_down",
    } <= kinds
    assert result.count == len(list(audit.events(ctx.store)))
    for event in audit.events(ctx.store):
        assert_no_secrets(json.dumps(event, ensure_ascii=False))
    for _, body in transport.sent:
        assert_no_secrets(body)
    assert all(secret not in m["body"] for m in messages(ctx) for secret in SECRETS)


def test_a_contact_removed_mid_chain_skips_nobody(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    """The next contact is whoever of the role was not messaged yet, whatever the file's order."""
    register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    assert transport.numbers() == [YP1]
    contacts = app.home / "contacts.toml"
    contacts.write_text(contacts.read_text().replace(
        '{ name = "Parket permanentie (fictief)", phone = "+32 470 00 00 01" },', ""))
    ctx = engine.Context(ctx.store, clock, load_contacts(contacts), ctx.actor)
    assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == [YP2]  # not skipped
    assert advance_and_tick(clock, ctx, transport, settings, minutes=15) == [CO1, CO2]


def test_a_late_receipt_after_the_return_does_not_restart_the_chain(
    app: App, ctx: Context, clock: FakeClock, transport: RecordingTransport, settings: Settings
) -> None:
    reg = register_minor(ctx, app, playbook=chain_playbook(app))
    tick(ctx, transport, settings)
    engine.resolve(ctx, reg.ref, "found")
    tick(ctx, transport, settings)
    [alert] = messages(ctx, kind="alert")
    report_undelivered(ctx, alert)
    assert advance_and_tick(clock, ctx, transport, settings, minutes=1) == []
    assert YP2 not in transport.numbers()
