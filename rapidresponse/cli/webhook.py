"""`rapidresponse webhook`: serve Twilio's delivery receipts and ack replies."""

from __future__ import annotations

import contextlib
import signal

import click

from rapidresponse.cli.common import Env, pass_env


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep it local and put a TLS reverse proxy in front.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@pass_env
def webhook(env: Env, host: str, port: int) -> None:
    """Serve POST /twilio/status and /twilio/inbound (signed by Twilio) until Ctrl-C."""
    from rapidresponse.webhooks import INBOUND_PATH, STATUS_PATH, make_app, serve

    env.app.settings  # noqa: B018 (a broken config.toml stops the server before it listens)
    app = make_app(env.home)

    def ready(server: object) -> None:
        click.echo(f"Serving Twilio webhooks on http://{host}:{port} for {app.public_url}"
                   f" ({STATUS_PATH}, {INBOUND_PATH}). Ctrl-C stops.", err=True)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (systemd, docker stop) ends as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):  # waitress usually takes it and returns
        serve(app, host, port, ready=ready)
    click.echo("Webhook server stopped.", err=True)


COMMANDS = [webhook]
