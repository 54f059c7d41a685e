"""Coordinator checks: every problem of every playbook and of the contacts file, at once.

A coordinator's mistake must be caught at the desk, not during a disappearance at 3 a.m.: beyond
the validation that loading does, these checks find escalation cycles, steps that can never fire,
waits that overlap the role's next step, hours of the week nobody serves, and texts that cost more
than one SMS segment once filled in with the longest realistic values.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rapidresponse import flagspace, tomlfile
from rapidresponse.casecontacts import is_case_role
from rapidresponse.contacts import Contacts, is_mobile, parse_contacts
from rapidresponse.errors import InputError
from rapidresponse.playbooks import Playbook, Step, render, validate_playbook, when_holds
from rapidresponse.problems import ERROR, WARNING, Problem, TomlLines
from rapidresponse.segments import measure, outside_gsm7
from rapidresponse.states import OUTCOMES
from rapidresponse.timeutil import format_duration

#: More segments than this is a warning; more than MAX_SEGMENTS an error.
WARN_SEGMENTS = 1
MAX_SEGMENTS = 3
#: The longest values a text realistically carries (the grade and the role's title come from
#: the assessment model and the contacts file).
LONGEST_CASE = "RR-2026-9999"
LONGEST_AGE = "17"
LONGEST_ACK = "9999"
LONGEST_MISSING_FOR = format_duration(timedelta(days=10, hours=23, minutes=59))
LONGEST_CALLBACK = "+32 470 00 00 00"
#: How finely the week is scanned for hours nobody serves (contact hours are HH:MM).
COVERAGE_SLOT = timedelta(minutes=15)
WEEK_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Finding:
    level: str  # 'error' or 'warning'
    text: str


def can_hold(when: tuple[str, ...] | list[str]) -> bool:
    """Some assessment the rules can produce meets all these conditions."""
    return any(when_holds(when, flags) for flags in flagspace.outcomes())


def _contradiction(when: tuple[str, ...]) -> tuple[str, ...]:
    """The smallest set of a step's conditions that never hold together."""
    for size in range(1, len(when) + 1):
        for subset in itertools.combinations(when, size):
            if not can_hold(subset):
                return subset
    return when


# ---------------------------------------------------------------- one playbook


def check_playbook(playbook: Playbook, lines: TomlLines, contacts: Contacts | None) -> list[Problem]:
    """The checks beyond loading: cycles, steps that never fire, overlapping waits, SMS length."""
    return (
        _escalation_cycles(playbook, lines)
        + _never_fire(playbook, lines)
        + _ack_overlaps(playbook, lines)
        + _sms_lengths(playbook, lines, contacts)
        + _titles_in_texts(playbook, lines, contacts)
    )


def _sections(playbook: Playbook) -> list[tuple[str, tuple[Step, ...]]]:
    return [("steps", playbook.steps), ("after_resolved", playbook.after_resolved)]


def _problem(playbook: Playbook, level: str, line: int | None, step: Step | None, message: str) -> Problem:
    return Problem(level, playbook.source, line, f"step '{step.id}'" if step else None, message)


def _escalation_cycles(playbook: Playbook, lines: TomlLines) -> list[Problem]:
    """A role escalating (through other steps) back to itself never reaches someone new."""
    edges: dict[str, set[str]] = {}
    for step in playbook.all_steps():
        if step.escalate_to:
            edges.setdefault(step.role, set()).add(step.escalate_to)
    problems, reported = [], set()
    for section, pool in _sections(playbook):
        for step in pool:
            if not step.escalate_to:
                continue
            line = lines.key("escalate_to", section, step.index)
            if step.escalate_to == step.role:
                problems.append(_problem(playbook, ERROR, line, step,
                                         f"escalates to its own role '{step.role}': nobody new is asked"))
                continue
            path = _path(edges, step.escalate_to, step.role)
            if path is None:
                continue
            cycle = frozenset([step.role, *path])
            if cycle in reported:
                continue
            reported.add(cycle)
            problems.append(_problem(
                playbook, ERROR, line, step,
                f"escalation cycle {' → '.join([step.role, *path])}: escalation must end with a"
                " role that does not escalate back",
            ))
    return problems


