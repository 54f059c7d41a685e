"""Shared pieces of the commands: the environment object, time display, JSON, rich output."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rapidresponse.errors import InputError

if TYPE_CHECKING:  # `--help` imports this module: everything else is loaded where it is used
    from zoneinfo import ZoneInfo

    from rapidresponse.app import App
    from rapidresponse.vocab import Vocabulary


class Env:
    """Built once per command; the App and its store are opened only when a command asks."""

    def __init__(self, home: str | None, operator: str | None) -> None:
        from rapidresponse.config import resolve_home

        self.home = resolve_home(home)
        self._operator = operator
        self._app: App | None = None

    @property
    def app(self) -> App:
        """Loaded on first use: `App` brings the engine, contacts and playbooks, which commands
        that only read a case or list cases do without."""
        if self._app is None:
            from rapidresponse.app import App
            from rapidresponse.config import resolve_operator

            app = App(self.home, resolve_operator(self._operator))
            app.settings  # noqa: B018 (not useless: config.toml is checked before any command writes)
            self._app = app
        return self._app

    def tz(self) -> ZoneInfo:
        """The zone times are shown in: the contacts file's, read without validating it."""
        from rapidresponse.config import CONTACTS_NAME
        from rapidresponse.contacts import display_timezone

        return display_timezone(self.home / CONTACTS_NAME)

    def close(self) -> None:
        if self._app is not None:
            for warning in self._app.closing_warnings():
                click.echo(f"Warning: {warning}", err=True)
            self._app.close()


pass_env = click.make_pass_decorator(Env)


class Utf8Text(click.ParamType):
    """Free text that SQLite, the audit hash and an SMS can carry.

    Bytes that are not UTF-8 reach Python as lone surrogates and would fail only when stored;
    they are refused while parsing, naming the option but never quoting the value (it may be
    the minor's name).
    """

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{_label(param, ctx)} is not valid UTF-8 text:"
                             " check the terminal's encoding and type it again") from None
        return text


def _label(param: click.Parameter | None, ctx: click.Context | None) -> str:
    if param is None or param.name is None:
        return "an argument"
    if ctx is not None and ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT:
        envvar = param.envvar
        return envvar if isinstance(envvar, str) else "an environment variable"
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return f"the {param.human_readable_name} argument"


#: The type of every free-text option and argument.
TEXT = Utf8Text()


class VocabChoice(Utf8Text):
    """click.Choice, but case-insensitive, with "did you mean" and never echoing the value."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.name = vocabulary.kind

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.vocabulary.words) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        return self.vocabulary.pick(text, what=f"the value of {_label(param, ctx)}")


class CaseRef(Utf8Text):
    """A case reference, or its number: `ack 12` means RR-<this year>-0012.

    Completes to the open cases' references in the shell.
    """

    name = "case"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from rapidresponse.refs import expand_ref

        text = super().convert(value, param, ctx)
        env = ctx.find_object(Env) if ctx is not None else None
        if env is not None:
            tz = env.tz()
        else:
            from zoneinfo import ZoneInfo

            from rapidresponse.contacts import DEFAULT_TIMEZONE

            tz = ZoneInfo(DEFAULT_TIMEZONE)
        return expand_ref(text, datetime.now(tz).year)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        from rapidresponse.config import DB_NAME
        from rapidresponse.review import open_refs
        from rapidresponse.store import Store

        path = _completion_home(ctx) / DB_NAME
        if not path.exists():
            return []
        store = Store(path, migrate=False)
        try:
            refs = open_refs(store)
        finally:
            store.close()
        wanted = incomplete.upper()
        return [CompletionItem(ref) for ref in refs if ref.startswith(wanted)]


#: The type of every CASE argument.
CASE = CaseRef()


class OutputFile(Utf8Text):
    """A file a command will write: a folder that is missing or closed to us is bad input.

    Checked while parsing, so nothing is computed or written for a page that cannot be saved;
    the message names the option, never the path (it may carry a name).
    """

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        import os

        path = Path(super().convert(value, param, ctx))
        label = _label(param, ctx)
        if path.is_dir():
            raise InputError(f"{label} is a folder: give the file's name")
        folder = path.absolute().parent
        if not folder.is_dir():
            raise InputError(f"the folder of {label} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise InputError(f"{label} cannot be written there: choose a folder you may write to")
        return path


#: The type of every file a command writes.
OUTPUT_FILE = OutputFile()


def _completion_home(ctx: click.Context) -> Path:
    """The home while the shell asks for completions: the group's callback has not run then."""
    from rapidresponse.config import resolve_home

    return resolve_home(ctx.find_root().params.get("home"))


