"""Wiring: from a home folder and an operator to a store, contacts, playbooks and a transport.

The CLI builds one `App` per command; tests build one with a fake clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rapidresponse.clock import Clock, SystemClock
from rapidresponse.config import (
    CONTACTS_NAME,
    DB_NAME,
    PLAYBOOKS_DIR,
    Settings,
    load_settings,
)
from rapidresponse.errors import OperationalFailure
from rapidresponse.store import Store, create_store, open_store

if TYPE_CHECKING:  # loaded where used: a command that only reads a case needs none of them
    from importlib import resources
    from zoneinfo import ZoneInfo

    from rapidresponse.assessment import Assessment
    from rapidresponse.contacts import Contacts
    from rapidresponse.contactsource import ContactsState
    from rapidresponse.engine import Context
    from rapidresponse.playbooks import Playbook
    from rapidresponse.sms import Transport

WORRYING_PLAYBOOK = "worrying-situation"
DEFAULT_PLAYBOOK = "missing-minor"
PROSECUTOR = "youth_prosecutor"


@dataclass
class App:
    home: Path
    operator: str
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.home)

    @cached_property
    def store(self) -> Store:
        return open_store(self.home)

    warnings: list[str] = field(default_factory=list)
    #: Set by a command that reported the contacts' problems itself (`contacts check`).
    contacts_reported: bool = False

    def closing_warnings(self) -> list[str]:
        """What to warn about as the command ends: the fallback, if contacts were used."""
        found = list(self.warnings)
        state = self.__dict__.get("contacts_state")
        if state is not None and state.broken and not self.contacts_reported:
            found.append(state.summary())
        return found

    @cached_property
    def contacts_state(self) -> ContactsState:
        """contacts.toml if it passes every check, else the last good copy, with a warning.

        A coordinator's typo must not stop a registration at 3 a.m. (`rapidresponse.contactsource`).
        """
        from rapidresponse import contactsource

        return contactsource.load(self.home, self.store)

    @property
    def contacts(self) -> Contacts:
        """The contacts in force; OperationalFailure when there is no usable copy at all."""
        return self.contacts_state.require()

    @property
    def timezone(self) -> ZoneInfo:
        return self.contacts_state.timezone

    @property
    def playbooks_dir(self) -> Path:
        return self.home / PLAYBOOKS_DIR

    def context(self, actor: str | None = None) -> Context:
        """With no usable contacts at all, a context whose contacts have no roles: a case can
        still be registered, and nothing can be sent (`ContactsState.usable`)."""
        from rapidresponse.contacts import Contacts
        from rapidresponse.engine import Context

        book = self.contacts_state.contacts or Contacts.unusable(self.contacts_state.timezone)
        return Context(self.store, self.clock, book, actor or self.operator)

    def playbook(self, name: str) -> Playbook:
        from rapidresponse.playbooks import load_playbook

        book = self.contacts_state.contacts
        return load_playbook(self.playbooks_dir, name, book.roles if book else None)

    def playbook_for(self, assessment: Assessment) -> Playbook:
        playbook = self.playbook(WORRYING_PLAYBOOK if assessment.worrying else DEFAULT_PLAYBOOK)
        if assessment.alarming and not any(
            s.role == PROSECUTOR and s.applies(assessment.flags) for s in playbook.steps
        ):
            # A playbook from before the two judgements: an alarming disappearance (e.g. under 13)
            # is no longer "worrying", and an old missing-minor playbook never alerts the parket.
            self.warnings.append(
                f"playbook {playbook.name} alerts no {PROSECUTOR} for this alarming disappearance:"
                " phone the parket, and update the playbook from the shipped one (README, Deciding)"
            )
        return playbook

    def playbooks(self) -> list[Playbook]:
        from rapidresponse.playbooks import load_all

        book = self.contacts_state.contacts
        return load_all(self.playbooks_dir, book.roles if book else None)

    def transport(self) -> Transport:
        from rapidresponse.sms import make_transport

        transport = make_transport(self.settings)
        transport.check()
        return transport

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()


def packaged(name: str) -> resources.abc.Traversable:
    from importlib import resources

    return resources.files("rapidresponse") / "data" / name


def init_home(home: Path) -> list[tuple[str, str]]:
    """Create what is missing, keep what exists; say what was done to each file."""
    done: list[tuple[str, str]] = []
    if home.exists() and not home.is_dir():
        raise OperationalFailure(f"{home} exists and is not a folder")
    existed = home.exists()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    done.append(("kept" if existed else "created", str(home)))
    db_path = home / DB_NAME
    existed = db_path.exists()
    store = create_store(db_path)
    store.close()
    done.append(("kept" if existed else "created", str(db_path)))
    done.append(_copy_once(packaged("contacts.example.toml"), home / CONTACTS_NAME))
    (home / PLAYBOOKS_DIR).mkdir(exist_ok=True, mode=0o700)
    for source in sorted(packaged("playbooks").iterdir(), key=lambda t: t.name):
        if source.name.endswith(".toml"):
            done.append(_copy_once(source, home / PLAYBOOKS_DIR / source.name))
    return done


def _copy_once(source: resources.abc.Traversable, target: Path) -> tuple[str, str]:
    if target.exists():
        return ("kept", str(target))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(source.read_text(encoding="utf-8"))
    return ("created", str(target))
