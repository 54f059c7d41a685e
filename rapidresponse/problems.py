"""A problem found in a coordinator's file, and the line it is on.

Checks report every problem of every file at once, each as `file:line: step 'id': message`, so a
coordinator fixes them all in one sitting instead of one per run. `tomllib` keeps no positions,
so `TomlLines` finds the line of a table or a key by reading the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"

_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\-\"]+)\s*\]\]")
_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"]+)\s*\]")
_KEY = re.compile(r"^\s*\"?([A-Za-z0-9_\-]+)\"?\s*=")


@dataclass(frozen=True)
class Problem:
    level: str  # ERROR or WARNING
    file: str
    line: int | None
    where: str | None  # "step 'alert-child-focus'", "[on_resolved]", "role 'police'" …
    message: str

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [place] + ([self.where] if self.where else [])
        text = self.message if self.level == ERROR else f"warning: {self.message}"
        return ": ".join([*parts, text])

    def as_dict(self) -> dict[str, object]:
        return {"level": self.level, "file": self.file, "line": self.line, "where": self.where,
                "message": self.message}


class TomlLines:
    """Line numbers of tables (`[a.b]`, the n-th `[[steps]]`) and of keys inside them."""

    def __init__(self, text: str | None) -> None:
        self._tables: dict[tuple[str, int], int] = {}
        self._keys: dict[tuple[str, int], dict[str, int]] = {("", 0): {}}
        if text is None:
            return
        counts: dict[str, int] = {}
        current = ("", 0)
        for number, line in enumerate(text.splitlines(), start=1):
            array, table = _ARRAY_TABLE.match(line), _TABLE.match(line)
            if array:
                name = array.group(1).replace('"', "")
                counts[name] = counts.get(name, 0) + 1
                current = (name, counts[name])
            elif table:
                current = (table.group(1).replace('"', ""), 0)
            else:
                key = _KEY.match(line)
                if key:
                    self._keys.setdefault(current, {}).setdefault(key.group(1), number)
                continue
            self._tables.setdefault(current, number)
            self._keys.setdefault(current, {})

    def table(self, name: str = "", index: int = 0) -> int | None:
        """The header line of `[name]` (index 0) or of the index-th `[[name]]` (from 1)."""
        if name == "":
            return 1
        return self._tables.get((name, index))

    def key(self, key: str, name: str = "", index: int = 0) -> int | None:
        """The line of `key = …` in that table; the table's header if the key is not there."""
        found = self._keys.get((name, index), {}).get(key)
        return found if found is not None else self.table(name, index)


def has_errors(problems: list[Problem]) -> bool:
    return any(p.level == ERROR for p in problems)
