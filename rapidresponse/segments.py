"""How many SMS segments a text costs, and in which encoding (3GPP TS 23.038).

A text is sent in GSM-7 when every character is in the GSM default alphabet or its extension
table (an extension character costs two septets: an escape and the character); one character
outside both turns the *whole* text into UCS-2. A single segment holds 160 septets or 70 UTF-16
units; a concatenated message loses room to its header: 153 septets or 67 units a segment, and
neither an escape pair nor a surrogate pair is split across two segments.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The GSM 03.38 default alphabet (the escape 0x1B itself is not a character one can type).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each costs an escape septet plus its own.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7 = "GSM-7"
UCS2 = "UCS-2"
SINGLE = {GSM7: 160, UCS2: 70}
CONCATENATED = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True)
class Length:
    """What a text costs: encoding, units (septets or UTF-16 units), segments, and why UCS-2."""

    encoding: str
    units: int
    segments: int
    outside: tuple[str, ...] = ()  # the characters that forced UCS-2, each once, in order

    def describe(self) -> str:
        plural = "" if self.segments == 1 else "s"
        return f"{self.encoding}, {self.units} {'septets' if self.encoding == GSM7 else 'units'}," \
               f" {self.segments} segment{plural}"


def char_units(char: str, encoding: str) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) one character takes."""
    if encoding == GSM7:
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def outside_gsm7(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for char in text:
        if char not in GSM7_BASIC and char not in GSM7_EXTENSION:
            seen.setdefault(char)
    return tuple(seen)


def measure(text: str) -> Length:
    outside = outside_gsm7(text)
    encoding = UCS2 if outside else GSM7
    sizes = [char_units(char, encoding) for char in text]
    units = sum(sizes)
    if units <= SINGLE[encoding]:
        return Length(encoding, units, 1 if units else 0, outside)
    room = CONCATENATED[encoding]
    segments, used = 1, 0
    for size in sizes:  # greedy, as a phone does: a pair that doesn't fit starts the next segment
        if used + size > room:
            segments, used = segments + 1, 0
        used += size
    return Length(encoding, units, segments, outside)
