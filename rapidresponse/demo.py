"""`rapidresponse demo`: the main job, for real, in a throw-away home, on a faster clock.

A fictitious worrying case is registered and the real daemon (scheduler, engine, dispatch, the
console transport) runs it on a `ScaledClock`, while a script plays the people: Child Focus
replies `ACK` by text, the police is acknowledged by the officer, the youth prosecutor does not
answer and is escalated, the coordinator decides societal necessity, the minor is found. Nothing
is simulated below the people: every text, time-out and stand-down is the engine's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from rapidresponse.app import App, init_home
from rapidresponse.clock import ScaledClock
from rapidresponse.config import CONFIG_NAME
from rapidresponse.timeutil import from_iso

#: Ten minutes of the demo's clock to one real second is too fast to watch; an hour a minute is not.
DEFAULT_SPEED = 60.0
OPERATOR = "demo-officer"
COORDINATOR = "demo-coordinator"

#: The daemon looks often (the clock runs fast), and a claim outlasts any console send.
DEMO_CONFIG = """\
# Written by 'rapidresponse demo': a fast tick for a fast clock. Not for real use.
[daemon]
tick_seconds = 0.1
[sms]
transport = "console"
claim_seconds = 3600
"""


@dataclass(frozen=True)
class Beat:
    """One thing a person does in the story, at a time after registration."""

    after: timedelta
    says: str
    act: Callable[[App, str], None]


def _child_focus_replies(app: App, ref: str) -> None:
    from rapidresponse.engine import get_case
    from rapidresponse.webhooks import handle_inbound

    code = get_case(app.store, ref)["ack_code"]
    number = app.contacts.roles["child_focus"].contacts[0].phone
    handle_inbound(app.context("system"), number, f"ACK {code}")


def _police_confirms(app: App, ref: str) -> None:
    from rapidresponse.engine import acknowledge

    acknowledge(app.context(), ref, "police", via="cli")


def _coordinator_decides(app: App, ref: str) -> None:
    from rapidresponse.decisions import decide

    decide(app.context(COORDINATOR), ref, "yes", "Demo: older partner and hotel stays, no safe carer")


def _found(app: App, ref: str) -> None:
    from rapidresponse.engine import resolve

    resolve(app.context(), ref, "found", "Demo: found at a friend's place, safe")


STORY = (
    Beat(timedelta(minutes=6), "Child Focus replies 'ACK <code>' by text: acknowledged by reply",
         _child_focus_replies),
    Beat(timedelta(minutes=10), "The police phones the desk; the officer types 'rapidresponse ack 1"
         " --role police'", _police_confirms),
    Beat(timedelta(minutes=20), "The coordinator decides societal necessity: yes"
         " ('rapidresponse decide'); the mandated agency is asked for contact", _coordinator_decides),
)
#: The minor is found once the youth prosecutor's silence has been escalated (or at the latest
#: then): the escalation is what the demo exists to show.
FOUND = Beat(timedelta(minutes=90), "The minor is found: 'rapidresponse resolve 1 --outcome found';"
             " everyone alerted is stood down, the return follow-up starts", _found)
#: After the minor is found, the daemon sends the stand-downs and the first follow-up.
WIND_DOWN = timedelta(minutes=4)
#: The latest the story can end, on the demo's clock.
ENDS_AFTER = FOUND.after + WIND_DOWN


def narration(event: dict[str, Any]) -> str | None:
    """What the engine did, said for the demo's watcher; None for what goes without saying."""
    d = event["detail"]
    kind = event["kind"]
    if kind == "step.calling":
        return f"No acknowledgement yet from {d.get('role')}: the engine phones them (voice call)"
    if kind == "step.next_contact":
        return f"{d.get('step')}: no answer in time, the next contact of {d.get('to_role')} is texted"
    if kind == "step.escalated":
        return f"{d.get('step')}: nobody answered in time: ESCALATED to {d.get('to_role')}"
    if kind == "step.exhausted":
        return f"{d.get('step')}: nobody of the whole chain answered"
    if kind == "sms.stand_down":
        return f"Stand-down texted to {d.get('role')} ({d.get('contact')})"
    return None