def complete_words(words: Callable[[click.Context], Iterable[str]]) -> Callable[..., list[Any]]:
    """A shell_complete callback offering `words(ctx)` that start with what was typed."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        try:
            known = list(words(ctx))
        except Exception:  # a broken home must not break the shell
            return []
        return [CompletionItem(w) for w in known if w.lower().startswith(incomplete.lower())]

    return complete


def _role_words(ctx: click.Context) -> Iterable[str]:
    from rapidresponse import tomlfile
    from rapidresponse.config import CONTACTS_NAME

    roles = tomlfile.load(_completion_home(ctx) / CONTACTS_NAME).get("roles", {})
    return sorted(roles) if isinstance(roles, dict) else []


def _indicator_words(ctx: click.Context) -> Iterable[str]:
    from rapidresponse.assessment import INDICATORS

    return INDICATORS


def _outcome_words(ctx: click.Context) -> Iterable[str]:
    from rapidresponse.engine import OUTCOME_WORDS

    return OUTCOME_WORDS.words


complete_roles = complete_words(_role_words)
complete_indicators = complete_words(_indicator_words)
complete_outcomes = complete_words(_outcome_words)


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def when(value: str | None, tz: ZoneInfo, *, seconds: bool = True) -> str:
    """A stored UTC time as a person reads it: local, with the year when it is not this year
    (a date 400 days ago must not pass for last month)."""
    if not value:
        return "—"
    from rapidresponse.timeutil import from_iso

    moment = from_iso(value).astimezone(tz)
    year = "" if moment.year == datetime.now(tz).year else " %Y"
    return moment.strftime(f"%a %d %b{year} %H:%M{':%S' if seconds else ''}")


_STORED_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def local_detail(detail: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """An event's detail with its stored UTC times shown local (nested ones too), like every
    other time on screen."""

    def local(value: Any) -> Any:
        if isinstance(value, str) and _STORED_TIME.match(value):
            return when(value, tz)
        if isinstance(value, list):
            return [local(v) for v in value]
        if isinstance(value, dict):
            return {k: local(v) for k, v in value.items()}
        return value

    return {k: local(v) for k, v in detail.items()}


def zone_note(tz: ZoneInfo) -> str:
    """Said once per screen, so every time on it can be read without a zone of its own."""
    return f"Times are {tz.key} local time."


def terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns


def fit(text: str, width: int) -> str:
    """Text cut to `width` characters, with … when something was cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def wrap_words(text: str, width: int, indent: str = "") -> list[str]:
    """`text` wrapped between words only, never inside one (a reference, a number, a glued time
    stays whole even where it runs over), continuations indented by `indent`; GLUE shown as a
    space. The one wrapping rule of every screen."""
    import textwrap

    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False,
                          break_on_hyphens=False)
    return [line.replace(GLUE, " ") for line in lines]


def echo_wrapped(lines: list[str]) -> None:
    """Print plain lines wrapped at the terminal's width between words, never inside one: a
    reference or a phone number is never split. Continuations are indented under their line."""
    width = terminal_width()
    out = []
    for line in lines:
        for part in line.split("\n"):
            if len(click.unstyle(part)) <= width:
                out.append(part)
                continue
            part = click.unstyle(part)  # a line too long to fit loses its colour, not its words
            indent = " " * (len(part) - len(part.lstrip(" ")) + 4)
            out += wrap_words(part, width, indent)
    click.echo("\n".join(out).replace(GLUE, " "))  # the lines that fitted keep their glue till here


def hanging(head: str, text: str, width: int | None = None) -> list[str]:
    """One event as a line: `head`, then `text` wrapped under itself at the terminal's width.

    Only the text wraps, and only between words: an identifier (a step id, a role, a time)
    is never broken, even when it is longer than the room left (the line then runs over).
    """
    room = max(24, (width or terminal_width()) - len(head))
    lines = wrap_words(text, room) or [""]
    return [head + lines[0], *(" " * len(head) + line for line in lines[1:])]


#: Joins the words of what a wrapped line must never split (a time, "sms 3"); printed as a space.
GLUE = "\xa0"


def glued(text: str) -> str:
    """`text` kept on one line by the wrapping helpers here (they print GLUE as a space)."""
    return text.replace(" ", GLUE)


def echo_hanging(head: str, text: str) -> None:
    """Print `hanging(head, text)`: a labelled line whose text wraps under itself."""
    click.echo("\n".join(line.rstrip() for line in hanging(head, text)))


