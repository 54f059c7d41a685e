"""Duty rosters: rotations counted in local wall time (DST, year ends), overrides, iCalendar."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from rapidresponse.cli import cli
from rapidresponse.contacts import Contacts, parse_contacts
from rapidresponse.errors import InputError
from rapidresponse.rosters import shifts

BRUSSELS = ZoneInfo("Europe/Brussels")

BOOK = """\
timezone = "Europe/Brussels"
callback = "+32 470 00 00 99"

[roles.youth_prosecutor]
title = "Jeugdparket"
contacts = [
  { name = "Magistraat A", phone = "+32 470 00 00 01" },
  { name = "Magistraat B", phone = "+32 470 00 00 02" },
  { name = "Magistraat C", phone = "+32 470 00 00 03" },
  { name = "Parket backup", phone = "+32 470 00 00 04" },
]

[roles.youth_prosecutor.rotation]
members = ["Magistraat A", "Magistraat B", "Magistraat C"]
shift = "{shift}"
start = "{start}"

[roles.coordinator]
title = "Coordinatie"
contacts = [
  {{ name = "Coordinator A", phone = "+32 470 00 00 41" }},
  {{ name = "Coordinator B", phone = "+32 470 00 00 42" }},
]
{extra}"""


def book(shift: str = "7d", start: str = "2026-11-30 08:00", extra: str = "") -> Contacts:
    text = BOOK.replace("{shift}", shift).replace("{start}", start).replace("{extra}", extra)
    return parse_contacts(text.replace("{{", "{").replace("}}", "}"), Path("contacts.toml"))


def first(contacts: Contacts, local: str, role: str = "youth_prosecutor") -> list[str]:
    """The chain order at a local wall time (given with its offset when ambiguous)."""
    moment = datetime.fromisoformat(local)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BRUSSELS)
    return [c.name for c in contacts.chain_order(role, moment)]


def test_the_member_on_duty_comes_first_and_the_rotation_follows() -> None:
    contacts = book()
    assert first(contacts, "2026-11-30 08:00") == ["Magistraat A", "Magistraat B", "Magistraat C", "Parket backup"]
    assert first(contacts, "2026-12-07 07:59") == ["Magistraat A", "Magistraat B", "Magistraat C", "Parket backup"]
    assert first(contacts, "2026-12-07 08:00") == ["Magistraat B", "Magistraat C", "Magistraat A", "Parket backup"]
    assert first(contacts, "2026-12-14 12:00")[0] == "Magistraat C"
    assert first(contacts, "2026-12-21 08:00")[0] == "Magistraat A"
    assert first(contacts, "2026-11-29 12:00")[0] == "Magistraat C"  # before the start: counted back


@pytest.mark.parametrize(
    ("start", "before", "after", "hours"),
    [
        # spring: Sunday 29 March 2026 02:00 → 03:00; the shift holding it lasts 167 h
        ("2026-03-23 08:00", "2026-03-30T05:59:00+00:00", "2026-03-30T06:00:00+00:00", 167),
        # autumn: Sunday 25 October 2026 03:00 → 02:00; the shift holding it lasts 169 h
        ("2026-10-19 08:00", "2026-10-26T06:59:00+00:00", "2026-10-26T07:00:00+00:00", 169),
    ],
)
def test_a_monday_0800_shift_starts_at_0800_local_on_both_sides_of_a_clock_change(
    start: str, before: str, after: str, hours: int,
) -> None:
    contacts = book(start=start)
    assert first(contacts, before)[0] == "Magistraat A"
    assert first(contacts, after)[0] == "Magistraat B"
    assert datetime.fromisoformat(after).astimezone(BRUSSELS).strftime("%a %H:%M") == "Mon 08:00"
    role = contacts.roles["youth_prosecutor"]
    since = datetime.fromisoformat(start).replace(tzinfo=BRUSSELS)
    (a, b, *_rest) = shifts("youth_prosecutor", role.contacts, role.rotation, (), BRUSSELS, since,
                            since + timedelta(days=8))
    assert (a.end.astimezone(UTC) - a.start.astimezone(UTC)) == timedelta(hours=hours)
    assert (a.contact, b.contact) == ("Magistraat A", "Magistraat B")


def test_twelve_hour_shifts_change_at_0800_and_2000_across_the_spring_change() -> None:
    contacts = book(shift="12h", start="2026-03-28 08:00")
    assert first(contacts, "2026-03-28 19:59")[0] == "Magistraat A"
    assert first(contacts, "2026-03-28 20:00")[0] == "Magistraat B"
    assert first(contacts, "2026-03-29 07:59")[0] == "Magistraat B"  # an 11-hour night
    assert first(contacts, "2026-03-29 08:00")[0] == "Magistraat C"
    assert first(contacts, "2026-03-29 20:00")[0] == "Magistraat A"


def test_rotation_runs_on_over_a_year_boundary() -> None:
    contacts = book(start="2026-12-28 08:00")
    assert first(contacts, "2027-01-04 07:59")[0] == "Magistraat A"
    assert first(contacts, "2027-01-04 08:00")[0] == "Magistraat B"
    assert first(contacts, "2027-12-27 08:00")[0] == "Magistraat B"  # 52 weeks on: 52 % 3 == 1


OVERRIDE = """
[[overrides]]
role = "youth_prosecutor"
contact = "Magistraat C"
from = "{from_}"
until = "{until}"
"""


def with_override(from_: str, until: str) -> Contacts:
    return book(extra=OVERRIDE.replace("{from_}", from_).replace("{until}", until))


def test_an_override_inside_a_shift_puts_its_contact_first_for_that_while() -> None:
    contacts = with_override("2026-12-24 08:00", "2026-12-26 08:00")  # inside A's shift (21–28 Dec)
    assert first(contacts, "2026-12-24 07:59")[0] == "Magistraat A"
    assert first(contacts, "2026-12-25 22:00") == ["Magistraat C", "Magistraat A", "Magistraat B", "Parket backup"]
    assert first(contacts, "2026-12-26 08:00")[0] == "Magistraat A"
    role = contacts.roles["youth_prosecutor"]
    since = datetime(2026, 12, 21, 7, 0, tzinfo=UTC)
    found = shifts("youth_prosecutor", role.contacts, role.rotation, contacts.overrides, BRUSSELS,
                   since, since + timedelta(days=7))
    assert [(s.start.astimezone(BRUSSELS).strftime("%d %H:%M"), s.contact, s.override) for s in found] == [
        ("21 08:00", "Magistraat A", False),
        ("24 08:00", "Magistraat C", True),
        ("26 08:00", "Magistraat A", False),
    ]


def test_an_override_across_a_shift_change_holds_over_both_shifts() -> None:
    contacts = with_override("2026-12-27 20:00", "2026-12-29 08:00")  # A until 28 Dec 08:00, then B
    assert first(contacts, "2026-12-27 21:00")[:2] == ["Magistraat C", "Magistraat A"]
    assert first(contacts, "2026-12-28 10:00")[:2] == ["Magistraat C", "Magistraat B"]
    assert first(contacts, "2026-12-29 08:00")[:2] == ["Magistraat B", "Magistraat C"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('"Magistraat A", "Magistraat B"', '"Magistraat A", "Magistraat Z"'),
         "contacts.toml, line 14: role 'youth_prosecutor', rotation: member 'Magistraat Z' is not a contact of this role"),
        (('shift = "7d"', 'shift = "7x"'), "contacts.toml, line 15: role 'youth_prosecutor', rotation: 'shift': '7x' is not a duration"),
        (('shift = "7d"', 'shift = "30m"'), "line 15: role 'youth_prosecutor', rotation: 'shift' is 30m: a shift lasts at least an hour"),
        (('start = "2026-11-30 08:00"', 'start = "2026-03-29 02:30"'), "line 16: role 'youth_prosecutor', rotation: 'start' falls in the hour skipped"),
        (('start = "2026-11-30 08:00"', 'start = "monday"'), "line 16: role 'youth_prosecutor', rotation: 'start' must be a local time like 2026-11-30 08:00"),
        (('shift = "7d"', 'shift = "7d"\nleader = "A"'), "line 16: role 'youth_prosecutor', rotation: unknown key 'leader'"),
    ],
)
def test_rotation_mistakes_name_file_line_and_role(change: tuple[str, str], expected: str) -> None:
    text = BOOK.replace("{shift}", "7d").replace("{start}", "2026-11-30 08:00")
    text = text.replace("{extra}", "").replace("{{", "{").replace("}}", "}")
    assert change[0] in text
    text = text.replace(*change)
    with pytest.raises(InputError) as info:
        parse_contacts(text, Path("contacts.toml"))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("from_", "until", "contact", "expected"),
    [
        ("2026-12-24 08:00", "2026-12-24 07:00", "Magistraat C", "override 1 (role 'youth_prosecutor'): 'until' must come after 'from'"),
        ("2026-12-24 08:00", "2026-12-26 08:00", "Coordinator A", "override 1 (role 'youth_prosecutor'): 'Coordinator A' is not a contact of role 'youth_prosecutor'"),
        ("24 december", "2026-12-26 08:00", "Magistraat C", "'from' must be a local time like"),
    ],
)
def test_override_mistakes_name_file_line_and_role(from_: str, until: str, contact: str, expected: str) -> None:
    extra = OVERRIDE.replace("{from_}", from_).replace("{until}", until).replace("Magistraat C", contact)
    text = BOOK.replace("{shift}", "7d").replace("{start}", "2026-11-30 08:00").replace("{extra}", extra)
    with pytest.raises(InputError) as info:
        parse_contacts(text.replace("{{", "{").replace("}}", "}"), Path("contacts.toml"))
    assert str(info.value).startswith("contacts.toml, line 25: ")
    assert expected in str(info.value)


def write_home_book(home: Path) -> None:
    text = BOOK.replace("{shift}", "7d").replace("{start}", "2026-11-30 08:00")
    text = text.replace("{extra}", OVERRIDE.replace("{from_}", "2026-12-24 08:00").replace("{until}", "2026-12-26 08:00"))
    text = text.replace("{{", "{").replace("}}", "}")
    original = (home / "contacts.toml").read_text()
    others = original[original.index("[roles.reference_magistrate]"):]  # the roles playbooks use
    overrides = text[text.index("[[overrides]]"):]
    (home / "contacts.toml").write_text(text[:text.index("[roles.coordinator]")] + others + "\n" + overrides)


def test_contacts_list_at_a_moment_gives_the_order_of_the_chain(runner: CliRunner, home: Path) -> None:
    write_home_book(home)
    result = runner.invoke(cli, ["--home", str(home), "contacts", "list", "--at", "2026-12-25 10:00", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    roles = {r["role"]: r for r in report["roles"]}
    assert roles["youth_prosecutor"]["on_duty"] == ["Magistraat C", "Magistraat A", "Magistraat B", "Parket backup"]
    assert report["at"] == "2026-12-25T10:00:00+01:00"
    text = runner.invoke(cli, ["--home", str(home), "contacts", "list", "--at", "2026-12-08 10:00"]).stdout
    assert text.index("Magistraat B") < text.index("Magistraat C") < text.index("Magistraat A")


def test_the_chain_of_a_real_case_texts_the_member_on_duty_first(runner: CliRunner, home: Path) -> None:
    write_home_book(home)
    result = runner.invoke(cli, ["--home", str(home), "playbooks", "simulate", "worrying-situation",
                                 "--start", "2026-12-08 10:00", "--json"])
    assert result.exit_code == 0, result.output
    sent = [e["contact"] for e in json.loads(result.stdout)["events"]
            if e["kind"] == "sms.sent" and e["step"] == "alert-youth-prosecutor"]
    assert sent[:3] == ["Magistraat B", "Magistraat C", "Magistraat A"]


def test_roster_prints_shifts_and_writes_an_icalendar_that_parses_back(
    runner: CliRunner, home: Path, tmp_path: Path,
) -> None:
    from icalendar import Calendar

    write_home_book(home)
    ics = tmp_path / "parket.ics"
    args = ["--home", str(home), "contacts", "roster", "youth_prosecutor", "--weeks", "5", "--ics", str(ics),
            "--from", "2026-12-07 08:00"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Thu 24 Dec 2026 08:00 – Sat 26 Dec 2026 08:00  Magistraat C  (override)" in result.stdout
    calendar = Calendar.from_ical(ics.read_bytes())
    events = list(calendar.walk("VEVENT"))
    assert len(events) == len(result.stdout.strip().splitlines())
    christmas = next(e for e in events if "Magistraat C" in str(e["SUMMARY"])
                     and e.decoded("DTSTART").astimezone(BRUSSELS).day == 24)
    assert christmas.decoded("DTSTART").astimezone(BRUSSELS) == datetime(2026, 12, 24, 8, 0, tzinfo=BRUSSELS)
    assert christmas.decoded("DTEND").astimezone(BRUSSELS) == datetime(2026, 12, 26, 8, 0, tzinfo=BRUSSELS)
    assert str(christmas["SUMMARY"]) == "Wachtdienst Jeugdparket: Magistraat C"
    uids = [str(e["UID"]) for e in events]
    assert len(set(uids)) == len(uids)
    runner.invoke(cli, args)  # a second export keeps the same UIDs: subscribers update, not duplicate
    assert [str(e["UID"]) for e in Calendar.from_ical(ics.read_bytes()).walk("VEVENT")] == uids


def test_contacts_list_at_80_columns_keeps_roles_numbers_and_order_whole(
    runner: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    at = ["--at", "2026-12-23 22:00"]  # a weekday night: office-hours contacts are off duty
    listed = json.loads(runner.invoke(cli, ["--home", str(home), "contacts", "list", *at, "--json"]).stdout)
    text = runner.invoke(cli, ["--home", str(home), "contacts", "list", *at]).stdout
    assert "off duty" in text
    assert [line for line in text.splitlines() if len(line) > 80] == [] and "…" not in text
    assert "\xa0" not in text  # what must not split is glued while wrapping, printed as a space
    table = text[text.index("\nrole "):].splitlines()[2:]
    rows = [line.split()[:3] for line in table if not line.startswith(" ")]
    expected = [[r["role"], str(c["on_duty"] and r["on_duty"].index(c["name"]) + 1), c["phone"]]
                for r in listed["roles"] for c in r["contacts"] if c["on_duty"]]
    assert sorted(row for row in rows if row[1] != "off") == sorted(expected)
    assert "reference_magistrate  2         +32470000004  Referentiemagistraat backup" in text
