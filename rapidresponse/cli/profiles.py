"""Pre-registered profiles: filled in by the carer before any episode, used by `register --profile`."""

from __future__ import annotations

from typing import Any

import click

from rapidresponse.assessment import PLACEMENT_WORDS
from rapidresponse.cli.common import (
    TEXT,
    Env,
    VocabChoice,
    case_contact_numbers,
    case_contact_options,
    confirmed,
    console,
    emit_json,
    json_option,
    pass_env,
    when,
)
from rapidresponse.timeutil import parse_date

_TEXT_HELP = {
    "description": "What she looks like, what she wears.",
    "associates": "Friends and associates.",
    "places": "Places she frequents.",
    "phone": "Her own phone number(s).",
    "social": "Her social-media accounts.",
    "medical": "Medical needs.",
}


def text_options(fn: Any) -> Any:
    for name in reversed(tuple(_TEXT_HELP)):
        fn = click.option(f"--{name}", f"text_{name}", type=TEXT,
                          help=f"{_TEXT_HELP[name]} (kept private)")(fn)
    return fn


def _texts(values: dict[str, Any]) -> dict[str, str | None]:
    return {name: values.pop(f"text_{name}", None) for name in _TEXT_HELP}


@click.group()
def profiles() -> None:
    """Profiles of minors at risk, filled in before any episode (Philomena Protocol)."""


@profiles.command("add")
@click.option("--alias", type=TEXT, required=True, help="The name the team uses for her.")
@click.option("--birth-date", type=TEXT, required=True, help="YYYY-MM-DD.")
@click.option("--name", "full_name", type=TEXT, help="Full name.")
@click.option("--placement", type=VocabChoice(PLACEMENT_WORDS), default="home", show_default=True)
@text_options
@click.option("--indicator", "indicators", type=TEXT, multiple=True, metavar="NAME",
              help="An indicator every episode carries; repeat. See 'rapidresponse indicators'.")
@case_contact_options
@pass_env
def add_cmd(env: Env, alias: str, birth_date: str, full_name: str | None, placement: str,
            indicators: tuple[str, ...], **values: Any) -> None:
    """Create a profile. Everything in it stays in the database; the log names it P-0001."""
    from rapidresponse.profiles import add

    numbers = case_contact_numbers(values)
    key = add(env.app.context(), alias=alias, birth_date=parse_date(birth_date, "--birth-date"),
              full_name=full_name, placement=placement, texts=_texts(values),
              indicators=indicators, contacts=numbers)
    click.echo(f"Profile {key} created. When she goes missing: rapidresponse register --profile"
               " ALIAS --missing-since WHEN --last-seen TEXT")


@profiles.command("show")
@click.argument("alias", type=TEXT)
@json_option
@pass_env
def show_cmd(env: Env, alias: str, as_json: bool) -> None:
    """Show the profile of ALIAS (the log records that you looked)."""
    from rich.markup import escape

    from rapidresponse.profiles import TEXT_FIELDS, show

    view = show(env.app.context(), alias)
    if as_json:
        emit_json(view)
        return
    out = console()
    name = f" ({escape(view['name'])})" if view["name"] else ""
    out.print(f"[bold]{escape(view['alias'])}[/]{name}  profile {view['profile']}")
    out.print(f"Born {view['birth_date']}, placement {view['placement']}")
    for field in TEXT_FIELDS:
        if view[field]:
            out.print(f"{field.capitalize()}: {escape(view[field])}")
    out.print(f"Indicators: {', '.join(view['indicators']) or '—'}")
    for kind, number in view["case_contacts"].items():
        out.print(f"{kind.capitalize()}: {number or '—'}")
    out.print(f"Episodes: {', '.join(view['episodes']) or 'none'}")
    out.print(f"Changed {when(view['changed_at'], env.tz())}; last used {when(view['used_at'], env.tz())}")


@profiles.command("list")
@json_option
@pass_env
def list_cmd(env: Env, as_json: bool) -> None:
    """List the profiles (the log records that the list was seen)."""
    from rich.markup import escape
    from rich.table import Table

    from rapidresponse.profiles import list_all

    rows = list_all(env.app.context())
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console().print("No profiles.")
        return
    tz = env.tz()
    table = Table()
    for column in ("profile", "alias", "born", "placement", "episodes", "changed", "last used"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["key"], escape(r["alias"]), r["birth_date"], r["placement"],
                      str(r["episodes"]), when(r["changed_at"], tz), when(r["used_at"], tz))
    console().print(table)


@profiles.command("edit")
@click.argument("alias", type=TEXT)
@click.option("--new-alias", type=TEXT, help="Rename the profile.")
@click.option("--birth-date", type=TEXT, help="YYYY-MM-DD.")
@click.option("--name", "full_name", type=TEXT, help="Full name ('' clears it).")
@click.option("--placement", type=VocabChoice(PLACEMENT_WORDS))
@text_options
@click.option("--indicator", "indicators", type=TEXT, multiple=True, metavar="NAME",
              help="Add an indicator; repeat.")
@click.option("--drop-indicator", "dropped", type=TEXT, multiple=True, metavar="NAME",
              help="Remove an indicator; repeat.")
@case_contact_options
@pass_env
def edit_cmd(env: Env, alias: str, new_alias: str | None, birth_date: str | None,
             full_name: str | None, placement: str | None, indicators: tuple[str, ...],
             dropped: tuple[str, ...], **values: Any) -> None:
    """Change the profile of ALIAS: only what you give changes ('' clears a text)."""
    from rapidresponse.profiles import edit

    numbers = case_contact_numbers(values)
    changed = edit(
        env.app.context(), alias, new_alias=new_alias,
        birth_date=parse_date(birth_date, "--birth-date") if birth_date is not None else None,
        full_name=full_name, placement=placement, texts=_texts(values),
        add_indicators=indicators, drop_indicators=dropped, contacts=numbers,
    )
    click.echo(f"Profile changed: {', '.join(changed)}.")


@profiles.command("remove")
@click.argument("alias", type=TEXT)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_env
def remove_cmd(env: Env, alias: str, yes: bool) -> None:
    """Delete the profile of ALIAS and its case contacts; its episodes keep their own data."""
    from rapidresponse.profiles import remove

    if not yes and not confirmed("Delete this profile? This cannot be undone"):
        click.echo("Nothing removed.")
        return
    key = remove(env.app.context(), alias)
    click.echo(f"Profile {key} removed.")


COMMANDS = [profiles]
