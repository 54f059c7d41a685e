"""A local stand-in for Twilio's Messages and Calls APIs, so the real `twilio` client is tested
offline.

A real HTTP server (127.0.0.1, a free port, its own threads) answers form-encoded POSTs to
`/2010-04-01/Accounts/{sid}/Messages.json` and `.../Calls.json` with Basic auth, as Twilio does:
201 and a message (SM…) or call (CA…) resource, or an error document `{"code", "message",
"more_info", "status"}`; `.../Calls/{CallSid}.json` with `Status` (canceled, completed) updates a
call placed here (200, or 404 for a call it never placed). Replies can be scripted per destination number (a queue: status, error
code, delay, Retry-After; calls have their own queue), and a global latency slows every answer.
Every request is recorded, including ones whose answer never left. A call's inline TwiML is
kept (`Recorded.twiml`); the stand-in never calls back: tests post the key press and the status
callback themselves, signed as Twilio signs them.

Run it on its own (`python tests/twilio_stub.py --latency 0.3`) to point a manual run at it.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 8 + "0123456789abcdef" + "e" * 8
FROM_NUMBER = "+32460000000"
API_PATH = "/2010-04-01/Accounts/{sid}/Messages.json"
CALLS_PATH = "/2010-04-01/Accounts/{sid}/Calls.json"
CALL_PATH = "/2010-04-01/Accounts/{sid}/Calls/"

#: Every body any stub received in this process: the privacy test reads it.
ALL_BODIES: list[str] = []
_ALL_LOCK = threading.Lock()

ERROR_TEXT = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21201: "No 'To' number is specified",
    21205: "Url is not a valid URL.",
    21213: "Caller phone number is required.",
    21215: "Account not authorized to call this number.",
}


@dataclass
class Reply:
    """One scripted answer. `code` makes it an error; `raw` sends a non-JSON body."""

    status: int = 201
    code: int | None = None
    message: str | None = None
    delay: float = 0.0
    retry_after: str | None = None
    raw: str | None = None


@dataclass
class Recorded:
    to: str | None
    body: str | None
    from_: str | None
    messaging_service_sid: str | None
    status_callback: str | None
    path: str
    authorised: bool
    received_at: float
    status: int | None = None
    sid: str | None = None
    answered: bool = False
    form: dict[str, str] = field(default_factory=dict)
    kind: str = "message"  # or "call", or "hangup" (an update of a call's Status)
    twiml: str | None = None


class TwilioStub:
    def __init__(self, *, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN,
                 latency: float = 0.0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = latency
        self.requests: list[Recorded] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> TwilioStub:
        stub = self

        class Handler(_Handler):
            owner = stub

        server = _Server(("127.0.0.1", 0), Handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="twilio-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases handlers that are sleeping through a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TwilioStub:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment that points rapidresponse's Twilio transport at this stub."""
        return {
            "RAPIDRESPONSE_SMS": "twilio",
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM": FROM_NUMBER,
            "RAPIDRESPONSE_TWILIO_BASE_URL": self.url,
            **extra,
        }

    # ------------------------------------------------------------ scripting and records

    def script(self, to: str, *replies: Reply) -> None:
        """Answer the next requests to `to` with these replies, in order, then succeed."""
        with self._lock:
            self._scripts[to].extend(replies)

    def fail(self, to: str, code: int, status: int = 400, times: int = 1) -> None:
        self.script(to, *(Reply(status=status, code=code) for _ in range(times)))

    def clear(self, to: str) -> None:
        """Forget the replies still scripted for `to`: from now on it succeeds."""
        with self._lock:
            self._scripts.pop(to, None)

    def script_calls(self, to: str, *replies: Reply) -> None:
        """Like `script`, for calls to `to` (texts keep their own queue)."""
        self.script(_call_key(to), *replies)

    def fail_call(self, to: str, code: int, status: int = 400, times: int = 1) -> None:
        self.script_calls(to, *(Reply(status=status, code=code) for _ in range(times)))

    def script_hangups(self, *replies: Reply) -> None:
        """Answer the next call updates (hang-ups) with these replies, in order, then succeed."""
        self.script(HANGUP_KEY, *replies)

    def hangups(self) -> list[Recorded]:
        """Call updates accepted (200), in order: `sid` is the call's, `form["Status"]` the ask."""
        return [r for r in self.received() if r.kind == "hangup" and r.status == 200]

    def _next_reply(self, to: str | None) -> Reply:
        with self._lock:
            queue = self._scripts.get(to or "")
            return queue.popleft() if queue else Reply()

    def calls(self, to: str | None = None) -> list[Recorded]:
        """Calls placed (accepted with 201), in order."""
        return [r for r in self.accepted(to) if r.kind == "call"]

    def texts(self, to: str | None = None) -> list[Recorded]:
        return [r for r in self.accepted(to) if r.kind == "message"]

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)
        for text in (rec.body, rec.twiml):
            if text is not None:
                with _ALL_LOCK:
                    ALL_BODIES.append(text)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def received(self, to: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if to is None or r.to == to]

    def accepted(self, to: str | None = None) -> list[Recorded]:
        return [r for r in self.received(to) if r.status == 201]

    def numbers(self) -> list[str]:
        return [r.to for r in self.received() if r.to]

    def bodies(self) -> list[str]:
        return [r.body for r in self.received() if r.body is not None]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Poll until `predicate(self)` holds; tests use deadlines, not fixed sleeps."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return bool(predicate(self))


