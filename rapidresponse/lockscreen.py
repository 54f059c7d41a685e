"""What a text may not say: it shows on lock screens and reaches wrong phones.

Shared by the playbook templates and the contacts file's role titles (`{role_title}`), which
both end up in messages; it imports nothing, so either may use it.
"""

from __future__ import annotations

#: Words that reveal the nature of the case on a lock screen (Dutch, French, English).
REVEALING_WORDS = (
    "prostitu", "tienerpooier", "pooier", "loverboy", "mensenhandel", "uitbuit", "seksu",
    "sexu", "traffick", "exploit", "proxénète", "traite",
)


def revealing_word(text: str) -> str | None:
    """The first revealing word the text contains (case-insensitively), or None."""
    lowered = text.lower()
    return next((word for word in REVEALING_WORDS if word in lowered), None)