def _path(edges: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """The roles from start to goal along escalations (breadth first), or None."""
    queue, came_from = [start], {start: ""}
    while queue:
        role = queue.pop(0)
        if role == goal:
            path = [role]
            while came_from[path[0]]:
                path.insert(0, came_from[path[0]])
            return path
        for target in sorted(edges.get(role, ())):
            if target not in came_from:
                came_from[target] = role
                queue.append(target)
    return None


def _never_fire(playbook: Playbook, lines: TomlLines) -> list[Problem]:
    problems = []
    for section, pool in _sections(playbook):
        for step in pool:
            if step.when and not can_hold(step.when):
                bad = _contradiction(step.when)
                conditions = " and ".join(f"'{c}'" for c in bad)
                problems.append(_problem(
                    playbook, ERROR, lines.key("when", section, step.index), step,
                    f"can never fire: no assessment has {conditions} at once",
                ))
    return problems


def _ack_overlaps(playbook: Playbook, lines: TomlLines) -> list[Problem]:
    """Waiting longer than the role's next step makes two texts of one case overlap."""
    problems = []
    for section, pool in _sections(playbook):
        for step in pool:
            if step.ack_within is None:
                continue
            later = [
                other for other in pool
                if other.role == step.role and other.base == step.base and other.at > step.at
                and can_hold(step.when + other.when)
            ]
            if not later:
                continue
            following = min(later, key=lambda s: s.at)
            gap = following.at - step.at
            if step.ack_within > gap:
                problems.append(_problem(
                    playbook, WARNING, lines.key("ack_within", section, step.index), step,
                    f"ack_within {format_duration(step.ack_within)} is longer than the"
                    f" {format_duration(gap)} until step '{following.id}' texts {step.role} again",
                ))
    return problems


def longest_values(contacts: Contacts | None, role: str) -> dict[str, str]:
    """The template values that make a text as long as it realistically gets."""
    grade = max(flagspace.grade_words(), key=len)
    title = role
    if contacts is not None and role in contacts.roles:
        title = contacts.roles[role].title
    return {
        "case": LONGEST_CASE, "grade": grade, "age": LONGEST_AGE, "ack": LONGEST_ACK,
        "callback": contacts.callback_display if contacts else LONGEST_CALLBACK,
        "missing_for": LONGEST_MISSING_FOR, "role_title": title,
    }


def _sms_lengths(playbook: Playbook, lines: TomlLines, contacts: Contacts | None) -> list[Problem]:
    problems = []
    for section, pool in _sections(playbook):
        for step in pool:
            for key, text in (("message", step.message), ("withdraw_message", step.withdraw_message)):
                problem = text and _sms_length(playbook, text, step.roles(),
                                               lines.key(key, section, step.index), step, contacts)
                if problem:
                    problems.append(problem)
    roles = sorted({r for s in playbook.steps for r in s.roles()}) or ["coordinator"]
    texts = {"message": playbook.stand_down, **playbook.stand_downs}
    for key, text in texts.items():
        if not text:
            continue
        problem = _sms_length(playbook, text, roles, lines.key(key, "on_resolved"), None, contacts)
        if problem:
            problems.append(Problem(problem.level, problem.file, problem.line,
                                    f"[on_resolved] {key}", problem.message))
    if playbook.stand_down and set(OUTCOMES) - set(playbook.stand_downs):
        problems.append(Problem(
            WARNING, playbook.source, lines.key("message", "on_resolved"), "[on_resolved]",
            "one 'message' stands down every outcome: a withdrawn report would be told the same"
            f" as a minor found; give a text per outcome ({', '.join(OUTCOMES)})"))
    return problems


def _titles_in_texts(playbook: Playbook, lines: TomlLines, contacts: Contacts | None) -> list[Problem]:
    """A role's title outside GSM-7 (an en dash, curly quotes) that a text quotes via
    {role_title} turns that whole text into UCS-2: 70 characters a segment instead of 160."""
    if contacts is None:
        return []
    problems = []
    for section, pool in _sections(playbook):
        for step in pool:
            for key, text in (("message", step.message), ("withdraw_message", step.withdraw_message)):
                if not text or "{role_title}" not in text:
                    continue
                for role in step.roles():
                    title = contacts.roles[role].title if role in contacts.roles else ""
                    outside = outside_gsm7(title)
                    if outside:
                        problems.append(_problem(
                            playbook, WARNING, lines.key(key, section, step.index), step,
                            f"{key} quotes {{role_title}}, and the title of role '{role}' has"
                            f" {', '.join(repr(c) for c in outside)} (not GSM-7): the whole text"
                            " becomes UCS-2; write plain characters in the contacts file ('-' for '–')"))
    return problems


def _sms_length(
    playbook: Playbook, template: str, roles: list[str], line: int | None, step: Step | None,
    contacts: Contacts | None,
) -> Problem | None:
    worst = max((measure(render(template, longest_values(contacts, role))) for role in roles),
                key=lambda m: (m.segments, m.units))
    if worst.segments <= WARN_SEGMENTS:
        return None
    level = ERROR if worst.segments > MAX_SEGMENTS else WARNING
    why = ""
    if worst.outside:
        why = f" (UCS-2 because of {', '.join(repr(c) for c in worst.outside)})"
    limit = "keep it to 1" if level == WARNING else f"at most {MAX_SEGMENTS}"
    return _problem(playbook, level, line, step,
                    f"the text takes {worst.segments} SMS segments with the longest values"
                    f" ({worst.describe()}){why}; {limit}")


# ---------------------------------------------------------------- the contacts file


def check_contacts(contacts: Contacts, playbooks: list[Playbook]) -> list[Finding]:
    """Every role a playbook uses exists and has at least one number that can take a text."""
    findings: list[Finding] = []
    used: dict[str, list[str]] = {}
    for playbook in playbooks:
        for step in playbook.all_steps():
            for role in step.roles():
                if is_case_role(role):
                    continue  # its number is on each case, not in the contacts file
                used.setdefault(role, []).append(f"{playbook.name}/{step.id}")
    for role, where in sorted(used.items()):
        if role not in contacts.roles:
            findings.append(Finding("error", f"role '{role}' is used by {', '.join(where)}"
                                             " but has no entry in the contacts file"))
            continue
        members = contacts.roles[role].contacts
        mobiles = [c for c in members if is_mobile(c.phone)]
        if not mobiles:
            findings.append(Finding("error", f"role '{role}' has no mobile number: texts cannot reach it"))
        for contact in members:
            if contact not in mobiles:
                findings.append(Finding("warning", f"role '{role}', contact '{contact.name}':"
                                                   f" {contact.phone} is not a mobile number"))
        if len(members) < 2:
            findings.append(Finding("warning", f"role '{role}' has a single contact: no backup"))
    for role in contacts.roles:
        if role not in used:
            findings.append(Finding("warning", f"role '{role}' is not used by any playbook"))
    return findings


def uncovered_hours(contacts: Contacts, role: str) -> list[str]:
    """The stretches of a week (local time) when nobody of the role is on duty."""
    members = contacts.roles[role].contacts
    monday = datetime(2024, 1, 1)  # any Monday: hours are weekly, in local wall time
    slots = int(timedelta(days=7) / COVERAGE_SLOT)
    gaps: list[tuple[datetime, datetime]] = []
    for index in range(slots):
        start = monday + index * COVERAGE_SLOT
        served = any(not c.hours or any(w.covers(start) for w in c.hours) for c in members)
        if served:
            continue
        if gaps and gaps[-1][1] == start:
            gaps[-1] = (gaps[-1][0], start + COVERAGE_SLOT)
        else:
            gaps.append((start, start + COVERAGE_SLOT))
    if len(gaps) > 1 and gaps[0][0] == monday and gaps[-1][1] == monday + timedelta(days=7):
        gaps[-1] = (gaps[-1][0], gaps[0][1] + timedelta(days=7))  # the weekend into monday
        gaps.pop(0)
    return [f"{_weekly(a)}-{_weekly(b, end=True)}" for a, b in gaps]


def _weekly(moment: datetime, end: bool = False) -> str:
    day = WEEK_DAYS[moment.weekday()]
    if end and moment.hour == 0 and moment.minute == 0:
        return f"{WEEK_DAYS[(moment.weekday() - 1) % 7]} 24:00"
    return f"{day} {moment:%H:%M}"


def contacts_problems(
    path: Path, text: str, contacts: Contacts | None, playbooks: list[Playbook]
) -> list[Problem]:
    """Findings of the contacts file, each on its role's line, and hours nobody serves."""
    if contacts is None:
        return []
    lines = TomlLines(text)
    problems = []
    for finding in check_contacts(contacts, playbooks):
        if finding.text.endswith(("is not used by any playbook", "no entry in the contacts file")):
            continue  # a spare role is no mistake; a missing one is reported on the playbook's line
        role = re.match(r"role '([a-z0-9_]+)'", finding.text)
        line = lines.table(f"roles.{role.group(1)}") if role else None
        problems.append(Problem(finding.level, str(path), line, None, finding.text))
    for role in contacts.roles:
        for gap in uncovered_hours(contacts, role):
            problems.append(Problem(
                WARNING, str(path), lines.table(f"roles.{role}"), f"role '{role}'",
                f"nobody is on duty {gap} (then every contact of the role is texted at once)",
            ))
    return problems


_LOADING_ERROR = re.compile(r"^(?P<file>.*?)(?:, line (?P<line>\d+))?:? (?P<message>.*)$", re.S)


def _load_contacts_problem(path: Path, text: str) -> tuple[Contacts | None, list[Problem]]:
    try:
        return parse_contacts(text, path), []
    except InputError as exc:
        return None, [_as_problem(exc)]


# ---------------------------------------------------------------- everything at once


@dataclass
class CheckResult:
    problems: list[Problem]
    files: list[str]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == WARNING]


