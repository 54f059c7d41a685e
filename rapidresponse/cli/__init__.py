"""The command line: a thin face over the library. Parse, call, render."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from rapidresponse import __version__
from rapidresponse.cli.common import TEXT
from rapidresponse.errors import RapidResponseError

#: Each command and the module that defines it, imported only when the command runs, so that
#: `run --once` from cron does not load the officer's and coordinator's commands.
COMMAND_MODULES = {
    "register": "cases", "reassess": "cases", "ack": "cases", "resolve": "cases", "note": "cases",
    "cases": "cases", "show": "cases", "log": "cases", "report": "cases", "purge": "cases",
    "indicators": "cases", "contacts": "coordinator", "playbooks": "coordinator", "init": "ops",
    "run": "ops", "status": "ops", "webhook": "webhook",
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
            # The exception text may quote stored values: only its type leaves the process.
            # Whether the command had saved anything by then is not known here: say where to look.
            click.echo(
                f"Error: internal error ({type(exc).__name__}). What was saved before it is in"
                " 'rapidresponse show'/'log'; set RAPIDRESPONSE_DEBUG=1 for the traceback.",
                err=True,
            )
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


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
