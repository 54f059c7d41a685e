"""Files people edit (playbooks, contacts.toml, config.toml) that are not even TOML: name the file, exit 2.

Issue 7, failure 8: a playbook nested 5,000 levels deep, or not valid UTF-8, made
`playbooks check` die with "internal error (RecursionError)" / "(UnicodeDecodeError)", exit 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cli import invoke

DEEP = "title = " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_TABLE = "x = " + "{ a = " * 5000 + "1" + " }" * 5000 + "\n"
NOT_UTF8 = 'name = "missing-minor"\ntitle = "Vermiste minderj\xe4rige"\n'.encode("latin-1")

FILES = {
    "playbook": ("playbooks/missing-minor.toml", ["playbooks", "check"]),
    "contacts": ("contacts.toml", ["contacts", "check"]),
    "config": ("config.toml", ["status"]),
}


@pytest.mark.parametrize("which", sorted(FILES))
@pytest.mark.parametrize("content", [DEEP.encode(), DEEP_TABLE.encode(), NOT_UTF8], ids=["deep-array", "deep-table", "latin-1"])
def test_a_file_that_cannot_be_read_is_named_with_exit_2(
    runner: CliRunner, home: Path, which: str, content: bytes
) -> None:
    relative, command = FILES[which]
    path = home / relative
    path.write_bytes(content)
    result = invoke(runner, home, *command)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: {path}") or f"{path}" in result.stderr, result.stderr
    assert "internal error" not in result.stderr


def test_not_utf8_says_which_line(runner: CliRunner, home: Path) -> None:
    path = home / "playbooks" / "missing-minor.toml"
    path.write_bytes(NOT_UTF8)
    result = invoke(runner, home, "playbooks", "check")
    assert f"{path}:2: not valid UTF-8" in result.stderr  # playbooks check: file:line: message


def test_a_huge_file_is_refused_before_it_is_read(runner: CliRunner, home: Path) -> None:
    path = home / "playbooks" / "missing-minor.toml"
    path.write_bytes(b"# " + b"x" * (2 * 1024 * 1024) + b"\n")
    result = invoke(runner, home, "playbooks", "check")
    assert result.exit_code == 2 and "too large" in result.stderr
