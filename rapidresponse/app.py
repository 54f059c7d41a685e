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
from rapidresponse.contacts import Contacts, load_contacts
from rapidresponse.errors import InputError, OperationalFailure
from rapidresponse.store import Store, create_store, open_store

if TYPE_CHECKING:  # loaded where used: a command that only reads a case needs none of them
    from importlib import resources

    from rapidresponse.assessment import Assessment
    from rapidresponse.engine import Context
    from rapidresponse.playbooks import Playbook
    from rapidresponse.sms import Transport

WORRYING_PLAYBOOK = "worrying-situation"
LAST_GOOD_CONTACTS = "contacts.last-good.toml"
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

    @cached_property
    def contacts(self) -> Contacts:
        """contacts.toml; if an edit broke it, the last good copy, with a warning.

        A coordinator's typo must not stop a registration at 3 a.m.: the last file that loaded
        is kept beside it (0600) and used until the file is fixed; `status` shows it in red.
        """
        path = self.home / CONTACTS_NAME
        good = self.home / LAST_GOOD_CONTACTS
        try:
            book = load_contacts(path)
        except InputError as exc:
            if not good.exists() or not path.exists():
                raise
            self.warnings.append(
                f"{exc} — using the last good copy ({good.name}) until contacts.toml is fixed"
            )
            return load_contacts(good)
        text = path.read_bytes()
        if not good.exists() or good.read_bytes() != text:
            fd = os.open(good, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(text)
        return book

    def contacts_problem(self) -> str | None:
        """Why contacts.toml does not load now, if it does not."""
        try:
            load_contacts(self.home / CONTACTS_NAME)
        except InputError as exc:
            return str(exc)
        return None

    @property
    def playbooks_dir(self) -> Path:
        return self.home / PLAYBOOKS_DIR

    def context(self, actor: str | None = None) -> Context:
        from rapidresponse.engine import Context

        return Context(self.store, self.clock, self.contacts, actor or self.operator)

    def playbook(self, name: str) -> Playbook:
        from rapidresponse.playbooks import load_playbook

        return load_playbook(self.playbooks_dir, name, self.contacts.roles)

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

        return load_all(self.playbooks_dir, self.contacts.roles)

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
