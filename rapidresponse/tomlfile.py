"""Reading the TOML files people edit (contacts, playbooks, config): every fault names the file.

A file saved in the wrong encoding, or one nested thousands of levels deep, is bad input like a
typo: one sentence naming the file, exit 2 — never "internal error (UnicodeDecodeError)".
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from rapidresponse.errors import InputError

#: Far above any real contacts file or playbook; a bigger file is a mistake (a log, a dump).
MAX_BYTES = 1024 * 1024


def read_text(path: Path) -> str:
    """The file as text; InputError naming it when it is not UTF-8 or absurdly large."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(f"{path}: {size // 1024} KiB is too large for this file"
                             f" (at most {MAX_BYTES // 1024} KiB)")
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (check who owns it)") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}, line {line}: not valid UTF-8 text (save the file as UTF-8)") from None


def parse(text: str, where: str) -> dict[str, Any]:
    """TOML text → tables; InputError naming `where` for any fault, including absurd nesting."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML ({exc})") from None
    except RecursionError:
        raise InputError(f"{where}: not valid here: values are nested too deeply") from None


def load(path: Path) -> dict[str, Any]:
    return parse(read_text(path), str(path))
