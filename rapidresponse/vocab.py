"""Closed vocabularies (indicators, roles, outcomes, placements, playbooks …) and "did you mean".

A word typed into the wrong field may be a name — the minor's, a carer's — so an error about an
unknown word never repeats it: it says what kind of word was expected, suggests the closest known
words, and lists the choices. Matching ignores case and surrounding blanks; aliases (another
spelling, another language: `gevonden` for `found`) map onto a canonical word.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rapidresponse.errors import InputError

#: How alike a typed word must be to be suggested (difflib's ratio, 0–1). 0.75 keeps every
#: single typo (a letter wrong, missing, extra or swapped) of a word of four letters or more, and
#: drops a name that merely shares a syllable with a word ("…huis" is not "thuis"): a wrong
#: suggestion at 3 a.m. is worse than none, and the choices are listed anyway.
CUTOFF = 0.75
#: At most this many suggestions in one sentence.
MAX_SUGGESTIONS = 3
#: A list of choices longer than this is not spelled out in full.
MAX_LISTED = 12


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class Vocabulary:
    """The words a field accepts. `kind` names one word of it in a sentence: 'indicator'."""

    kind: str
    words: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: Where the list of choices comes from, for the sentence: "the contacts file has …".
    listed_as: str = "choose from"

    @classmethod
    def of(cls, kind: str, words: Iterable[str], aliases: Mapping[str, str] | None = None,
           listed_as: str = "choose from") -> Vocabulary:
        return cls(kind, tuple(words), dict(aliases or {}), listed_as)

    def _lookup(self) -> dict[str, str]:
        table = {_fold(word): word for word in self.words}
        for alias, word in self.aliases.items():
            table.setdefault(_fold(alias), word)
        return table

    def match(self, text: str) -> str | None:
        """The canonical word `text` stands for, or None."""
        return self._lookup().get(_fold(str(text)))

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and self.match(text) is not None

    def suggestions(self, text: str) -> list[str]:
        """The known words closest to `text`, best first (aliases lead to their word)."""
        table = self._lookup()
        close = difflib.get_close_matches(_fold(str(text)), list(table), n=MAX_SUGGESTIONS * 2,
                                          cutoff=CUTOFF)
        found: list[str] = []
        for key in close:
            word = table[key]
            if word not in found:
                found.append(word)
        return found[:MAX_SUGGESTIONS]

    def unknown(self, text: str, *, what: str | None = None) -> InputError:
        """The sentence for a word not in the vocabulary; `text` itself is never quoted."""
        return InputError(self.unknown_sentence(text, what=what))

    def unknown_sentence(self, text: str, *, what: str | None = None) -> str:
        sentence = f"{what} is not a known {self.kind}" if what else f"unknown {self.kind}"
        close = self.suggestions(text)
        if close:
            sentence += ": did you mean " + " or ".join(f"'{w}'" for w in close) + "?"
        if not self.words:
            return sentence + f" ({self.listed_as} none)"
        shown = list(self.words[:MAX_LISTED])
        more = f" … ({len(self.words) - MAX_LISTED} more)" if len(self.words) > MAX_LISTED else ""
        return sentence + f" ({self.listed_as} {', '.join(shown)}{more})"

    def pick(self, text: str, *, what: str | None = None) -> str:
        """The canonical word for `text`, or InputError with suggestions."""
        word = self.match(text)
        if word is None:
            raise self.unknown(text, what=what)
        return word

    def pick_all(self, texts: Iterable[str], *, what: str | None = None) -> tuple[str, ...]:
        """Each of `texts`, canonical, each once, in the vocabulary's order."""
        chosen = {self.pick(text, what=what) for text in texts}
        return tuple(word for word in self.words if word in chosen)
