"""Fifty officers register at the same moment while the daemon runs and texts over the stand-in:
no "locked" error, fifty whole cases, and every first alert accepted by the provider once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import MINOR, assert_no_secrets
from processes import DaemonProcess, events, query, wait_for


def test_fifty_concurrent_registrations_against_a_running_daemon(
    home: Path, env: dict[str, str], stub: Any, daemon: Callable[..., DaemonProcess], cli: Any,
) -> None:
    patient = {"RAPIDRESPONSE_TWILIO_TIMEOUT": "5", "RAPIDRESPONSE_CLAIM_SECONDS": "15"}  # 50 starts load
    env = {**env, **patient}
    process = daemon(patient)
    command = [
        sys.executable, "-m", "rapidresponse", "register", "--alias", MINOR["alias"],
        "--birth-date", MINOR["birth_date"], "--last-seen", MINOR["last_seen"],
        "--missing-since", "now", "--json", "--new-episode",
    ]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(50)]
    outputs = [proc.communicate(timeout=180) for proc in procs]

    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert "locked" not in stderr.lower() and "Error" not in stderr, stderr
        assert_no_secrets(stderr)
    refs = [json.loads(stdout)["case"] for stdout, _ in outputs]
    year = refs[0].split("-")[1]
    assert sorted(refs) == [f"RR-{year}-{n:04d}" for n in range(1, 51)]
    assert query(home, "SELECT COUNT(*) AS n FROM persons")[0]["n"] == 50
    registered = Counter(e["case_ref"] for e in events(home, "case.registered"))
    assert sorted(registered) == sorted(refs) and set(registered.values()) == {1}

    wait_for(lambda: not query(home, "SELECT 1 FROM messages WHERE state IN ('queued', 'sending')"),
             "every first alert to be sent", timeout=60)
    rows = query(home, "SELECT to_number, body, state, possible_duplicate FROM messages")
    accepted = Counter((r.to, r.body) for r in stub.accepted())
    assert rows and all(r["state"] == "sent" for r in rows)
    for row in rows:  # once each, whoever sent it; twice only after a time-out, and flagged
        copies = accepted[(row["to_number"], row["body"])]
        assert copies == 1 or (copies > 1 and row["possible_duplicate"]), row
    assert process.stop() == 0
    assert cli("log", "--verify", extra=patient).returncode == 0
