"""Playbooks: load and validate the TOML files, render message templates, lint for privacy.

A text message reaches wrong phones and shows on lock screens, so a template may only use
non-identifying fields, and words that reveal what the case is about are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rapidresponse import tomlfile
from rapidresponse.casecontacts import CASE_ROLES, is_case_role
from rapidresponse.contacts import role_vocabulary
from rapidresponse.errors import InputError
from rapidresponse.flags import FOLLOWUP_KINDS, RETURN_FLAGS, WHEN_FLAGS
from rapidresponse.lockscreen import REVEALING_WORDS as REVEALING_WORDS  # where it used to live
from rapidresponse.lockscreen import revealing_word
from rapidresponse.problems import ERROR, Problem, TomlLines
from rapidresponse.states import OUTCOMES
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
    " risico {grade}. Bel {callback}."
)

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_TOP_KEYS = {"name", "title", "steps", "on_resolved", "after_resolved"}
_STEP_KEYS = {
    "id", "at", "from", "role", "when", "notify", "message", "ack_within", "escalate_to",
    "repeat", "call", "call_after", "voice", "closes", "withdraw_message",
}
#: `[on_resolved]`: a stand-down text per outcome; `message` (the older form) stands in for an
#: outcome without its own text.
_ON_RESOLVED_KEYS = {"message", *OUTCOMES}
MAX_REPEAT = 10
#: `when = ["worrying", "not grade-high"]`: a condition that must *not* hold.
NOT = "not "
FLAG_WORDS = Vocabulary.of("flag", WHEN_FLAGS, listed_as="flags:")
CASE_ROLE_WORDS = Vocabulary.of("case role", CASE_ROLES, listed_as="case roles:")


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
    index: int = dataclasses.field(default=0, compare=False)  # its place among [[steps]], from 1
    closes: str | None = None  # the follow-up whose recording finishes this after-return step
    #: Sent to every number the step's alerts reached once its `when` stops holding (a decision
    #: of 'no' after the mandated agency was asked for contact): the request is withdrawn.
    withdraw_message: str | None = None

    @property
    def calls(self) -> bool:
        """Does this step ever call (at once or after `call_after`)?"""
        return self.call or self.call_after is not None

    @property
    def voice_template(self) -> str:
        return self.voice or DEFAULT_VOICE

    def applies(self, flags: Iterable[str]) -> bool:
        return when_holds(self.when, flags)

    def roles(self) -> list[str]:
        return [self.role] + ([self.escalate_to] if self.escalate_to else [])


@dataclass(frozen=True)
class Playbook:
    name: str
    title: str
    steps: tuple[Step, ...]
    stand_down: str | None  # [on_resolved] message: for every outcome without its own text
    after_resolved: tuple[Step, ...]
    raw: Mapping[str, Any]
    source: str

    @property
    def snapshot(self) -> str:
        return dumps(self.raw)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.snapshot.encode("utf-8")).hexdigest()

    stand_downs: Mapping[str, str] = dataclasses.field(default_factory=dict)  # by outcome

    def stand_down_for(self, outcome: str) -> str | None:
        """The stand-down text for how the case ended, if the playbook has one."""
        return self.stand_downs.get(outcome, self.stand_down)

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
    """Raise ValueError with the first reason a template could identify or expose the minor."""
    for problem in template_problems(template):
        raise ValueError(problem)


def template_problems(template: str) -> list[str]:
    """Every reason a template could identify or expose the minor, or would not render."""
    try:
        fields = template_fields(template)
    except ValueError as exc:
        return [f"the message does not parse: {exc}"]
    problems = []
    for field in fields:
        if field.lower() in IDENTIFYING_FIELDS or field.lower().startswith(IDENTIFYING_FIELDS):
            problems.append(f"'{{{field}}}' would identify the minor: a text carries the case reference only")
        elif field not in TEMPLATE_FIELDS:
            problems.append(
                f"unknown field '{{{field}}}': use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
            )
    word = revealing_word(template)
    if word:
        problems.append(f"the message contains '{word}…', which reveals the case on a lock screen")
    if "{case}" not in template:
        problems.append("the message must carry {case}, the reference people call back about")
    return problems


def render(template: str, values: Mapping[str, Any]) -> str:
    return template.format_map({k: values[k] for k in TEMPLATE_FIELDS if k in values})


def when_holds(when: Iterable[str], flags: Iterable[str]) -> bool:
    """All of a step's conditions hold: `FLAG` is set, `not FLAG` is not."""
    have = set(flags)
    return all(
        (cond[len(NOT):] not in have) if cond.startswith(NOT) else (cond in have) for cond in when
    )


