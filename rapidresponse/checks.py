"""Coordinator checks: do the contacts serve every playbook, and does each number work?"""

from __future__ import annotations

from dataclasses import dataclass

from rapidresponse.contacts import Contacts, is_mobile
from rapidresponse.playbooks import Playbook


@dataclass(frozen=True)
class Finding:
    level: str  # 'error' or 'warning'
    text: str


def check_contacts(contacts: Contacts, playbooks: list[Playbook]) -> list[Finding]:
    """Every role a playbook uses exists and has at least one number that can take a text."""
    findings: list[Finding] = []
    used: dict[str, list[str]] = {}
    for playbook in playbooks:
        for step in playbook.all_steps():
            for role in step.roles():
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


TEST_MESSAGE = "RR-TEST: testbericht van rapidresponse ({role_title}). Geen actie nodig."
