"""Errors never repeat free text: an unknown word gets close matches from the vocabulary instead.

An officer under stress types the minor's name into the wrong field ("--indicator LenaStation");
the error must help without quoting it back (issue 7, failure 7).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cli import counts, invoke, register_args, register_json

from conftest import assert_no_secrets
from rapidresponse.errors import InputError
from rapidresponse.vocab import Vocabulary

OUTCOMES = Vocabulary.of("outcome", ("found", "returned", "withdrawn", "other"),
                         aliases={"gevonden": "found"})


def test_matching_ignores_case_and_blanks_and_follows_aliases() -> None:
    assert OUTCOMES.pick("  FOUND ") == "found"
    assert OUTCOMES.pick("Gevonden") == "found"
    assert "Returned" in OUTCOMES and "lost" not in OUTCOMES
    assert OUTCOMES.pick_all(["other", "FOUND", "found"]) == ("found", "other")


def test_an_unknown_word_gets_close_matches_and_is_never_quoted() -> None:
    with pytest.raises(InputError) as info:
        OUTCOMES.pick("fuond")
    assert str(info.value) == ("unknown outcome: did you mean 'found'?"
                               " (choose from found, returned, withdrawn, other)")
    assert "fuond" not in str(info.value)
    with pytest.raises(InputError, match="^the outcome is not a known outcome \\(choose") as info:
        OUTCOMES.pick("Lena", what="the outcome")
    assert "Lena" not in str(info.value)


def test_an_alias_suggests_its_word() -> None:
    assert OUTCOMES.suggestions("gevnden") == ["found"]


def test_only_near_misses_are_suggested() -> None:
    """A typo, a letter too many or too few, a Dutch word mistyped: suggested. A name that only
    shares a syllable with a word (a facility, a station) is not a near-miss: suggesting 'home'
    for a care facility would invite the wrong placement."""
    from rapidresponse.assessment import PLACEMENT_WORDS

    for typed, word in [("hoem", "home"), ("Fostre", "foster"), ("instituion", "institution"),
                        ("thius", "home"), ("pleegezin", "foster"), ("voorzienig", "institution")]:
        assert PLACEMENT_WORDS.suggestions(typed) == [word], typed
    for name in ["Lenahuis", "LenaStation", "Thuisland", "Home Lena"]:
        assert PLACEMENT_WORDS.suggestions(name) == [], name


@pytest.mark.parametrize(
    ("args", "typed", "expected"),
    [
        (["--indicator", "LenaStation"], "Lena", "unknown indicator (choose from"),
        (["--indicator", "Hotels"], "Hotels", "unknown indicator: did you mean 'hotel'?"),
        (["--placement", "Lena"], "Lena", "the value of --placement is not a known placement"),
        (["--placement", "fostr"], "fostr", "did you mean 'foster'"),
        # a facility's name shares 'huis' with 'thuis': not a near-miss, nothing suggested
        (["--placement", "Lenahuis"], "Lenahuis", "not a known placement (choose from"),
        (["--playbook", "Lena"], "Lena", "the playbook is not a known playbook"),
        (["--playbook", "missing-minr"], "minr", "did you mean 'missing-minor'?"),
    ],
)
def test_register_never_quotes_a_mistyped_word(
    runner: CliRunner, home: Path, args: list[str], typed: str, expected: str
) -> None:
    before = counts(home)
    result = invoke(runner, home, *register_args(), *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert typed not in result.stderr and typed.lower() not in result.stderr
    assert_no_secrets(result.output)
    assert counts(home) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ack", "{ref}", "--role", "Lena"], "unknown role (the contacts file has"),
        (["ack", "{ref}", "--role", "youth_prosecuter"], "did you mean 'youth_prosecutor'?"),
        (["resolve", "{ref}", "--outcome", "lena found at station"], "unknown outcome (choose from found"),
        (["resolve", "{ref}", "--outcome", "fuond"], "did you mean 'found'?"),
    ],
)
def test_ack_and_resolve_never_quote_a_mistyped_word(
    runner: CliRunner, home: Path, args: list[str], expected: str
) -> None:
    ref = register_json(runner, home)["case"]
    before = counts(home)
    result = invoke(runner, home, *[a.replace("{ref}", ref) for a in args])
    assert result.exit_code == 2 and expected in result.stderr, result.stderr
    assert "ena" not in result.stderr and "prosecuter" not in result.stderr and "fuond" not in result.stderr
    assert counts(home) == before


def test_known_words_are_accepted_in_any_case(runner: CliRunner, home: Path) -> None:
    ref = register_json(runner, home, "--indicator", "Hotel", "--placement", "Foster")["case"]
    acked = invoke(runner, home, "ack", ref, "--role", "Youth_Prosecutor")
    assert acked.exit_code == 0 and "youth_prosecutor acknowledged" in acked.stdout
    resolved = invoke(runner, home, "resolve", ref, "--outcome", "FOUND")
    assert resolved.exit_code == 0, resolved.stderr