HANGUP_KEY = "hangup:"


def _call_key(to: str | None) -> str:
    return f"call:{to or ''}"


class _Server(ThreadingHTTPServer):
    """Like Twilio, takes many connections at once (the default backlog of 5 refuses some)."""

    daemon_threads = True
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    owner: TwilioStub
    protocol_version = "HTTP/1.1"
    server_version = "twilio-stub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def do_GET(self) -> None:
        self._send_error(405, 20004, "Method not allowed")

    def do_POST(self) -> None:
        self.owner._enter()  # counts requests open at once: parallel sending shows as > 1
        try:
            self._post()
        finally:
            self.owner._leave()

    def _post(self) -> None:
        stub = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        path = urlsplit(self.path).path
        if path.startswith(CALL_PATH.format(sid=stub.account_sid)) and path.endswith(".json"):
            self._update_call(path, form)
            return
        is_call = path.endswith("/Calls.json")
        rec = Recorded(
            to=form.get("To"), body=form.get("Body"), from_=form.get("From"),
            messaging_service_sid=form.get("MessagingServiceSid"),
            status_callback=form.get("StatusCallback"), path=path,
            authorised=self._authorised(), received_at=time.monotonic(), form=form,
            kind="call" if is_call else "message", twiml=form.get("Twiml"),
        )
        stub._record(rec)
        expected = (CALLS_PATH if is_call else API_PATH).format(sid=stub.account_sid)
        if path != expected:
            if path.startswith("/2010-04-01/Accounts/") and path.endswith(("/Messages.json",
                                                                          "/Calls.json")):
                rec.status = 401
                self._send_error(401, 20003, ERROR_TEXT[20003])
            else:
                rec.status = 404
                self._send_error(404, 20404, ERROR_TEXT[20404])
            return
        if not rec.authorised:
            rec.status = 401
            self._send_error(401, 20003, ERROR_TEXT[20003])
            return
        if "application/x-www-form-urlencoded" not in (self.headers.get("Content-Type") or ""):
            rec.status = 400
            self._send_error(400, 20001, "Content-Type must be application/x-www-form-urlencoded")
            return
        reply = stub._next_reply(_call_key(rec.to) if is_call else rec.to)
        wait = stub.latency + reply.delay
        if wait > 0 and stub._stopping.wait(wait):
            return  # shutting down: the answer never leaves, like a lost connection
        if reply.code is None and reply.raw is None and reply.status < 300:
            if is_call:
                missing = (21201 if not rec.to else 21213 if not rec.from_ else
                           21205 if not (form.get("Twiml") or form.get("Url")) else None)
            else:
                missing = (21604 if not rec.to else 21602 if not rec.body else
                           21603 if not (rec.from_ or rec.messaging_service_sid) else None)
            if missing:
                reply = Reply(status=400, code=missing)
        if reply.raw is not None:
            rec.status = reply.status
            self._send(reply.status, reply.raw.encode(), "text/html", reply.retry_after)
        elif reply.code is not None or reply.status >= 300:
            rec.status = reply.status
            self._send_error(reply.status, reply.code, reply.message, reply.retry_after)
        elif is_call:
            rec.sid = "CA" + secrets.token_hex(16)
            rec.status = 201
            self._send_json(201, self._call_resource(rec))
        else:
            rec.sid = "SM" + secrets.token_hex(16)
            rec.status = 201
            self._send_json(201, self._message_resource(rec))
        rec.answered = True

    def _update_call(self, path: str, form: dict[str, str]) -> None:
        """`calls(sid).update(status=...)`: the call placed here gets the status asked for."""
        stub = self.owner
        call_sid = path[len(CALL_PATH.format(sid=stub.account_sid)):-len(".json")]
        rec = Recorded(to=None, body=None, from_=None, messaging_service_sid=None,
                       status_callback=None, path=path, authorised=self._authorised(),
                       received_at=time.monotonic(), sid=call_sid, form=form, kind="hangup")
        stub._record(rec)
        call = next((r for r in stub.calls() if r.sid == call_sid), None)
        reply = stub._next_reply(HANGUP_KEY)
        if not rec.authorised:
            rec.status, reply = 401, Reply(status=401, code=20003)
        elif reply.code is None and reply.status < 300:
            if call is None:
                reply = Reply(status=404, code=20404)
            elif form.get("Status") not in ("canceled", "completed"):
                reply = Reply(status=400, code=20001, message="Invalid Status")
        if reply.code is not None or reply.status >= 300:
            rec.status = reply.status
            self._send_error(reply.status, reply.code, reply.message, reply.retry_after)
        else:
            assert call is not None
            rec.status = 200
            resource = {**self._call_resource(call), "status": form["Status"]}
            self._send_json(200, resource)
        rec.answered = True

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.owner.account_sid and password == self.owner.auth_token

    def _message_resource(self, rec: Recorded) -> dict[str, Any]:
        sid = self.owner.account_sid
        now = formatdate(usegmt=True)
        return {
            "account_sid": sid, "api_version": "2010-04-01", "body": rec.body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": rec.from_, "messaging_service_sid": rec.messaging_service_sid,
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD",
            "sid": rec.sid, "status": "queued" if rec.from_ else "accepted",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{sid}/Messages/{rec.sid}/Media.json"},
            "to": rec.to, "uri": f"/2010-04-01/Accounts/{sid}/Messages/{rec.sid}.json",
        }

    def _call_resource(self, rec: Recorded) -> dict[str, Any]:
        sid = self.owner.account_sid
        now = formatdate(usegmt=True)
        return {
            "account_sid": sid, "annotation": None, "answered_by": None,
            "api_version": "2010-04-01", "caller_name": None, "date_created": now,
            "date_updated": now, "direction": "outbound-api", "duration": None,
            "end_time": None, "forwarded_from": None, "from": rec.from_,
            "from_formatted": rec.from_, "group_sid": None, "parent_call_sid": None,
            "phone_number_sid": None, "price": None, "price_unit": "USD", "sid": rec.sid,
            "start_time": None, "status": "queued", "subresource_uris": {},
            "to": rec.to, "to_formatted": rec.to, "trunk_sid": None,
            "uri": f"/2010-04-01/Accounts/{sid}/Calls/{rec.sid}.json", "queue_time": "0",
        }

    def _send_error(self, status: int, code: int | None, message: str | None,
                    retry_after: str | None = None) -> None:
        doc: dict[str, Any] = {
            "code": code, "message": message or ERROR_TEXT.get(code or 0, "Internal Server Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
            "status": status,
        }
        self._send_json(status, doc, retry_after)

    def _send_json(self, status: int, doc: dict[str, Any], retry_after: str | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json", retry_after)

    def _send(self, status: int, payload: bytes, ctype: str, retry_after: str | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (time-out) or was killed mid-send


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    with TwilioStub(latency=args.latency) as stub:
        for key, value in stub.env().items():
            print(f"export {key}={value}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
