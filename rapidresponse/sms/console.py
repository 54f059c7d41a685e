"""The default transport: prints each text and call to stderr, so a fresh machine needs no
account and the demo shows calls too."""

from __future__ import annotations

import sys
import threading
import uuid

from rapidresponse.sms import Sent


class ConsoleTransport:
    name = "console"

    def __init__(self, stream=None) -> None:  # type: ignore[no-untyped-def]
        self._stream = stream
        self._lock = threading.Lock()

    def check(self) -> None:
        return None

    def send(self, to: str, body: str) -> Sent:
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(f"[sms console] to {to}: {body}\n")  # one write: lines never merge
            stream.flush()
        return Sent(sid=f"console-{uuid.uuid4().hex[:16]}")

    def call(self, to: str, speech: str, message_id: int) -> Sent:
        from rapidresponse.voice import PROMPT

        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(f"[call console] to {to}, says: {speech} {PROMPT}\n")
            stream.flush()
        return Sent(sid=f"console-call-{uuid.uuid4().hex[:16]}")

    def hang_up(self, sid: str, answered: bool) -> str:
        status = "completed" if answered else "canceled"
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(f"[call console] hang up {sid} ({status})\n")
            stream.flush()
        return status
