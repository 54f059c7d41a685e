"""An event's detail in words: how `log`, `show` and the daemon's lines print it, one rule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def detail_summary(detail: dict[str, Any], keys: Iterable[str] | None = None) -> str:
    """An event's detail as `key=value` words, the same in `log`, `show` and the daemon's lines.

    Without `keys`: every key but the message body and hashes (left to --json). With `keys`:
    only those, in that order (the daemon's output names what it may carry, nothing more)."""
    if keys is None:
        skip = {"body", "playbook_hash", "reasons", "note"}
        keys = sorted(k for k in detail if k not in skip)
    shown = [(k, detail[k]) for k in keys if detail.get(k) not in (None, [], "")]
    return ", ".join(f"{k}={_readable(v)}" for k, v in shown)


def _readable(value: Any) -> str:
    """A value as a person reads it, not as Python prints it: no quotes, no braces; a list of
    names reads as '[A, B]', of planned steps as '[id role due; id role due]'."""
    if isinstance(value, dict):
        first = sorted(value.items(), key=lambda kv: kv[0] not in ("id", "step", "role"))
        return " ".join(_readable(v) for _, v in first if v not in (None, [], ""))
    if isinstance(value, list):  # names hold spaces: a comma tells where one ends
        separator = "; " if any(isinstance(v, dict) for v in value) else ", "
        return "[" + separator.join(_readable(v) for v in value) + "]"
    return str(value)