def _read(path: Path) -> tuple[str | None, Problem | None]:
    if not path.exists():
        return None, Problem(ERROR, str(path), None, None, "no such file")
    try:
        return tomlfile.read_text(path), None
    except InputError as exc:
        return None, _as_problem(exc)


def _as_problem(exc: InputError) -> Problem:
    """A loading error ("file, line N: message") as a problem on its line."""
    match = _LOADING_ERROR.match(str(exc))
    if match is None:
        return Problem(ERROR, "", None, None, str(exc))
    line = int(match.group("line")) if match.group("line") else None
    return Problem(ERROR, match.group("file"), line, None, match.group("message"))


def _is_contacts_file(text: str) -> bool:
    try:
        return "roles" in tomlfile.parse(text, "")
    except InputError:
        return False


def check_files(
    contacts_path: Path, playbook_paths: list[Path], extra: list[Path] | None = None
) -> CheckResult:
    """Check the home's contacts and playbooks, or only the files in `extra` if given.

    Files given are sorted by their content: a file with `[roles…]` is a contacts file, anything
    else a playbook. The home's contacts serve the playbooks' role checks (and its playbooks the
    contacts' "is this role used" check) when the other kind is not among the files.
    """
    problems: list[Problem] = []
    targets = extra if extra is not None else [contacts_path, *playbook_paths]
    texts: dict[Path, str] = {}
    for path in targets:
        text, problem = _read(path)
        if problem:
            problems.append(problem)
        elif text is not None:
            texts[path] = text
    contacts_files = [p for p, t in texts.items() if _is_contacts_file(t)]
    playbook_files = [p for p in texts if p not in contacts_files]

    home_contacts: Contacts | None = None
    if not contacts_files and contacts_path.exists():
        text, _ = _read(contacts_path)
        if text is not None:
            home_contacts, _ignored = _load_contacts_problem(contacts_path, text)
    loaded_contacts: dict[Path, Contacts | None] = {}
    for path in contacts_files:
        loaded_contacts[path], found = _load_contacts_problem(path, texts[path])
        problems.extend(found)
    contacts = next((c for c in loaded_contacts.values() if c is not None), home_contacts)

    playbooks: list[Playbook] = []
    for path in playbook_files:
        roles = list(contacts.roles) if contacts else None
        playbook, found = validate_playbook(texts[path], source=str(path), stem=path.stem, roles=roles)
        problems.extend(found)
        if playbook is not None:
            playbooks.append(playbook)
            problems.extend(check_playbook(playbook, TomlLines(texts[path]), contacts))
    if not playbook_files:
        playbooks = _home_playbooks(playbook_paths)
    for path, book in loaded_contacts.items():
        problems.extend(contacts_problems(path, texts[path], book, playbooks))
    order = {str(p): i for i, p in enumerate(targets)}
    problems.sort(key=lambda p: (order.get(p.file, len(order)), p.file, p.line or 0))
    return CheckResult(problems, [str(p) for p in targets])


def _home_playbooks(paths: list[Path]) -> list[Playbook]:
    found = []
    for path in paths:
        text, problem = _read(path)
        if text is None or problem:
            continue
        playbook, _ = validate_playbook(text, source=str(path), stem=path.stem)
        if playbook is not None:
            found.append(playbook)
    return found


TEST_MESSAGE = "RR-TEST: testbericht van rapidresponse ({role_title}). Geen actie nodig."
TEST_CALL = "Testoproep van rapidresponse voor {role_title}. Er is geen actie nodig."