def table_lines(header: list[str], rows: list[list[str]], *, right: Iterable[int] = (),
                width: int | None = None) -> list[str]:
    """A plain table that fits the terminal and cuts nothing: columns aligned (those in `right`
    to the right: numbers), the last column wrapping between words under itself.

    When the other columns leave the last one too little room, every row becomes a block
    instead: its first cell, then one `header: value` line per other cell. Cells may carry
    click's colours; widths count only what shows.
    """
    width = width or terminal_width()
    right = set(right)
    last = len(header) - 1

    def shown(cell: str) -> int:
        return len(click.unstyle(cell))

    def pad(cell: str, column: int, room: int) -> str:
        gap = " " * (room - shown(cell))
        return gap + cell if column in right else cell + gap

    widths = [max(shown(row[i]) for row in [header, *rows]) for i in range(len(header))]
    start = sum(widths[:last]) + 2 * last
    fits = start + widths[last] <= width
    if fits or (last not in right and width - start >= _MIN_FREE_COLUMN):
        lines = []
        for row in [header, *rows]:
            head = "".join(pad(cell, i, widths[i]) + "  " for i, cell in enumerate(row[:last]))
            if last in right or shown(row[last]) <= width - start:
                lines.append((head + pad(row[last], last, widths[last])).rstrip())
                continue
            text = wrap_words(click.unstyle(row[last]), width - start)
            lines += [(head if n == 0 else " " * start) + part for n, part in enumerate(text)]
        return [line.replace(GLUE, " ") for line in lines]
    label = max(shown(cell) for cell in header[1:]) + 1
    lines = []
    for row in rows:
        lines.append(row[0])
        for name, cell in zip(header[1:], row[1:], strict=True):
            head = f"  {name + ':':<{label}} "
            fits = len(head) + shown(cell) <= width
            lines += [head + cell.replace(GLUE, " ")] if fits else hanging(head, click.unstyle(cell), width)
    return [line.rstrip() for line in lines]


#: The least room the last, free-text column of a table gets before the table goes vertical.
_MIN_FREE_COLUMN = 12


def aligned(cells: list[str], widths: list[int]) -> str:
    """One row of a plain table: each cell padded to its column's width, the last one free."""
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  ".join(padded + cells[len(widths):]).rstrip()


def emit_json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)


STATE_STYLE = {
    "pending": "cyan", "active": "yellow", "acknowledged": "green", "done": "green",
    "exhausted": "bold red", "cancelled": "dim", "skipped": "magenta", "sent": "green", "delivered": "green",
    "queued": "cyan", "sending": "yellow", "failed": "bold red", "undelivered": "bold red",
    "open": "yellow", "resolved": "green", "HIGH": "bold red", "MEDIUM": "yellow", "LOW": "green",
}


def paint(value: str, text: str | None = None) -> str:
    """`styled` for plain output (click.echo drops the colour when the output is not a terminal);
    `text`, when given, is what is shown in the colour of `value` (a call's words for its state)."""
    style = STATE_STYLE.get(value, "")
    colour = next((w for w in style.split() if w not in ("bold", "dim")), None)
    if not style:
        return text or value
    return click.style(text or value, fg=colour, bold="bold" in style, dim="dim" in style)


def confirmed(question: str) -> bool:
    """Ask at a terminal, as `resolve` asks its questions only there. Without one, refuse: an
    erasure needs an explicit --yes, and a script that forgot it must fail (exit 2), not do
    nothing and exit 0 (a nightly `purge --due` would silently keep data past retention)."""
    import sys

    if not sys.stdin.isatty():
        command = click.get_current_context().command_path.removeprefix("rapidresponse ")
        raise InputError(f"{command} needs --yes when not run at a terminal; nothing was done")
    return click.confirm(question, err=True)


def echo_findings(lines: Iterable[str], failed: bool) -> None:
    """A check's findings and its summary in one stream, in their order: stderr when the check
    failed (an error among them), else stdout. Split by level, they would interleave out of order."""
    for line in lines:
        click.echo(line, err=failed)


def styled(value: str, text: str | None = None) -> str:
    """`value`'s colour (rich markup) on `text`, which says it (by default `value` itself)."""
    style = STATE_STYLE.get(value)
    shown = value if text is None else text
    return f"[{style}]{shown}[/]" if style else shown


def case_contact_options(fn: Any) -> Any:
    """--carer-phone, --consulent-phone, --guardian-phone: the people around the minor."""
    from rapidresponse.casecontacts import KINDS

    for kind in reversed(tuple(KINDS)):
        fn = click.option(f"--{kind}-phone", f"{kind}_phone", type=TEXT, metavar="NUMBER",
                          help=f"Phone of the minor's {kind} (kept private; texts address"
                               f" role case:{kind}).")(fn)
    return fn


def case_contact_numbers(values: dict[str, Any]) -> dict[str, str]:
    """The E.164 numbers given with case_contact_options, by kind."""
    from rapidresponse.casecontacts import KINDS, parse_numbers

    return parse_numbers({kind: values.pop(f"{kind}_phone", None) for kind in KINDS})

