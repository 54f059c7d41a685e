"""Loading and validating the contacts file: every mistake is named with its place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rapidresponse.contacts import load_contacts, parse_contacts, parse_hours
from rapidresponse.errors import InputError

EXAMPLE = Path(__file__).parent.parent / "rapidresponse" / "data" / "contacts.example.toml"

GOOD = """\
timezone = "Europe/Brussels"
callback = "03 200 00 00"

[roles.youth_prosecutor]
title = "Jeugdparket"
contacts = [
  { name = "Primary", phone = "0470 00 00 01" },
  { name = "Backup", phone = "+32 470 00 00 02", hours = "mon-fri 08:00-18:00" },
]
"""


def test_the_shipped_example_loads_with_every_role() -> None:
    book = load_contacts(EXAMPLE)
    assert set(book.roles) >= {"mandated_agency", "youth_prosecutor", "child_focus", "police",
                               "coordinator", "reference_centre"}
    for role in book.roles.values():
        assert len(role.contacts) >= 2, f"{role.key} needs a primary and a backup"
        for contact in role.contacts:
            assert contact.phone.startswith("+324700000"), "examples use fictitious numbers"


def test_numbers_are_normalised_to_e164() -> None:
    book = parse_contacts(GOOD)
    assert [c.phone for c in book.roles["youth_prosecutor"].contacts] == ["+32470000001", "+32470000002"]
    assert book.callback == "+3232000000"
    assert book.callback_display == "+32 3 200 00 00"


def test_an_invalid_number_names_file_role_contact_and_line() -> None:
    text = GOOD.replace("0470 00 00 01", "0470 12")
    with pytest.raises(InputError) as info:
        parse_contacts(text, Path("contacts.toml"))
    message = str(info.value)
    assert "contacts.toml, line 7" in message
    assert "role 'youth_prosecutor'" in message and "contact 'Primary'" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("title = \"Jeugdparket\"", "title = \"J\"\npager = 1"), "unknown key 'pager'"),
        (("hours = ", "shift = "), "unknown key 'shift'"),
        (("timezone", "tz"), "unknown key 'tz'"),
        (("{ name = \"Primary\", phone = \"0470 00 00 01\" },", ""), None),
        (("Europe/Brussels", "Europe/Nowhere"), "unknown time zone"),
        (("hours = \"mon-fri 08:00-18:00\"", "hours = \"weekdays 8-18\""), "hours 'weekdays 8-18'"),
        (("name = \"Primary\", ", ""), "'name' is missing"),
        (("callback = \"03 200 00 00\"\n", ""), "'callback'"),
        (("+32 470 00 00 02", "0470 00 00 01"), "listed twice"),
        (("[roles.youth_prosecutor]", "[roles.Youth-Prosecutor]"), "lower case"),
    ],
)
def test_mistakes_are_refused(change: tuple[str, str], expected: str | None) -> None:
    text = GOOD.replace(*change)
    if expected is None:
        parse_contacts(text)  # one contact left is still valid
        return
    with pytest.raises(InputError, match=expected):
        parse_contacts(text)


@pytest.mark.parametrize(
    ("title", "word"),
    [("Cel Mensenhandel", "mensenhandel"), ("Loverboy-team", "loverboy"),
     ("Sexual exploitation unit", "sexu"), ("Brigade proxénète", "proxénète")],
)
def test_a_role_title_that_reveals_the_case_is_refused(title: str, word: str) -> None:
    """Messages quote the title as {role_title}: it shows on lock screens like the rest."""
    text = GOOD.replace('title = "Jeugdparket"', f'title = "{title}"')
    with pytest.raises(InputError) as info:
        parse_contacts(text, Path("contacts.toml"))
    assert str(info.value) == (
        f"contacts.toml, line 5: role 'youth_prosecutor': the title contains '{word}…', which reveals"
        " the case on a lock screen (messages quote it as {role_title})"
    )


def test_a_role_without_a_title_is_checked_by_the_name_it_gets() -> None:
    text = GOOD.replace('title = "Jeugdparket"\n', "").replace("youth_prosecutor", "trafficking_desk")
    with pytest.raises(InputError, match=r"line 4: role 'trafficking_desk': the title contains 'traffick"):
        parse_contacts(text, Path("contacts.toml"))


def test_a_role_without_contacts_is_refused() -> None:
    text = GOOD + '\n[roles.police]\ntitle = "Politie"\ncontacts = []\n'
    with pytest.raises(InputError, match="role 'police' has no contacts"):
        parse_contacts(text)


def test_broken_toml_is_one_sentence() -> None:
    with pytest.raises(InputError, match="not valid TOML"):
        parse_contacts("callback = \n")


def test_on_duty_windows_in_local_time() -> None:
    book = parse_contacts(GOOD)
    backup = book.roles["youth_prosecutor"].contacts[1]
    tz = book.timezone
    assert backup.on_duty(datetime(2026, 11, 27, 16, 59, tzinfo=UTC), tz)  # Fri 17:59 local
    assert not backup.on_duty(datetime(2026, 11, 27, 17, 0, tzinfo=UTC), tz)  # Fri 18:00 local
    assert not backup.on_duty(datetime(2026, 11, 28, 10, 0, tzinfo=UTC), tz)  # Saturday


def test_overnight_windows_cross_midnight() -> None:
    (window,) = parse_hours("fri 20:00-08:00")
    assert window.covers(datetime(2026, 11, 27, 23, 0))  # Friday night
    assert window.covers(datetime(2026, 11, 28, 7, 59))  # Saturday morning
    assert not window.covers(datetime(2026, 11, 28, 8, 0))
    assert not window.covers(datetime(2026, 11, 26, 23, 0))  # Thursday night


def test_nobody_on_duty_means_everybody_is_messaged() -> None:
    text = GOOD.replace('{ name = "Primary", phone = "0470 00 00 01" }',
                        '{ name = "Primary", phone = "0470 00 00 01", hours = "mon 09:00-10:00" }')
    book = parse_contacts(text)
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert [c.name for c in book.on_duty("youth_prosecutor", saturday)] == ["Primary", "Backup"]


def test_unknown_role_lookup_lists_the_roles() -> None:
    with pytest.raises(InputError, match=r"unknown role \(the contacts file has .*youth_prosecutor"):
        parse_contacts(GOOD).role("judge")


@pytest.mark.parametrize("written", ["+32 470 00 00 01", "+32.470.00.00.01", "0470 00 00 01", "+32 (0)470 00 00 01"])
def test_numbers_read_for_display_match_the_checked_ones(written: str) -> None:
    from rapidresponse.contacts import normalise_number, number_as_written

    assert number_as_written(written) == normalise_number(written) == "+32470000001"


def test_contacts_read_for_display_are_never_kept_as_the_last_good_copy(home: Path) -> None:
    from rapidresponse.contactsource import LAST_GOOD_NAME, load

    (home / LAST_GOOD_NAME).unlink(missing_ok=True)
    shown = load(home, for_display=True)
    assert shown.contacts is not None and shown.using == "contacts.toml"
    assert not (home / LAST_GOOD_NAME).exists()  # its numbers were not validated
    assert load(home).contacts == shown.contacts and (home / LAST_GOOD_NAME).exists()
