"""SMS segment counting: GSM-7, its extension table, and UCS-2 (3GPP TS 23.038)."""

from __future__ import annotations

import pytest

from rapidresponse.segments import GSM7, UCS2, measure


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("Hello world", GSM7, 11, 1),
        ("a" * 160, GSM7, 160, 1),
        ("a" * 161, GSM7, 161, 2),  # 153 + 8
        ("a" * 306, GSM7, 306, 2),
        ("a" * 307, GSM7, 307, 3),
        ("a" * 459, GSM7, 459, 3),
        ("a" * 460, GSM7, 460, 4),
        # é è ä ö ü are in the GSM default alphabet: one septet each
        ("é" * 160, GSM7, 160, 1),
        ("èäöüÄÖÜéÉàñÑ" * 10, GSM7, 120, 1),
        ("Coördinatie via het parket", GSM7, 26, 1),
        # the extension table costs two septets a character
        ("€" * 80, GSM7, 160, 1),
        ("€" * 81, GSM7, 162, 2),
        ("[x]{y}^~|\\", GSM7, 18, 1),
        # an escape pair is never split: 152 + € does not fit in 153, so € opens segment two
        ("a" * 152 + "€" + "a" * 152, GSM7, 306, 3),
        # ë, ï and curly quotes are not GSM-7: the whole text becomes UCS-2
        ("beëindigd", UCS2, 9, 1),
        ("naïef", UCS2, 5, 1),
        ("‘ACK’", UCS2, 5, 1),
        ("ë" + "a" * 69, UCS2, 70, 1),
        ("ë" + "a" * 70, UCS2, 71, 2),  # 67 + 4
        ("ë" + "a" * 133, UCS2, 134, 2),
        ("ë" + "a" * 134, UCS2, 135, 3),
        # a character outside the BMP is a surrogate pair: two units, never split
        ("a" * 68 + "🙂", UCS2, 70, 1),
        ("a" * 66 + "🙂" + "a" * 66, UCS2, 134, 3),
        ("", GSM7, 0, 0),
    ],
)
def test_segments(text: str, encoding: str, units: int, segments: int) -> None:
    length = measure(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)


def test_ucs2_names_the_characters_that_forced_it() -> None:
    length = measure("beëindigd, naïef, ‘ok’ ë")
    assert length.outside == ("ë", "ï", "‘", "’")
    assert measure("Ä é € ok").outside == ()


def test_a_real_dutch_alert_fits_one_segment() -> None:
    text = ("RR-2026-0001: vermiste minderjarige (15 j), verontrustende situatie, graad HIGH."
            " Bel +32 470 00 00 99. Antwoord ACK 1234")
    assert measure(text).describe() == f"GSM-7, {len(text)} septets, 1 segment"