def prepare_home(home: Path) -> None:
    """A fresh home as `init` makes it, with the demo's settings; refuses an existing database."""
    from rapidresponse.config import DB_NAME
    from rapidresponse.errors import InputError

    if (home / DB_NAME).exists():
        raise InputError("the demo needs an empty folder: --home holds a rapidresponse database already")
    init_home(home)
    (home / CONFIG_NAME).write_text(DEMO_CONFIG, encoding="utf-8")


def register_case(app: App) -> str:
    """A fictitious 15-year-old, missing since two hours, with two exploitation signals."""
    from rapidresponse.engine import Person, register

    person = Person(alias="Demo-Lena (fictief)", birth_date=date(app.clock.now().year - 15, 3, 2),
                    last_seen="Demo-station (fictief)")
    registration = register(
        app.context(), person=person, missing_since=app.clock.now() - timedelta(hours=2),
        playbook=None, playbooks_for=app.playbook_for, indicators=("older-partner", "hotel"),
    )
    return registration.ref


class Demo:
    """The daemon on the caller's thread (it owns the signals); the people on another."""

    def __init__(self, home: Path, speed: float, *, daemon_out: IO[str],
                 say: Callable[[datetime, str], None]) -> None:
        self.home = home
        self.clock = ScaledClock(speed)
        self.app = App(home, OPERATOR, self.clock)
        self.say = say
        self.daemon_out = daemon_out
        self.ref: str | None = None
        self._failure: BaseException | None = None
        self._done = threading.Event()
        self._seen = 0  # the last event of the case narrated

    def run(self) -> str:
        """Play the story to its end with the real daemon; the case's reference."""
        from rapidresponse.daemon import Daemon

        daemon_app = App(self.home, OPERATOR, self.clock)
        daemon = Daemon(home=self.home, store=daemon_app.store, settings=daemon_app.settings,
                        transport=daemon_app.transport(), clock=self.clock, out=self.daemon_out)
        self.ref = register_case(self.app)
        self.say(self.clock.now(), f"The duty officer registers {self.ref}: a worrying situation."
                 " The daemon sends the first texts.")
        people = threading.Thread(target=self._people, args=(self.ref, daemon), name="demo-people",
                                  daemon=True)
        people.start()
        try:
            daemon.run_forever()
        finally:
            self._done.set()
            people.join()
            daemon_app.close()
        if self._failure is not None:
            raise self._failure
        return self.ref

    def _people(self, ref: str, daemon: Any) -> None:
        try:
            # The story's clock starts when the daemon has picked the case up, however slowly a
            # busy machine started it.
            self._wait_until(self.clock.now() + timedelta(hours=1), ref, until="step.due")
            registered = self.clock.now()
            for beat in STORY:
                self._wait_until(registered + beat.after, ref)
                self._play(beat, ref)
            self._wait_until(registered + FOUND.after, ref, until="step.escalated")
            self._play(FOUND, ref)
            self._wait_until(self.clock.now() + WIND_DOWN, ref)
        except BaseException as exc:  # raised again by run(), on the caller's thread
            self._failure = exc
        finally:
            daemon.stop()

    def _play(self, beat: Beat, ref: str) -> None:
        beat.act(self.app, ref)
        self.say(self.clock.now(), beat.says)

    def _wait_until(self, moment: datetime, ref: str, until: str | None = None) -> None:
        """Sleep on the demo's clock, telling what the engine does meanwhile; return early once
        an event of kind `until` happened. A stopped daemon (Ctrl-C) ends the story."""
        while True:
            happened = self._narrate(ref)
            if until is not None and until in happened:
                return
            left = (moment - self.clock.now()).total_seconds()
            if left <= 0:
                return
            if self._done.wait(min(left / self.clock.speed, 0.1)):
                raise KeyboardInterrupt

    def _narrate(self, ref: str) -> set[str]:
        """Say the engine's new events worth saying; the kinds of all the new events."""
        from rapidresponse import audit

        kinds = set()
        for event in audit.events(self.app.store, ref):
            if event["seq"] <= self._seen:
                continue
            self._seen = event["seq"]
            kinds.add(event["kind"])
            text = narration(event)
            if text is not None:
                self.say(from_iso(event["at"]), text)
        return kinds

    def close(self) -> None:
        self.app.close()
