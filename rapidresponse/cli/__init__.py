"""The command line: a thin face over the library. Parse, call, render."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from rapidresponse import __version__
from rapidresponse.cli.common import TEXT
from rapidresponse.errors import InputError, RapidResponseError

#: Each command and the module that defines it, imported only when the command runs, so that
#: `run --once` from cron does not load the officer's and coordinator's commands.
COMMAND_MODULES = {
    "register": "cases", "reassess": "cases", "decide": "cases",
    "ack": "cases", "resolve": "cases", "note": "cases",
    "cases": "cases", "show": "cases", "log": "cases", "report": "review", "purge": "cases",
    "indicators": "cases", "contacts": "coordinator", "playbooks": "coordinator", "init": "ops",
    "run": "ops", "status": "ops", "webhook": "webhook", "timeline": "review", "export": "review",
    "backup": "ops", "demo": "demo",
    "profiles": "profiles", "followup": "followup",
}

#: Each command's short help, as its docstring's first sentence says it (a test keeps them equal),
#: so that `rapidresponse --help` lists the commands without importing a single command module.
SHORT_HELP = {
    "demo": "Watch a fictitious case run on the real daemon: texts, escalation, stand-down.",
    "backup": "Copy the database to FILE while the daemon runs, and verify the copy (0600).",
    "ack": "Record that ROLE acknowledged the alerts of CASE: its escalation stops.",
    "cases": "List open cases, most urgent first (with --all, every case).",
    "contacts": "Check, list and test the contacts file.",
    "decide": "Decide on societal necessity for CASE; the response follows from this moment.",
    "indicators": "List the indicators --indicator accepts: each with its kind and what it means.",
    "init": "Create the home folder, database, contacts and playbooks; keep whatever exists.",
    "log": "List the audit log (of one CASE), print its head, or verify that it is intact.",
    "note": "Add a note to CASE (kept with the case; the log records that a note was made).",
    "playbooks": "Check and list playbooks.",
    "purge": "Erase the minor's data from a resolved CASE (or from all resolved long enough ago).",
    "reassess": "Re-assess CASE with what is known now; the response follows, and the log says why.",
    "register": "Register a missing minor, assess the situation and send the first alerts.",
    "report": "Figures for supervisors from the log, each by one written rule (--policy: by month).",
    "followup": "Record the follow-ups of CASE after the return, or an answer that changed.",
    "profiles": "Profiles of minors at risk, filled in before any episode (Philomena Protocol).",
    "resolve": "Close CASE: cancel pending steps, stand everyone down, start the after-return steps.",
    "run": "Run the daemon: fire steps on time, escalate, retry, until SIGINT/SIGTERM.",
    "show": "Show CASE: details, assessment, and the live step timeline.",
    "export": "Write CASE's review page: its timeline chart and every event, nothing identifying the minor.",
    "timeline": "The story of CASE in order: judgements, texts and their delivery, acknowledgements"
                " and how fast, escalations, decisions, resolution, follow-ups.",
    "status": "Is the daemon alive, and does anything need a human? Exit 1 when something does.",
    "webhook": "Serve POST /twilio/status and /twilio/inbound (signed by Twilio) until Ctrl-C.",
}


class RapidResponseGroup(click.Group):
    """Every error becomes one sentence on stderr; never a traceback. Commands load lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        commands = importlib.import_module(f"rapidresponse.cli.{module}").COMMANDS
        return next(c for c in commands if c.name == cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from SHORT_HELP: loading every command module to read its docstring
        would make `--help` as slow as the slowest command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            text = SHORT_HELP.get(name)
            if text is None:  # a command without a static line still shows: load it
                command = self.get_command(ctx, name)
                text = command.get_short_help_str(limit) if command else ""
            if len(text) > limit:
                text = text[: limit - 3].rsplit(" ", 1)[0] + "..."
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """An unknown command gets a "did you mean", never an echo of what was typed."""
        name = args[0]
        if name in COMMAND_MODULES or name.startswith("-") or ctx.resilient_parsing:
            return super().resolve_command(ctx, args)
        from rapidresponse.vocab import Vocabulary

        close = Vocabulary.of("command", self.list_commands(ctx)).suggestions(name)
        hint = f"did you mean '{close[0]}'?" if close else "see 'rapidresponse --help'."
        raise InputError(f"no such command; {hint}")

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            result = super().main(
                args, "rapidresponse", complete_var, standalone_mode=False, **extra
            )
        except click.exceptions.Abort:
            click.echo("Error: interrupted; nothing more was done.", err=True)
            sys.exit(1)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except RapidResponseError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted.", err=True)
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("RAPIDRESPONSE_DEBUG"):
                raise
            failure = _database_failure(exc)
            if failure is not None:  # busy, full, read-only: a sentence the operator can act on
                click.echo(f"Error: {failure}", err=True)
                sys.exit(failure.exit_code)
            # The exception text may quote stored values: only its type leaves the process.
            # Whether the command had saved anything by then is not known here: say where to look.
            click.echo(
                f"Error: internal error ({type(exc).__name__}). What was saved before it is in"
                " 'rapidresponse show'/'log'; set RAPIDRESPONSE_DEBUG=1 for the traceback.",
                err=True,
            )
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _database_failure(exc: Exception) -> RapidResponseError | None:
    """A busy, full or read-only database or home folder, said as a sentence."""
    if not isinstance(exc, OSError) and type(exc).__module__ != "sqlite3":
        return None
    from rapidresponse.store import explain

    return explain(exc)


@click.group(cls=RapidResponseGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rapidresponse")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="RAPIDRESPONSE_HOME",
    help="Home folder (database, contacts, playbooks). Default: the user data dir.",
)
@click.option(
    "--operator",
    type=TEXT,
    envvar="RAPIDRESPONSE_OPERATOR",
    help="Who is acting; recorded on every event. Default: the OS user.",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None, operator: str | None) -> None:
    """Coordinate the first hours after a minor at risk of exploitation goes missing."""
    from rapidresponse.cli.common import Env

    ctx.obj = Env(home, operator)
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    cli()
