"""Case references: `RR-<year>-<number>`, and the short forms an officer types for them."""

from __future__ import annotations

import re

_FULL = re.compile(r"^RR-(\d{4})-(\d{1,6})$")
_NUMBER = re.compile(r"^(?:RR-?)?(\d{1,6})$")


def case_ref(year: int, seq: int) -> str:
    """The reference of the `seq`-th case registered in `year`."""
    return f"RR-{year}-{seq:04d}"


def expand_ref(text: str, this_year: int) -> str:
    """'12' (or 'rr12', 'RR-12') → 'RR-<this_year>-0012'; 'rr-2025-7' → 'RR-2025-0007'.

    Anything else comes back stripped and upper-cased, for the lookup to refuse without quoting.
    """
    value = text.strip().upper()
    if match := _FULL.match(value):
        return case_ref(int(match[1]), int(match[2]))
    if match := _NUMBER.match(value):
        return case_ref(this_year, int(match[1]))
    return value
