"""A provider that is slow for one number delays no other step (issue 7, failure 3).

The daemon runs against the Twilio stand-in, which takes seconds to answer for one police
number. Before the senders left the tick, every step that fell due while that send hung fired
late by as long as the send took.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import write_playbook
from processes import DaemonProcess, events, query, wait_for
from rapidresponse.contacts import normalise_number

SLOW = normalise_number("+32 470 00 00 31")  # police, dispatch
SLOW_SECONDS = 4.0
#: The stand-in answers the slow number within the client's time-out: slow, not down.
SLOW_ENV = {"RAPIDRESPONSE_TWILIO_TIMEOUT": "5", "RAPIDRESPONSE_CLAIM_SECONDS": "15"}

SLOW_CASE = """
name = "slow"
title = "A step to the slow number"

[[steps]]
id = "police"
at = "1s"
role = "police"
notify = "all"
message = "{case}: politie."
"""

QUICK_CASE = """
name = "quick"
title = "Steps that fall due while the slow send hangs"

[[steps]]
id = "one"
at = "2s"
role = "child_focus"
notify = "all"
message = "{case}: een."

[[steps]]
id = "two"
at = "3s"
role = "coordinator"
notify = "all"
message = "{case}: twee."

[[steps]]
id = "three"
at = "4s"
role = "reference_centre"
notify = "all"
message = "{case}: drie."
"""


def test_one_slow_number_delays_no_other_step(
    home: Path, stub: Any, daemon: Callable[..., DaemonProcess], register: Callable[..., str],
) -> None:
    from twilio_stub import Reply

    write_playbook(home, "slow", SLOW_CASE)
    write_playbook(home, "quick", QUICK_CASE)
    stub.script(SLOW, *(Reply(delay=SLOW_SECONDS) for _ in range(5)))
    process = daemon(SLOW_ENV)

    slow = register("--playbook", "slow", extra=SLOW_ENV)
    quick = register("--playbook", "quick", extra=SLOW_ENV)
    wait_for(lambda: len(query(home, "SELECT 1 FROM steps WHERE state = 'done'")) == 4,
             "every step done", timeout=30)
    process.stop()

    late = {(e["case_ref"], e["detail"]["step"]): e["detail"]["late_seconds"]
            for e in events(home, "step.due")}
    assert set(late) == {(slow, "police"), (quick, "one"), (quick, "two"), (quick, "three")}
    assert max(late.values()) < 1.0, late
    assert [r.answered for r in stub.received(SLOW)] == [True]  # slow, and sent once
