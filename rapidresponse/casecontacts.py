"""The people around the minor: her carer, her consulent and her guardian, with a number each.

Their numbers are personal data of the case (a carer's number tells where the minor lives), so
they live in `case_contacts`, beside the person, and are purged with it. Playbooks address them
as the roles `case:carer`, `case:consulent` and `case:guardian`; the engine finds the number on
the case, not in the contacts file.

What the audit log may say about them: the role and a masked number (`+32*******07`), never the
number itself: the log outlives the purge. The message rows keep the full number while the case
lives (a text must be sent and a stand-down must reach the same phone); the purge masks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rapidresponse.contacts import Contact, normalise_number
from rapidresponse.errors import InputError
from rapidresponse.store import Store

PREFIX = "case:"
#: The people a case or profile can name, and how a text names them in `{role_title}`.
KINDS: dict[str, str] = {
    "carer": "opvang",
    "consulent": "consulent",
    "guardian": "ouder/voogd",
}
CASE_ROLES = tuple(PREFIX + kind for kind in KINDS)


def is_case_role(role: str | None) -> bool:
    return role is not None and role.startswith(PREFIX)


def kind_of(role: str) -> str:
    return role.removeprefix(PREFIX)


def title(role: str) -> str:
    return KINDS.get(kind_of(role), kind_of(role))


def mask(number: str) -> str:
    """What the log shows of a case contact's number: enough to tell two apart, no more."""
    if len(number) <= 6:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def logged_number(role: str, number: str) -> str:
    """The number an audit event may carry for a message to `role`."""
    return mask(number) if is_case_role(role) else number


def logged_sender(store: Store, number: str) -> str:
    """The number an audit event may carry for an inbound text: masked when it is a case
    contact's (a carer who answers the text)."""
    known = store.scalar("SELECT 1 FROM case_contacts WHERE phone = ? LIMIT 1", [number])
    return mask(number) if known else number


def parse_numbers(given: Mapping[str, str | None]) -> dict[str, str]:
    """{'carer': '0470 00 00 61', …} → E.164 per kind; empty or None values are left out.

    The error names the option, never the value: a number of the people around the minor is
    personal data too.
    """
    numbers: dict[str, str] = {}
    for kind, text in given.items():
        if kind not in KINDS:
            raise InputError(f"unknown case contact '{kind}': choose {', '.join(KINDS)}")
        if text is None or not text.strip():
            continue
        try:
            numbers[kind] = normalise_number(text)
        except ValueError:
            raise InputError(f"--{kind}-phone is not a valid phone number") from None
    return numbers


def save(store: Store, numbers: Mapping[str, str], *, case_id: int | None = None,
         profile_id: int | None = None) -> None:
    """Set the numbers of a case or of a profile (one per kind; a new one replaces the old)."""
    assert (case_id is None) != (profile_id is None)
    owner, owner_id = ("case_id", case_id) if case_id is not None else ("profile_id", profile_id)
    for kind, phone in numbers.items():
        store.conn.execute(f"DELETE FROM case_contacts WHERE {owner} = ? AND kind = ?", [owner_id, kind])
        store.conn.execute(
            f"INSERT INTO case_contacts ({owner}, kind, phone) VALUES (?, ?, ?)",
            [owner_id, kind, phone],
        )


def of_case(store: Store, case_id: int) -> dict[str, str]:
    rows = store.all("SELECT kind, phone FROM case_contacts WHERE case_id = ?", [case_id])
    return {row["kind"]: row["phone"] for row in rows}


def of_profile(store: Store, profile_id: int) -> dict[str, str]:
    rows = store.all("SELECT kind, phone FROM case_contacts WHERE profile_id = ?", [profile_id])
    return {row["kind"]: row["phone"] for row in rows}


def members(store: Store, case_id: int, role: str) -> tuple[Contact, ...]:
    """The case's contact for a case role, as a chain member; () when the case names nobody."""
    phone = store.scalar(
        "SELECT phone FROM case_contacts WHERE case_id = ? AND kind = ?", [case_id, kind_of(role)]
    )
    return (Contact(name=kind_of(role), phone=phone),) if phone else ()


def forget_case(store: Store, case_id: int) -> int:
    """The purge: the numbers go, and the message rows keep only the masked number."""
    removed = store.conn.execute("DELETE FROM case_contacts WHERE case_id = ?", [case_id]).rowcount
    rows = store.all(
        "SELECT id, role, to_number FROM messages WHERE case_id = ? AND role LIKE ?",
        [case_id, PREFIX + "%"],
    )
    for row in rows:
        store.conn.execute(
            "UPDATE messages SET to_number = ? WHERE id = ?", [mask(row["to_number"]), row["id"]]
        )
    return removed


def shown(numbers: Mapping[str, Any]) -> dict[str, Any]:
    """Every kind, in order, with its number or None: for `show` and `profiles show`."""
    return {kind: numbers.get(kind) for kind in KINDS}