def parse_playbook(
    text: str, *, source: str, stem: str | None = None, roles: Iterable[str] | None = None
) -> Playbook:
    """Validate everything the brief lists; an error names the file, line, step and field."""
    playbook, problems = validate_playbook(text, source=source, stem=stem, roles=roles)
    _raise_first(problems)
    assert playbook is not None
    return playbook


def validate_playbook(
    text: str, *, source: str, stem: str | None = None, roles: Iterable[str] | None = None
) -> tuple[Playbook | None, list[Problem]]:
    """Every problem of the file at once, and the playbook made of its valid steps (if any)."""
    try:
        raw = tomlfile.parse(text, source)
    except InputError as exc:
        message = str(exc).removeprefix(f"{source}: ")
        return None, [Problem(ERROR, source, _toml_line(message), None, message)]
    return _validate(raw, _Report(source, TomlLines(text)), stem, roles)


def playbook_from_raw(
    raw: Mapping[str, Any],
    *,
    source: str,
    stem: str | None = None,
    roles: Iterable[str] | None = None,
) -> Playbook:
    playbook, problems = _validate(raw, _Report(source, TomlLines(None)), stem, roles)
    _raise_first(problems)
    assert playbook is not None
    return playbook


def _raise_first(problems: list[Problem]) -> None:
    for problem in problems:
        if problem.level == ERROR:
            raise InputError(str(problem))


