"""Shared pieces of the commands: the environment object, time display, JSON, rich output."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import click

from rapidresponse.app import App
from rapidresponse.config import resolve_home, resolve_operator
from rapidresponse.errors import InputError
from rapidresponse.timeutil import from_iso
from rapidresponse.vocab import Vocabulary

DEFAULT_TZ = ZoneInfo("Europe/Brussels")


class Env:
    """Built once per command; the App and its store are opened only when a command asks."""

    def __init__(self, home: str | None, operator: str | None) -> None:
        self.home = resolve_home(home)
        self._operator = operator
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            app = App(self.home, resolve_operator(self._operator))
            app.settings  # noqa: B018 (not useless: config.toml is checked before any command writes)
            self._app = app
        return self._app

    def tz(self) -> ZoneInfo:
        try:
            return self.app.contacts.timezone
        except Exception:
            return DEFAULT_TZ

    def close(self) -> None:
        if self._app is not None:
            for warning in self._app.warnings:
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


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def when(value: str | None, tz: ZoneInfo) -> str:
    if not value:
        return "—"
    return from_iso(value).astimezone(tz).strftime("%a %d %b %H:%M:%S")


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(fn)


STATE_STYLE = {
    "pending": "cyan", "active": "yellow", "acknowledged": "green", "done": "green",
    "exhausted": "bold red", "cancelled": "dim", "sent": "green", "delivered": "green",
    "queued": "cyan", "sending": "yellow", "failed": "bold red", "undelivered": "bold red",
    "open": "yellow", "resolved": "green", "HIGH": "bold red", "MEDIUM": "yellow", "LOW": "green",
}


def styled(value: str) -> str:
    style = STATE_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value
