"""The contacts file: who holds each role, their numbers (E.164), and when they are on duty."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rapidresponse import tomlfile
from rapidresponse.errors import InputError
from rapidresponse.lockscreen import revealing_word
from rapidresponse.problems import TomlLines
from rapidresponse.rosters import Override, RosterError, Rotation, parse_override, parse_rotation
from rapidresponse.rosters import chain_order as roster_order
from rapidresponse.vocab import Vocabulary

DEFAULT_REGION = "BE"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ROLE_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_WINDOW = re.compile(r"^(?P<days>[a-z,\-]+)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")

DEFAULT_TIMEZONE = "Europe/Brussels"
_TOP_KEYS = {"timezone", "callback", "roles", "overrides"}
_ROLE_KEYS = {"title", "contacts", "rotation"}
_CONTACT_KEYS = {"name", "phone", "hours", "voice"}


@dataclass(frozen=True)
class Window:
    """An on-duty window in local time; `end <= start` runs past midnight."""

    days: frozenset[int]
    start: time
    end: time | None  # None stands for 24:00

    def covers(self, moment: datetime) -> bool:
        day, clock = moment.weekday(), moment.time().replace(tzinfo=None)
        end = self.end
        if end is None or end > self.start:
            return day in self.days and self.start <= clock and (end is None or clock < end)
        yesterday = (day - 1) % 7
        return (day in self.days and clock >= self.start) or (
            yesterday in self.days and clock < end
        )


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str  # E.164
    hours: tuple[Window, ...] = ()
    hours_text: str | None = None
    voice: bool = True  # False: never called, texts only (`voice = false` in contacts.toml)

    def on_duty(self, moment: datetime, tz: ZoneInfo) -> bool:
        if not self.hours:
            return True
        here = moment.astimezone(tz)
        return any(window.covers(here) for window in self.hours)


@dataclass(frozen=True)
class Role:
    key: str
    title: str
    contacts: tuple[Contact, ...]
    rotation: Rotation | None = None  # a duty roster: who is texted first, shift by shift


@dataclass(frozen=True)
class Contacts:
    timezone: ZoneInfo
    callback: str  # E.164
    roles: dict[str, Role]
    path: Path | None = None
    overrides: tuple[Override, ...] = ()  # swaps and holidays: a contact first for a while

    @classmethod
    def unusable(cls, timezone: ZoneInfo) -> Contacts:
        """No roles, no callback: what runs when no contacts file was ever usable."""
        return cls(timezone=timezone, callback="", roles={}, path=None)

    @property
    def callback_display(self) -> str:
        return display_number(self.callback) if self.callback else "—"

    @property
    def role_words(self) -> Vocabulary:
        return role_vocabulary(self.roles)

    def role(self, key: str) -> Role:
        """The role `key` names (any case); InputError with close matches, never quoting it."""
        return self.roles[self.role_words.pick(key)]

    def chain_order(self, key: str, moment: datetime) -> tuple[Contact, ...]:
        """Every contact of a role in the order a `notify = "first"` chain texts them at
        `moment`: by the roster (an override, the member on duty, the rotation), else file order."""
        role = self.roles.get(key)
        if role is None:
            return ()
        return roster_order(key, role.contacts, role.rotation, self.overrides, moment, self.timezone)

    def on_duty(self, key: str, moment: datetime) -> tuple[Contact, ...]:
        """Who of a role to message now, in chain order. Nobody on duty means everybody: a miss
        is worse."""
        members = self.chain_order(key, moment)
        present = tuple(c for c in members if c.on_duty(moment, self.timezone))
        return present or members

    def callable(self, role: str, number: str) -> bool:
        """May this number of the role be called? Not if it opted out or left the file."""
        found = self.roles.get(role)
        return any(c.phone == number and c.voice for c in (found.contacts if found else ()))

    def roles_of_number(self, number: str) -> list[tuple[str, Contact]]:
        return [
            (role.key, contact)
            for role in self.roles.values()
            for contact in role.contacts
            if contact.phone == number
        ]


def role_vocabulary(roles: Iterable[str]) -> Vocabulary:
    return Vocabulary.of("role", roles, listed_as="the contacts file has")


def display_timezone(path: Path) -> ZoneInfo:
    """The contacts file's time zone alone, for commands that only show times: validating every
    number would load phonenumbers' metadata, which costs more than such a command itself."""
    try:
        raw = tomlfile.load(path)
        return ZoneInfo(str(raw.get("timezone", DEFAULT_TIMEZONE)))
    except (OSError, InputError, ValueError, ZoneInfoNotFoundError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def display_number(e164: str) -> str:
    import phonenumbers

    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def normalise_number(text: str) -> str:
    """Any way a person writes a number → E.164; ValueError with a reason otherwise."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"'{text}' is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"'{text}' is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


_INTERNATIONAL = re.compile(r"^\+[1-9]\d{6,14}$")


def number_as_written(text: str) -> str:
    """For display only (`show` naming who is next): a number written in international form
    ("+32 470 00 00 01") taken as E.164 as it stands, without loading phonenumbers' metadata
    (≈ 30 ms, most of such a command); any other form goes through `normalise_number`."""
    compact = re.sub(r"[\s.\-]", "", text)
    return compact if _INTERNATIONAL.match(compact) else normalise_number(text)


def is_mobile(e164: str) -> bool:
    import phonenumbers

    kind = phonenumbers.number_type(phonenumbers.parse(e164, None))
    return kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def parse_hours(text: str) -> tuple[Window, ...]:
    """'mon-fri 08:00-18:00; sat 10:00-14:00' or 'daily 20:00-08:00'."""
    windows = []
    for part in text.split(";"):
        match = _WINDOW.match(part.strip().lower())
        if not match:
            raise ValueError(
                f"hours '{text}' should read like 'mon-fri 08:00-18:00' or 'daily 20:00-08:00'"
            )
        days = _parse_days(match.group("days"), text)
        start = _parse_clock(match.group("start"), text)
        end = None if match.group("end") == "24:00" else _parse_clock(match.group("end"), text)
        if end is not None and end == start:
            raise ValueError(f"hours '{text}' start and end at the same time")
        windows.append(Window(days=days, start=start, end=end))
    return tuple(windows)


def _parse_days(spec: str, text: str) -> frozenset[int]:
    if spec == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for item in spec.split(","):
        ends = item.split("-")
        if len(ends) > 2 or any(e not in DAYS for e in ends):
            raise ValueError(f"hours '{text}': '{item}' is not a day or range (mon … sun)")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        span = (last - first) % 7
        days.update((first + i) % 7 for i in range(span + 1))
    return frozenset(days)


def _parse_clock(value: str, text: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"hours '{text}': '{value}' is not a time of day") from None


def _line_of(text: str, needle: str, after: int = 1) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if number >= after and needle in line:
            return number
    return None


def load_contacts(path: Path) -> Contacts:
    if not path.exists():
        raise InputError(f"{path}: no contacts file (run 'rapidresponse init')")
    return parse_contacts(tomlfile.read_text(path), path)


def parse_contacts(text: str, path: Path | None = None) -> Contacts:
    """The contacts, or InputError with the first problem (`read_contacts` lists them all)."""
    book, problems = read_contacts(text, path)
    if problems or book is None:
        raise InputError(problems[0])
    return book


def read_contacts(text: str, path: Path | None = None, *,
                  number: Callable[[str], str] = normalise_number) -> tuple[Contacts | None, list[str]]:
    """Every problem of the file, each a sentence naming the file and line; the contacts if none.
    `number` reads each phone number (`number_as_written` where the contacts are only shown)."""
    where = str(path) if path else "contacts"
    problems: list[str] = []

    def fail(message: str, line: int | None = None) -> None:
        at = f", line {line}" if line else ""
        problems.append(f"{where}{at}: {message}")

    try:
        raw = tomlfile.parse(text, where)
    except InputError as exc:
        return None, [str(exc)]
    for key in sorted(set(raw) - _TOP_KEYS):
        fail(f"unknown key '{key}'", _line_of(text, key))
    tz = ZoneInfo("Europe/Brussels")
    try:
        tz = ZoneInfo(str(raw.get("timezone", DEFAULT_TIMEZONE)))
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"unknown time zone '{raw.get('timezone')}'", _line_of(text, "timezone"))
    callback = ""
    if "callback" not in raw:
        fail("'callback' (the coordination desk's number, quoted in messages) is missing")
    else:
        try:
            callback = number(str(raw["callback"]))
        except ValueError as exc:
            fail(f"callback: {exc}", _line_of(text, "callback"))
    roles_raw = raw.get("roles")
    roles: dict[str, Role] = {}
    lines = TomlLines(text)
    if not isinstance(roles_raw, dict) or not roles_raw:
        fail("no roles: add at least one [roles.NAME] table")
    else:
        for key, body in roles_raw.items():
            header = _line_of(text, f"[roles.{key}]") or 1
            role = _parse_role(key, body, text, header, fail, number)
            if role is None:
                continue
            roles[key] = role
            if isinstance(body, dict) and "rotation" in body:
                try:
                    rotation = parse_rotation(body["rotation"], [c.name for c in role.contacts], tz)
                except RosterError as exc:
                    fail(f"role '{key}', rotation: {exc}", _rotation_line(lines, key, str(exc)))
                    continue
                roles[key] = replace(role, rotation=rotation)
    overrides = _parse_overrides(raw.get("overrides", []), roles, tz, lines, fail)
    if problems:
        return None, problems
    return Contacts(timezone=tz, callback=callback, roles=roles, path=path, overrides=overrides), []


def _rotation_line(lines: TomlLines, role: str, problem: str) -> int | None:
    """The line a rotation's problem is about: the key it names, else the table."""
    table = f"roles.{role}.rotation"
    unknown = re.match(r"unknown key '([^']+)'", problem)
    named = [unknown.group(1)] if unknown else [k for k in ("members", "shift", "start")
                                                   if f"'{k}'" in problem]
    if not named and problem.startswith(("member ", "a member ")):
        named = ["members"]
    fallback = lines.table(table) or lines.key("rotation", f"roles.{role}")
    return (lines.key(named[0], table) if named and lines.table(table) else None) or fallback


def _parse_overrides(
    entries: Any, roles: dict[str, Role], tz: ZoneInfo, lines: TomlLines, fail: Any
) -> tuple[Override, ...]:
    """The overrides that parse; each problem is reported through `fail`."""
    if not isinstance(entries, list):
        fail("'overrides' must be a list of [[overrides]] tables", lines.key("overrides"))
        return ()
    members = {key: [c.name for c in role.contacts] for key, role in roles.items()}
    found = []
    for index, entry in enumerate(entries, start=1):
        try:
            found.append(parse_override(entry, members, tz))
        except RosterError as exc:
            role = entry.get("role") if isinstance(entry, dict) else None
            about = f"override {index}" + (f" (role '{role}')" if isinstance(role, str) else "")
            fail(f"{about}: {exc}", lines.table("overrides", index))
    return tuple(found)


def _parse_role(key: str, body: Any, text: str, header: int, fail: Any,
                number: Callable[[str], str]) -> Role | None:
    """The role, or None after reporting each of its problems through `fail`."""
    if not _ROLE_KEY.match(key):
        fail(f"role '{key}': a role name is lower case letters, digits and _", header)
        return None
    if not isinstance(body, dict):
        fail(f"role '{key}' must be a table", header)
        return None
    ok = True
    for bad in sorted(set(body) - _ROLE_KEYS):
        fail(f"role '{key}': unknown key '{bad}'", _line_of(text, bad, header))
        ok = False
    entries = body.get("contacts")
    if not isinstance(entries, list) or not entries:
        fail(f"role '{key}' has no contacts", header)
        entries = []
        ok = False
    contacts: list[Contact] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        contact = _parse_contact(key, index, entry, text, header, seen, fail, number)
        if contact is None:
            ok = False
        else:
            contacts.append(contact)
    title = str(body.get("title") or key.replace("_", " "))
    word = revealing_word(title)
    if word:
        line = _line_of(text, "title", header) if "title" in body else header
        fail(f"role '{key}': the title contains '{word}…', which reveals the case on a lock"
             " screen (messages quote it as {role_title})", line)
        ok = False
    return Role(key=key, title=title, contacts=tuple(contacts)) if ok else None


def _parse_contact(key: str, index: int, entry: Any, text: str, header: int, seen: set[str],
                   fail: Any, number: Callable[[str], str]) -> Contact | None:
    label = f"role '{key}', contact {index}"
    if not isinstance(entry, dict):
        fail(f"{label} must be a table like {{ name = ..., phone = ... }}", header)
        return None
    name = str(entry.get("name", "")).strip()
    line = _line_of(text, name, header) if name else header
    if name:
        label = f"role '{key}', contact '{name}'"
    unknown = set(entry) - _CONTACT_KEYS
    if unknown:
        fail(f"{label}: unknown key '{sorted(unknown)[0]}'", line)
        return None
    if not name:
        fail(f"{label}: 'name' is missing", line)
        return None
    if "phone" not in entry:
        fail(f"{label}: 'phone' is missing", line)
        return None
    try:
        phone = number(str(entry["phone"]))
    except ValueError as exc:
        fail(f"{label}: {exc}", line)
        return None
    if phone in seen:
        fail(f"{label}: {phone} is listed twice in this role", line)
        return None
    seen.add(phone)
    hours_text = entry.get("hours")
    hours: tuple[Window, ...] = ()
    if hours_text is not None:
        try:
            hours = parse_hours(str(hours_text))
        except ValueError as exc:
            fail(f"{label}: {exc}", line)
            return None
    voice = entry.get("voice", True)
    if not isinstance(voice, bool):
        fail(f"{label}: 'voice' must be true or false", line)
        return None
    return Contact(name=name, phone=phone, hours=hours, hours_text=hours_text, voice=voice)