def _toml_line(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


class _Report:
    """Collects the problems of one file, each with the line it is on."""

    def __init__(self, source: str, lines: TomlLines) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []
        self.roles: Vocabulary | None = None  # the contacts file's roles, when known

    def error(self, message: str, where: str | None = None, *, line: int | None = None) -> None:
        self.problems.append(Problem(ERROR, self.source, line, where, message))


def _validate(
    raw: Mapping[str, Any], report: _Report, stem: str | None, roles: Iterable[str] | None
) -> tuple[Playbook | None, list[Problem]]:
    lines = report.lines
    if roles is not None:
        report.roles = role_vocabulary(sorted(set(roles)))
    for key in sorted(set(raw) - _TOP_KEYS):
        report.error(f"unknown key '{key}'", line=lines.key(key))
    name = raw.get("name")
    usable = True
    if not isinstance(name, str) or not _ID.match(name):
        report.error("'name' must be lower-case letters, digits and dashes", line=lines.key("name"))
        usable = False
    elif stem is not None and name != stem:
        report.error(f"'name' is '{name}' but the file is called '{stem}.toml': they must match",
                     line=lines.key("name"))
    title = raw.get("title", name)
    if not isinstance(title, str):
        report.error("'title' must be text", line=lines.key("title"))
        title = str(name)
    seen: set[str] = set()
    entries = raw.get("steps", [])
    steps = _parse_steps(entries, "steps", ("registered", "missing"), seen, report)
    if not entries:
        report.error("a playbook needs at least one [[steps]] entry")
    after = _parse_steps(raw.get("after_resolved", []), "after_resolved", ("resolved",), seen, report)
    stand_down, stand_downs = _parse_on_resolved(raw.get("on_resolved"), report)
    playbook = None
    if usable:
        playbook = Playbook(
            name=str(name), title=title, steps=steps, stand_down=stand_down, stand_downs=stand_downs,
            after_resolved=after, raw=dict(raw), source=report.source,
        )
    return playbook, report.problems


def _parse_on_resolved(on_resolved: Any, report: _Report) -> tuple[str | None, dict[str, str]]:
    """The stand-down texts: `message` for any outcome, or one per outcome (found, returned,
    withdrawn, other) — a withdrawn report is not a minor found."""
    if on_resolved is None:
        return None, {}
    where, line = "[on_resolved]", report.lines.table("on_resolved")
    if not isinstance(on_resolved, dict):
        report.error("must be a table", where, line=line)
        return None, {}
    for key in sorted(set(on_resolved) - _ON_RESOLVED_KEYS):
        report.error(f"unknown key '{key}' (keys: message, {', '.join(OUTCOMES)})", where,
                     line=report.lines.key(key, "on_resolved"))
    texts: dict[str, str] = {}
    for key in ("message", *OUTCOMES):
        if key not in on_resolved:
            continue
        text = on_resolved[key]
        line = report.lines.key(key, "on_resolved")
        if not isinstance(text, str) or not text.strip():
            report.error(f"field '{key}' must be text", where, line=line)
            continue
        problems = template_problems(text)
        for problem in problems:
            report.error(f"field '{key}': {problem}", where, line=line)
        if not problems:
            texts[key] = text
    if not set(on_resolved) & _ON_RESOLVED_KEYS:
        report.error(f"needs a text: 'message', or one per outcome ({', '.join(OUTCOMES)})", where,
                     line=line)
    return texts.pop("message", None), texts


def _parse_steps(
    entries: Any, section: str, bases: tuple[str, ...], seen: set[str], report: _Report
) -> tuple[Step, ...]:
    if not isinstance(entries, list):
        report.error(f"'{section}' must be a list of [[{section}]] tables", line=report.lines.key(section))
        return ()
    steps = []
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            report.error(f"[[{section}]] number {index} must be a table",
                         line=report.lines.key(section))
            continue
        step = _parse_step(entry, section, index, bases, seen, report)
        if step is not None:
            steps.append(step)
    return tuple(steps)


def _parse_step(
    entry: dict[str, Any], section: str, index: int, bases: tuple[str, ...], seen: set[str],
    report: _Report,
) -> Step | None:
    """One step; every mistake in it is reported, and None returned if there was any."""
    step_id = entry.get("id")
    where = f"step '{step_id}'" if isinstance(step_id, str) else f"[[{section}]] number {index}"
    before = len(report.problems)

    def bad(field: str, problem: str) -> None:
        report.error(f"field '{field}': {problem}", where, line=report.lines.key(field, section, index))

    for key in sorted(set(entry) - _STEP_KEYS):
        bad(key, "unknown field")
    if not isinstance(step_id, str) or not _ID.match(step_id):
        bad("id", "must be lower-case letters, digits and dashes")
    elif step_id in seen:
        bad("id", "duplicate step id")
    else:
        seen.add(step_id)
    at = _duration(entry.get("at"), "at", bad, required=True)
    base = entry.get("from", bases[0])
    if base not in bases:
        bad("from", f"must be one of {', '.join(repr(b) for b in bases)}")
    role = entry.get("role")
    if not isinstance(role, str) or not role:
        bad("role", "a role from the contacts file is required")
    when = entry.get("when", [])
    if not isinstance(when, list) or not all(isinstance(w, str) for w in when):
        bad("when", "must be a list of flags")
        when = []
    for condition in when:
        flag = condition[len(NOT):] if condition.startswith(NOT) else condition
        if flag not in WHEN_FLAGS:
            bad("when", FLAG_WORDS.unknown_sentence(flag, what="a flag") + "; 'not FLAG' negates one")
        elif flag in RETURN_FLAGS and section != "after_resolved":
            bad("when", f"'{flag}' is answered when the minor is back: it holds only for"
                        " [[after_resolved]] steps")
    notify = entry.get("notify", "first")
    if notify not in ("first", "all"):
        bad("notify", "must be 'first' or 'all'")
    message = entry.get("message")
    if not isinstance(message, str) or not message.strip():
        bad("message", "the text to send is required")
        message = ""
    else:
        for problem in template_problems(message):
            bad("message", problem)
    ack_within = _duration(entry.get("ack_within"), "ack_within", bad)
    if ack_within is not None and ack_within <= timedelta(0):
        bad("ack_within", "must be longer than zero")
    if ack_within is not None and message and "{ack}" not in message:
        bad("message", "a step that waits for an acknowledgement must include {ack}")
    escalate_to = entry.get("escalate_to")
    if escalate_to is not None and (not isinstance(escalate_to, str) or not escalate_to):
        bad("escalate_to", "must be a role name")
    elif escalate_to is not None and ack_within is None and "ack_within" not in entry:
        bad("escalate_to", "escalation needs 'ack_within' (when to give up waiting)")
    repeat = entry.get("repeat", 0)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= MAX_REPEAT:
        bad("repeat", f"must be a whole number from 0 to {MAX_REPEAT}")
    elif repeat and ack_within is None and "ack_within" not in entry:
        bad("repeat", "repeating needs 'ack_within'")
    if isinstance(role, str) and is_case_role(role) and role not in CASE_ROLES:
        bad("role", CASE_ROLE_WORDS.unknown_sentence(role))
    if isinstance(role, str) and is_case_role(role) and "ack_within" in entry:
        bad("ack_within", "a case contact is informed, not asked to acknowledge: let a step for the"
                          " coordinator confirm instead")
    if isinstance(escalate_to, str) and is_case_role(escalate_to):
        bad("escalate_to", "escalate to a role of the contacts file, not to a case contact")
    call, call_after, voice = _call_fields(entry, ack_within, bad)
    closes = entry.get("closes")
    if closes is not None and section != "after_resolved":
        bad("closes", "only an [[after_resolved]] step is closed by a follow-up")
    elif closes is not None and closes not in FOLLOWUP_KINDS:
        bad("closes", f"must be one of {', '.join(FOLLOWUP_KINDS)}")
    withdraw_message = entry.get("withdraw_message")
    if withdraw_message is not None:
        if not isinstance(withdraw_message, str) or not withdraw_message.strip():
            bad("withdraw_message", "the text that withdraws the request must be text")
        elif not when:
            bad("withdraw_message", "the step has no 'when': it never stops holding, so nothing is withdrawn")
        else:
            for problem in template_problems(withdraw_message):
                bad("withdraw_message", problem)
    failed = len(report.problems) > before
    # An unknown role is reported but keeps the step: the contacts file may be what is wrong,
    # and its checks still see which roles the step uses.
    for field_name, named in (("role", role), ("escalate_to", escalate_to)):
        known = report.roles
        if known is not None and isinstance(named, str) and named and not is_case_role(named) \
                and named not in known.words:
            bad(field_name, known.unknown_sentence(named, what="the role"))
    if failed:
        return None
    assert at is not None and isinstance(step_id, str) and isinstance(role, str)
    return Step(
        id=step_id, at=at, base=base, role=role, message=message, when=tuple(when),
        notify=notify, ack_within=ack_within, escalate_to=escalate_to, repeat=repeat,
        call=call, call_after=call_after, voice=voice, index=index, closes=closes,
        withdraw_message=withdraw_message,
    )


def _call_fields(
    entry: Mapping[str, Any], ack_within: timedelta | None, bad: Any
) -> tuple[bool, timedelta | None, str | None]:
    """`call`, `call_after` and `voice`: a call is acknowledged by a key press, so it needs
    `ack_within`; its spoken text passes the same privacy lint as a text."""
    call = entry.get("call", False)
    if not isinstance(call, bool):
        bad("call", "must be true or false")
        call = False
    call_after = _duration(entry.get("call_after"), "call_after", bad)
    if call_after is not None and call_after <= timedelta(0):
        bad("call_after", "must be longer than zero (or say call = true to call at once)")
    if call and call_after is not None:
        bad("call_after", "'call = true' calls at once: leave out call_after, or call")
    if (call or call_after is not None) and ack_within is None and "ack_within" not in entry:
        field = "call" if call else "call_after"
        bad(field, "a call is acknowledged by a key press: the step needs 'ack_within'")
    voice = entry.get("voice")
    if voice is not None:
        if not isinstance(voice, str) or not voice.strip():
            bad("voice", "the text to speak must be text")
            return call, call_after, None
        if not (call or call_after is not None):
            bad("voice", "the step never calls: add call_after (or call = true)")
        for problem in template_problems(voice):
            bad("voice", problem)
    return call, call_after, voice


def _duration(value: Any, field: str, bad: Any, required: bool = False) -> timedelta | None:
    if value is None:
        if required:
            bad(field, "a duration such as '0m', '90s' or '1h30m' is required")
        return None
    if not isinstance(value, str):
        bad(field, f"'{value}' must be a quoted duration such as \"15m\"")
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        bad(field, str(exc))
        return None


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
