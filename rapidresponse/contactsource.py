"""The one source of contacts for every command, the daemon and the webhook server.

A coordinator's edit must never stop the response. `contacts.toml` is put in force only when it
parses *and* has every role the playbooks use (the files, and the snapshots of running cases);
otherwise everything runs on the last copy that passed (`contacts.last-good.toml`, 0600), with a
warning, and `status` is red. The last good copy is replaced only by a file that passes every
check. With no usable copy at all, the case is still registered, its alerts wait, and `status`
says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from rapidresponse import tomlfile
from rapidresponse.casecontacts import is_case_role
from rapidresponse.config import CONTACTS_NAME, PLAYBOOKS_DIR
from rapidresponse.contacts import Contacts, normalise_number, number_as_written, read_contacts
from rapidresponse.errors import InputError, OperationalFailure
from rapidresponse.playbooks import Playbook, from_snapshot, load_playbook
from rapidresponse.states import RUNNING_STEPS, sql
from rapidresponse.store import Store

LAST_GOOD_NAME = "contacts.last-good.toml"
DEFAULT_TIMEZONE = ZoneInfo("Europe/Brussels")


@dataclass(frozen=True)
class ContactsState:
    """What is in force now, and why contacts.toml is not, if it is not."""

    contacts: Contacts | None  # None: no usable copy at all
    using: str  # 'contacts.toml', 'contacts.last-good.toml' or 'nothing'
    problems: tuple[str, ...] = ()  # every reason contacts.toml is not in force
    #: Which playbook steps use each role (only roles some playbook or running case uses).
    used: dict[str, list[str]] = field(default_factory=dict)
    #: contacts.toml as it parsed, in force or not (None: it does not parse).
    parsed: Contacts | None = None

    @property
    def broken(self) -> bool:
        return bool(self.problems)

    @property
    def usable(self) -> bool:
        return self.contacts is not None

    @property
    def timezone(self) -> ZoneInfo:
        return self.contacts.timezone if self.contacts else DEFAULT_TIMEZONE

    def fallback_sentence(self) -> str:
        if self.contacts is not None:
            return f"running on the last good copy ({LAST_GOOD_NAME}) until contacts.toml is fixed"
        return "there is no usable copy: alerts wait until contacts.toml is fixed"

    def summary(self) -> str | None:
        """One line for a warning or `status`: the first problem, how many more, what runs."""
        if not self.problems:
            return None
        more = f" (and {len(self.problems) - 1} more problem(s): 'rapidresponse contacts check')" \
            if len(self.problems) > 1 else ""
        return f"{self.problems[0]}{more} — {self.fallback_sentence()}"

    def require(self) -> Contacts:
        """The contacts in force, for commands that cannot work without any."""
        if self.contacts is None:
            raise OperationalFailure(f"no usable contacts: {self.summary()}")
        return self.contacts


def loadable_playbooks(home: Path) -> list[Playbook]:
    """The home's playbooks that load (roles unchecked); `playbooks check` reports the rest."""
    folder = home / PLAYBOOKS_DIR
    found = []
    for path in sorted(folder.glob("*.toml")):
        try:
            found.append(load_playbook(folder, path.stem))
        except InputError:
            continue
    return found


def roles_in_use(home: Path, store: Store | None) -> dict[str, list[str]]:
    """Every role a playbook file or a running case's snapshot uses → where it is used.

    A playbook file that does not load is skipped: a broken playbook must not make a good
    contacts file look bad.
    """
    used: dict[str, list[str]] = {}

    def note(playbook: Playbook, label: str) -> None:
        for step in playbook.all_steps():
            for role in step.roles():
                if is_case_role(role):  # the case's own carer, consulent …: not in this file
                    continue
                place = f"{label}/{step.id}"
                if place not in used.setdefault(role, []):
                    used[role].append(place)

    for playbook in loadable_playbooks(home):
        note(playbook, playbook.name)
    if store is not None:
        rows = store.all(
            "SELECT DISTINCT sn.name, sn.hash, sn.body FROM steps s"
            f" JOIN snapshots sn ON sn.hash = s.playbook_hash WHERE s.state IN {sql(RUNNING_STEPS)}"
        )
        for row in rows:
            note(from_snapshot(row["body"], f"snapshot {row['hash'][:12]}"),
                 f"{row['name']} (running case)")
    return used


def examine(path: Path, used: dict[str, list[str]],
            number: Callable[[str], str] = normalise_number) -> tuple[Contacts | None, list[str]]:
    """The file's contacts if it parses, and every problem it has (it is in force without any)."""
    if not path.exists():
        return None, [f"{path}: no contacts file (run 'rapidresponse init')"]
    try:
        text = tomlfile.read_text(path)
    except InputError as exc:
        return None, [str(exc)]
    book, problems = read_contacts(text, path, number=number)
    if book is not None:
        for role, where in sorted(used.items()):
            if role not in book.roles:
                places = ", ".join(where[:3]) + (" …" if len(where) > 3 else "")
                problems.append(f"{path}: role '{role}' is used by {places}"
                                f" but has no entry here (add [roles.{role}])")
    return book, problems


def load(home: Path, store: Store | None = None, *, for_display: bool = False) -> ContactsState:
    """Check contacts.toml; put it in force, or fall back to the last good copy.

    `for_display` (`show`): numbers in international form are not validated (`number_as_written`),
    so such a file is never kept as the last good copy."""
    path = home / CONTACTS_NAME
    number = number_as_written if for_display else normalise_number
    used = roles_in_use(home, store)
    book, problems = examine(path, used, number)
    good = home / LAST_GOOD_NAME
    if book is not None and not problems:
        if not for_display:
            _keep_last_good(path, good)
        return ContactsState(book, CONTACTS_NAME, (), used, book)
    fallback = _last_good(good, number)
    return ContactsState(fallback, LAST_GOOD_NAME if fallback else "nothing", tuple(problems), used,
                         book)


def _last_good(good: Path, number: Callable[[str], str]) -> Contacts | None:
    if not good.exists():
        return None
    try:
        book, _ = read_contacts(tomlfile.read_text(good), good, number=number)
    except InputError:
        return None
    return book


def _keep_last_good(path: Path, good: Path) -> None:
    """Copy a file that passed every check beside it, atomically and private (0600)."""
    data = path.read_bytes()
    try:
        if good.exists() and good.read_bytes() == data:
            return
        temporary = good.with_name(good.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, good)
    except OSError:
        pass  # a read-only home still runs on the file in force; the copy is a safety net


class ContactsSource:
    """For long-running processes (daemon, webhook): re-examined when a file it depends on changes."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._key: tuple[object, ...] | None = None
        self._state: ContactsState | None = None

    def _signature(self) -> tuple[object, ...]:
        parts: list[object] = []
        for path in (self.home / CONTACTS_NAME, self.home / LAST_GOOD_NAME,
                     *sorted((self.home / PLAYBOOKS_DIR).glob("*.toml"))):
            try:
                info = path.stat()
                parts.append((path.name, info.st_mtime_ns, info.st_size, info.st_ino))
            except OSError:
                parts.append((path.name, None))
        return tuple(parts)

    def current(self, store: Store | None = None) -> tuple[ContactsState, bool]:
        """The state in force, and whether it changed since the last call."""
        key = self._signature()
        if self._state is not None and key == self._key:
            return self._state, False
        self._state = load(self.home, store)
        self._key = self._signature()  # after load: it may have written the last good copy
        return self._state, True
