"""Playbooks: load and validate the TOML files, render message templates, lint for privacy.

A text message reaches wrong phones and shows on lock screens, so a template may only use
non-identifying fields, and words that reveal what the case is about are refused.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rapidresponse import tomlfile
from rapidresponse.assessment import FLAGS
from rapidresponse.contacts import role_vocabulary
from rapidresponse.errors import InputError
from rapidresponse.lockscreen import REVEALING_WORDS as REVEALING_WORDS  # where it used to live
from rapidresponse.lockscreen import revealing_word
from rapidresponse.store import dumps
from rapidresponse.timeutil import parse_duration
from rapidresponse.vocab import Vocabulary

TEMPLATE_FIELDS = ("case", "grade", "age", "ack", "callback", "missing_for", "role_title")
IDENTIFYING_FIELDS = (
    "alias", "name", "full_name", "first_name", "last_name", "initials", "birth_date",
    "birthdate", "dob", "last_seen", "place", "places", "location", "address", "school",
    "facility", "placement",
)

#: What a call says when a step has no `voice` text of its own: the same fields as a text,
#: nothing a stranger answering the phone should hear. The key prompt is added by `voice.py`.
DEFAULT_VOICE = (
    "Dringend bericht van rapidresponse voor {role_title}. Dossier {case}: vermiste minderjarige,"
    " graad {grade}. Bel {callback}."
)

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TOP_KEYS = {"name", "title", "steps", "on_resolved", "after_resolved"}
_STEP_KEYS = {
    "id", "at", "from", "role", "when", "notify", "message", "ack_within", "escalate_to",
    "repeat", "call", "call_after", "voice",
}
_ON_RESOLVED_KEYS = {"message"}
MAX_REPEAT = 10
FLAG_WORDS = Vocabulary.of("flag", FLAGS, listed_as="flags:")


@dataclass(frozen=True)
class Step:
    id: str
    at: timedelta
    base: str  # 'registered', 'missing' or 'resolved'
    role: str
    message: str
    when: tuple[str, ...] = ()
    notify: str = "first"
    ack_within: timedelta | None = None
    escalate_to: str | None = None
    repeat: int = 0
    call: bool = False  # call at once, alongside the text
    call_after: timedelta | None = None  # call when the text is not acknowledged by then
    voice: str | None = None  # the spoken text; None: DEFAULT_VOICE

    @property
    def calls(self) -> bool:
        """Does this step ever call (at once or after `call_after`)?"""
        return self.call or self.call_after is not None

    @property
    def voice_template(self) -> str:
        return self.voice or DEFAULT_VOICE

    def applies(self, flags: Iterable[str]) -> bool:
        have = set(flags)
        return all(flag in have for flag in self.when)

    def roles(self) -> list[str]:
        return [self.role] + ([self.escalate_to] if self.escalate_to else [])


@dataclass(frozen=True)
class Playbook:
    name: str
    title: str
    steps: tuple[Step, ...]
    stand_down: str | None
    after_resolved: tuple[Step, ...]
    raw: Mapping[str, Any]
    source: str

    @property
    def snapshot(self) -> str:
        return dumps(self.raw)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.snapshot.encode("utf-8")).hexdigest()

    def all_steps(self) -> tuple[Step, ...]:
        return self.steps + self.after_resolved

    def step(self, phase: str, key: str) -> Step:
        pool = self.steps if phase == "main" else self.after_resolved
        for step in pool:
            if step.id == key:
                return step
        raise KeyError(key)


def template_fields(template: str) -> list[str]:
    """Every replacement field of a str.format template; ValueError if it does not parse."""
    fields = []
    for _literal, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if spec or conversion:
            raise ValueError(f"'{{{field}}}' uses a format spec or conversion; write {{{field}}}")
        fields.append(field)
    return fields


def lint_template(template: str) -> None:
    """Raise ValueError with a reason when a template could identify or expose the minor."""
    try:
        fields = template_fields(template)
    except ValueError as exc:
        raise ValueError(f"the message does not parse: {exc}") from None
    for field in fields:
        if field.lower() in IDENTIFYING_FIELDS or field.lower().startswith(IDENTIFYING_FIELDS):
            raise ValueError(
                f"'{{{field}}}' would identify the minor: a text carries the case reference only"
            )
        if field not in TEMPLATE_FIELDS:
            raise ValueError(
                f"unknown field '{{{field}}}': use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
            )
    word = revealing_word(template)
    if word:
        raise ValueError(f"the message contains '{word}…', which reveals the case on a lock screen")
    if "{case}" not in template:
        raise ValueError("the message must carry {case}, the reference people call back about")


def render(template: str, values: Mapping[str, Any]) -> str:
    return template.format_map({k: values[k] for k in TEMPLATE_FIELDS if k in values})


def parse_playbook(
    text: str, *, source: str, stem: str | None = None, roles: Iterable[str] | None = None
) -> Playbook:
    """Validate everything the brief lists; an error names the file, the step and the field."""
    raw = tomlfile.parse(text, source)
    return playbook_from_raw(raw, source=source, stem=stem, roles=roles)


def playbook_from_raw(
    raw: Mapping[str, Any],
    *,
    source: str,
    stem: str | None = None,
    roles: Iterable[str] | None = None,
) -> Playbook:
    known_roles = set(roles) if roles is not None else None

    def fail(message: str) -> InputError:
        return InputError(f"{source}: {message}")

    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise fail(f"unknown key '{sorted(unknown)[0]}'")
    name = raw.get("name")
    if not isinstance(name, str) or not _ID.match(name):
        raise fail("'name' must be lower-case letters, digits and dashes")
    if stem is not None and name != stem:
        raise fail(f"'name' is '{name}' but the file is called '{stem}.toml': they must match")
    title = raw.get("title", name)
    if not isinstance(title, str):
        raise fail("'title' must be text")
    seen: set[str] = set()
    steps = _parse_steps(raw.get("steps", []), "steps", ("registered", "missing"), seen, fail)
    if not steps:
        raise fail("a playbook needs at least one [[steps]] entry")
    after = _parse_steps(raw.get("after_resolved", []), "after_resolved", ("resolved",), seen, fail)
    stand_down = None
    on_resolved = raw.get("on_resolved")
    if on_resolved is not None:
        if not isinstance(on_resolved, dict):
            raise fail("[on_resolved] must be a table")
        extra = set(on_resolved) - _ON_RESOLVED_KEYS
        if extra:
            raise fail(f"[on_resolved]: unknown key '{sorted(extra)[0]}'")
        stand_down = on_resolved.get("message")
        if not isinstance(stand_down, str) or not stand_down.strip():
            raise fail("[on_resolved]: field 'message' must be text")
        try:
            lint_template(stand_down)
        except ValueError as exc:
            raise fail(f"[on_resolved]: field 'message': {exc}") from None
    playbook = Playbook(
        name=name, title=title, steps=steps, stand_down=stand_down,
        after_resolved=after, raw=dict(raw), source=source,
    )
    if known_roles is not None:
        check_roles(playbook, known_roles)
    return playbook


def check_roles(playbook: Playbook, roles: Iterable[str]) -> None:
    known = set(roles)
    words = role_vocabulary(sorted(known))
    for step in playbook.all_steps():
        for field_name, role in (("role", step.role), ("escalate_to", step.escalate_to)):
            if role is not None and role not in known:
                raise InputError(
                    f"{playbook.source}: step '{step.id}', field '{field_name}': "
                    + words.unknown_sentence(role, what="the role")
                )


def _parse_steps(
    entries: Any, section: str, bases: tuple[str, ...], seen: set[str], fail: Any
) -> tuple[Step, ...]:
    if not isinstance(entries, list):
        raise fail(f"'{section}' must be a list of [[{section}]] tables")
    steps = []
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise fail(f"[[{section}]] number {index} must be a table")
        step_id = entry.get("id")
        label = f"step '{step_id}'" if isinstance(step_id, str) else f"[[{section}]] number {index}"

        def bad(field: str, problem: str, label: str = label) -> InputError:
            return fail(f"{label}, field '{field}': {problem}")

        unknown = set(entry) - _STEP_KEYS
        if unknown:
            raise bad(sorted(unknown)[0], "unknown field")
        if not isinstance(step_id, str) or not _ID.match(step_id):
            raise bad("id", "must be lower-case letters, digits and dashes")
        if step_id in seen:
            raise bad("id", "duplicate step id")
        seen.add(step_id)
        at = _duration(entry.get("at"), "at", bad, required=True)
        assert at is not None
        base = entry.get("from", bases[0])
        if base not in bases:
            raise bad("from", f"must be one of {', '.join(repr(b) for b in bases)}")
        role = entry.get("role")
        if not isinstance(role, str) or not role:
            raise bad("role", "a role from the contacts file is required")
        when = entry.get("when", [])
        if not isinstance(when, list) or not all(isinstance(w, str) for w in when):
            raise bad("when", "must be a list of flags")
        for flag in when:
            if flag not in FLAGS:
                raise bad("when", FLAG_WORDS.unknown_sentence(flag, what="a flag"))
        notify = entry.get("notify", "first")
        if notify not in ("first", "all"):
            raise bad("notify", "must be 'first' or 'all'")
        message = entry.get("message")
        if not isinstance(message, str) or not message.strip():
            raise bad("message", "the text to send is required")
        try:
            lint_template(message)
        except ValueError as exc:
            raise bad("message", str(exc)) from None
        ack_within = _duration(entry.get("ack_within"), "ack_within", bad)
        if ack_within is not None and ack_within <= timedelta(0):
            raise bad("ack_within", "must be longer than zero")
        if ack_within is not None and "{ack}" not in message:
            raise bad("message", "a step that waits for an acknowledgement must include {ack}")
        escalate_to = entry.get("escalate_to")
        if escalate_to is not None and (not isinstance(escalate_to, str) or not escalate_to):
            raise bad("escalate_to", "must be a role name")
        if escalate_to is not None and ack_within is None:
            raise bad("escalate_to", "escalation needs 'ack_within' (when to give up waiting)")
        repeat = entry.get("repeat", 0)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= MAX_REPEAT:
            raise bad("repeat", f"must be a whole number from 0 to {MAX_REPEAT}")
        if repeat and ack_within is None:
            raise bad("repeat", "repeating needs 'ack_within'")
        call, call_after, voice = _call_fields(entry, ack_within, bad)
        steps.append(
            Step(
                id=step_id, at=at, base=base, role=role, message=message, when=tuple(when),
                notify=notify, ack_within=ack_within, escalate_to=escalate_to, repeat=repeat,
                call=call, call_after=call_after, voice=voice,
            )
        )
    return tuple(steps)


def _call_fields(
    entry: Mapping[str, Any], ack_within: timedelta | None, bad: Any
) -> tuple[bool, timedelta | None, str | None]:
    """`call`, `call_after` and `voice`: a call is acknowledged by a key press, so it needs
    `ack_within`; its spoken text passes the same privacy lint as a text."""
    call = entry.get("call", False)
    if not isinstance(call, bool):
        raise bad("call", "must be true or false")
    call_after = _duration(entry.get("call_after"), "call_after", bad)
    if call_after is not None and call_after <= timedelta(0):
        raise bad("call_after", "must be longer than zero (or say call = true to call at once)")
    if call and call_after is not None:
        raise bad("call_after", "'call = true' calls at once: leave out call_after, or call")
    if (call or call_after is not None) and ack_within is None:
        field = "call" if call else "call_after"
        raise bad(field, "a call is acknowledged by a key press: the step needs 'ack_within'")
    voice = entry.get("voice")
    if voice is not None:
        if not isinstance(voice, str) or not voice.strip():
            raise bad("voice", "the text to speak must be text")
        if not (call or call_after is not None):
            raise bad("voice", "the step never calls: add call_after (or call = true)")
        try:
            lint_template(voice)
        except ValueError as exc:
            raise bad("voice", str(exc)) from None
    return call, call_after, voice


def _duration(value: Any, field: str, bad: Any, required: bool = False) -> timedelta | None:
    if value is None:
        if required:
            raise bad(field, "a duration such as '0m', '90s' or '1h30m' is required")
        return None
    if not isinstance(value, str):
        raise bad(field, f"'{value}' must be a quoted duration such as \"15m\"")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise bad(field, str(exc)) from None


def playbook_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.toml"


def load_playbook(folder: Path, name: str, roles: Iterable[str] | None = None) -> Playbook:
    words = Vocabulary.of("playbook", sorted(p.stem for p in folder.glob("*.toml")),
                          listed_as="available:")
    name = words.pick(name, what="the playbook")
    path = playbook_path(folder, name)
    return parse_playbook(
        tomlfile.read_text(path), source=str(path), stem=path.stem, roles=roles
    )


def load_all(folder: Path, roles: Iterable[str] | None = None) -> list[Playbook]:
    return [load_playbook(folder, p.stem, roles) for p in sorted(folder.glob("*.toml"))]


def from_snapshot(snapshot: str, ref: str) -> Playbook:
    """The case's own copy: a coordinator's later edit never changes a running case."""
    import json

    return playbook_from_raw(json.loads(snapshot), source=f"snapshot of {ref}")
