"""No alert after its stand-down (issue 7, failure 1), with the daemon and the stand-in.

The youth prosecutor's provider answers 503 only after seconds; meanwhile the chain moves on to
the backup and runs out (exhausted). The officer resolves while that first send is still in
flight. Before the fix the 503 put the alert back in the queue, its step being merely
`exhausted`, and the daemon sent it after the stand-down.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import write_playbook
from processes import DaemonProcess, query, wait_for
from rapidresponse.contacts import normalise_number

YP1 = normalise_number("+32 470 00 00 01")
IN_FLIGHT_SECONDS = 6.0
#: The stand-in's slow 503 must come back within the client's time-out; the claim outlasts it.
ENV = {"RAPIDRESPONSE_TWILIO_TIMEOUT": "8", "RAPIDRESPONSE_CLAIM_SECONDS": "20"}

CHAIN = """
name = "chain"
title = "A chain that runs out"

[[steps]]
id = "alert"
at = "1s"
role = "youth_prosecutor"
notify = "first"
message = "{case}: vermist. Bel {callback}. Antwoord ACK {ack}"
ack_within = "1s"

[on_resolved]
message = "{case}: teruggevonden. Geen actie meer nodig."
"""


def test_an_alert_in_flight_when_the_case_is_resolved_never_follows_the_stand_down(
    home: Path, stub: Any, daemon: Callable[..., DaemonProcess], register: Callable[..., str],
    cli: Any,
) -> None:
    from twilio_stub import Reply

    write_playbook(home, "chain", CHAIN)
    stub.script(YP1, Reply(status=503, code=20503, delay=IN_FLIGHT_SECONDS))
    process = daemon(ENV)
    ref = register("--playbook", "chain", extra=ENV)

    wait_for(lambda: query(home, "SELECT 1 FROM steps WHERE state = 'exhausted'"), "the chain to run out")
    assert [r.answered for r in stub.received(YP1)] == [False]  # YP1's first send is still out
    resolved = cli("resolve", ref, "--outcome", "found", extra=ENV)
    assert resolved.returncode == 0, resolved.stderr

    def settled() -> bool:
        return not query(home, "SELECT 1 FROM messages WHERE state IN ('queued', 'sending')")

    wait_for(settled, "every message settled", timeout=30)
    process.stop()

    for number in {r.to for r in stub.received()}:
        texts = ["stand-down" if "teruggevonden" in (r.body or "") else "alert"
                 for r in stub.accepted(number)]
        assert "alert" not in texts[texts.index("stand-down"):], (number, texts)
    [first] = query(home, "SELECT state FROM messages WHERE to_number = ? AND kind = 'alert'", [YP1])
    assert first["state"] == "cancelled"  # the provider refused it: it never arrived
