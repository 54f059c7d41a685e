"""Run one engine action in this process and SIGKILL it at a named point (the fault suite's knife).

    python crash_at.py POINT [CASE]

Points of a send: `send-claimed` (the claim is committed, nothing has left), `send-accepted`
(the provider accepted the text, its answer is not recorded). Points of a resolve:
`resolve-mid` (inside the resolve's transaction, before its commit), `resolve-committed` (the
stand-downs are claimed, none has left). The home and the transport come from the environment,
as for the CLI. A real process dies by a real signal; nothing is mocked but where it dies.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from rapidresponse import dispatch, engine
from rapidresponse.app import App
from rapidresponse.config import resolve_home


def die(*_: Any, **__: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    point = sys.argv[1]
    app = App(resolve_home(None), "officer-crash")
    ctx = app.context()
    transport = app.transport()
    if point == "send-claimed":
        dispatch.attempt = die  # type: ignore[assignment]
        dispatch.run_pass(ctx, transport, app.settings)
    elif point == "send-accepted":
        dispatch._record = die  # type: ignore[assignment]
        dispatch.run_pass(ctx, transport, app.settings)
    elif point == "resolve-mid":
        engine._queue_stand_down = die  # type: ignore[assignment]
        engine.resolve(ctx, sys.argv[2], "found")
    elif point == "resolve-committed":
        engine.resolve(ctx, sys.argv[2], "found")
        dispatch.attempt = die  # type: ignore[assignment]
        dispatch.run_pass(ctx, transport, app.settings)
    raise SystemExit(f"crash_at: {point} was never reached")


if __name__ == "__main__":
    main()
