"""Twilio's webhooks as a plain WSGI application: delivery receipts and acknowledgement replies,
and for calls their key presses and final status.

Deployable under any WSGI server; `rapidresponse webhook` serves it with waitress behind a TLS
reverse proxy. Every request must carry a valid `X-Twilio-Signature` computed over
`RAPIDRESPONSE_PUBLIC_URL` + path, or it gets 403 and changes nothing. Replies and errors never
carry personal data of the minor (these paths never read it), and never a traceback.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rapidresponse import audit, engine
from rapidresponse.casecontacts import logged_sender
from rapidresponse.clock import Clock, SystemClock
from rapidresponse.contacts import Contacts, normalise_number
from rapidresponse.contactsource import ContactsSource
from rapidresponse.engine import SYSTEM, Context
from rapidresponse.errors import InputError, OperationalFailure
from rapidresponse.receipts import (
    RECEIPT_STATES,
    case_ref,
    hold_receipt,
    message_detail,
    record_receipt,
)
from rapidresponse.states import RUNNING_STEPS, CaseState, Channel, sql
from rapidresponse.store import Store, open_store
from rapidresponse.timeutil import to_iso
from rapidresponse.voice import (
    CALL_STATES,
    CALL_STATUS_PATH,
    KEY_ACK,
    KEY_PATH,
    KEY_REPEAT,
    NO_KEY,
    SAY_ACKED,
    SAY_ALREADY,
    SAY_NOT_NEEDED,
    SAY_NOTHING_WAITING,
    SAY_TEST_OK,
    SAY_UNKNOWN_KEY,
    TWIML_PATH,
    answered_by_machine,
    goodbye,
    key_url,
    twiml,
)

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
MAX_BODY = 64 * 1024
#: A receipt can overtake the send's own result (Twilio may call back before the sending
#: process has written the SID): wait a little for it before calling the SID unknown.
UNKNOWN_SID_WAIT = 3.0

_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_ACK = re.compile(r"^\s*(?:ack)?[\s:#.\-]*(\d{4,8})[\s.!]*$", re.IGNORECASE)

REPLY_UNKNOWN_SENDER = "rapidresponse: dit nummer is niet gekend. Er werd niets bevestigd."
REPLY_HOWTO = "rapidresponse: antwoord ACK gevolgd door de code uit het bericht, bv. ACK 1234."
REPLY_UNKNOWN_CODE = "rapidresponse: code {code} is onbekend of niet meer actief. Er werd niets bevestigd."
REPLY_ACKED = "rapidresponse: {case} bevestigd ({roles}). Dank u."
REPLY_NOTHING_WAITING = ("rapidresponse: voor {case} wacht niets op uw bevestiging"
                         " (al bevestigd?). Bij twijfel: bel {callback}.")


# ---------------------------------------------------------------- library: replies


def parse_ack(body: str) -> str | None:
    """'ACK 1234', 'ack1234', ' 1234 ' → '1234'; anything else → None."""
    match = _ACK.match(body or "")
    return match.group(1) if match else None


def case_for_ack_code(store: Store, code: str) -> dict[str, Any] | None:
    """The case an ack code belongs to: an open one first, else one with steps still running."""
    return store.one(
        f"SELECT * FROM cases WHERE ack_code = ? AND (state = '{CaseState.OPEN}' OR id IN"
        f" (SELECT case_id FROM steps WHERE state IN {sql(RUNNING_STEPS)}))"
        f" ORDER BY state = '{CaseState.OPEN}' DESC, id DESC LIMIT 1",
        [code],
    )


def _our_call(ctx: Context, message_id: int, call_sid: str) -> dict[str, Any] | None:
    """The call a signed request names, if it is ours with that SID; a mismatch is logged.

    Call inside the caller's transaction."""
    msg = ctx.store.one("SELECT * FROM messages WHERE id = ? AND channel = ?",
                        [message_id, Channel.VOICE])
    if msg is None or (msg["sid"] and msg["sid"] != call_sid):
        audit.append(ctx.store, at=ctx.clock.now(), kind="call.rejected", actor=SYSTEM,
                     detail={"message": message_id, "sid": call_sid,
                             "why": "no call of ours with this SID"})
        return None
    return msg


def call_answered(ctx: Context, message_id: int, call_sid: str, public_url: str,
                  answered_by: str | None = None) -> str:
    """What a call says once it is answered: its text and the one-key prompt, or, when its
    step ended meanwhile (acknowledged, or the case resolved), only that it is not needed.
    A voicemail (`answered_by` a machine) records the text and the request to answer the
    text message, as no key can come from it; its final status moves the chain on."""
    now = ctx.clock.now()
    with ctx.store.transaction():
        msg = _our_call(ctx, message_id, call_sid)
        if msg is None:
            return goodbye(SAY_NOT_NEEDED)
        wanted = engine.alert_wanted(ctx.store, msg)
        detail = {**message_detail(ctx, msg), "sid": call_sid, "still_wanted": wanted}
        if answered_by:
            detail["answered_by"] = answered_by
        audit.append(ctx.store, at=now, kind="call.picked_up", actor=SYSTEM,
                     case=case_ref(ctx, msg["case_id"]), detail=detail)
        if not wanted:
            return goodbye(SAY_NOT_NEEDED)
        if answered_by_machine(answered_by):
            return twiml(msg["body"], None)
        return twiml(msg["body"], key_url(public_url, message_id))


def handle_key(ctx: Context, message_id: int, call_sid: str, digits: str, public_url: str) -> str:
    """A key pressed during a call; returns the TwiML that answers it.

    1 acknowledges the step for the called contact's role (as `ACK` by text would), once per
    call: the press is recorded with the call's SID in the same transaction, so a replayed
    request acknowledges nothing. 2 says the text again; any other key says so and repeats.
    """
    now = ctx.clock.now()
    with ctx.store.transaction():
        msg = _our_call(ctx, message_id, call_sid)
        if msg is None:
            return goodbye(SAY_NOTHING_WAITING)
        ref = case_ref(ctx, msg["case_id"])
        detail = {**message_detail(ctx, msg), "sid": call_sid, "key": digits}

        def log(result: str, **extra: Any) -> None:
            audit.append(ctx.store, at=now, kind="call.key", actor=msg["contact"], case=ref,
                         detail={**detail, "result": result, **extra})

        again = twiml(msg["body"], key_url(public_url, message_id))
        if digits == KEY_REPEAT:
            log("repeated")
            return again
        if digits != KEY_ACK:
            log("no key" if not digits else "unknown key")
            if not digits:
                return goodbye(NO_KEY)
            return twiml(msg["body"], key_url(public_url, message_id), before=SAY_UNKNOWN_KEY)
        fresh = ctx.store.conn.execute(
            "INSERT OR IGNORE INTO inbound_messages (sid, received_at) VALUES (?, ?)",
            [f"{call_sid}:{KEY_ACK}", to_iso(now)],
        ).rowcount
        if not fresh:
            audit.append(ctx.store, at=now, kind="call.key_duplicate", actor=SYSTEM, case=ref,
                         detail={"message": message_id, "sid": call_sid, "key": digits})
            return goodbye(SAY_ALREADY)
        if ref is None:  # a test call: the key reached us, which is what it tests
            log("test")
            return goodbye(SAY_TEST_OK)
        try:
            steps = engine.acknowledge(ctx, ref, msg["role"], via="voice", contact=msg["contact"])
        except InputError:
            log("nothing waiting")
            return goodbye(SAY_NOTHING_WAITING)
        # This call ends itself (the goodbye hangs up): no request to hang it up.
        ctx.store.conn.execute("UPDATE messages SET hangup = 'self' WHERE id = ? AND hangup = 'due'",
                               [message_id])
        log("acknowledged", steps=steps)
        return goodbye(SAY_ACKED)


@dataclass(frozen=True)
class InboundResult:
    reply: str | None  # None: answer nothing (a replay of a reply already handled)
    case: str | None = None
    acknowledged: tuple[str, ...] = ()


def handle_inbound(ctx: Context, from_number: str, body: str, sid: str | None = None) -> InboundResult:
    """A text from a phone: acknowledge the sender's role(s) for the case whose code it quotes.

    With the provider's `sid`, each text is handled once: the SID is recorded in the same
    transaction as what the text did, and a replay (a retried or re-sent webhook) acts on
    nothing, answers nothing and leaves only an `sms.inbound_duplicate` event. Without that,
    a replayed ACK could acknowledge a step that started waiting after the original reply.
    """
    now = ctx.clock.now()
    try:
        number = normalise_number(from_number)
    except ValueError:
        number = from_number.strip()
    with ctx.store.transaction():
        if sid is not None:
            fresh = ctx.store.conn.execute(
                "INSERT OR IGNORE INTO inbound_messages (sid, received_at) VALUES (?, ?)",
                [sid, to_iso(now)],
            ).rowcount
            if not fresh:
                audit.append(ctx.store, at=now, kind="sms.inbound_duplicate", actor=SYSTEM,
                             detail={"from": logged_sender(ctx.store, number), "sid": sid})
                return InboundResult(None)
        return _act_on_reply(ctx, number, body, now)


def _act_on_reply(ctx: Context, number: str, body: str, now: datetime) -> InboundResult:
    """What a reply does; runs inside handle_inbound's transaction."""
    matches = ctx.contacts.roles_of_number(number)

    def reject(why: str, case: str | None = None, **extra: Any) -> None:
        with ctx.store.transaction():
            audit.append(ctx.store, at=now, kind="sms.inbound_rejected", actor=SYSTEM, case=case,
                         detail={"from": logged_sender(ctx.store, number), "why": why, **extra})

    if not matches:
        reject("the number is not in the contacts file")
        return InboundResult(REPLY_UNKNOWN_SENDER)
    contact_name = matches[0][1].name
    code = parse_ack(body)
    if code is None:
        reject("no acknowledgement code in the reply", contact=contact_name)
        return InboundResult(REPLY_HOWTO)
    case = case_for_ack_code(ctx.store, code)
    if case is None:
        reject("unknown acknowledgement code", contact=contact_name, code=code)
        return InboundResult(REPLY_UNKNOWN_CODE.format(code=code))
    acked_roles: list[str] = []
    steps: list[str] = []
    for role, contact in matches:
        try:
            steps += engine.acknowledge(ctx, case["ref"], role, via="sms", contact=contact.name)
        except InputError:
            continue  # nothing of this role waits
        acked_roles.append(role)
    if not acked_roles:
        reject("nothing is waiting for an acknowledgement from this contact", case=case["ref"],
               contact=contact_name)
        return InboundResult(REPLY_NOTHING_WAITING.format(case=case["ref"],
                                                          callback=ctx.contacts.callback_display),
                             case["ref"])
    return InboundResult(REPLY_ACKED.format(case=case["ref"], roles=", ".join(acked_roles)),
                         case["ref"], tuple(steps))


# ---------------------------------------------------------------- the WSGI application

StartResponse = Callable[..., Any]


class BadRequest(Exception):
    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Form(dict[str, list[str]]):
    """Form fields with all their values; `getlist` is what RequestValidator looks for.
    `query` holds the URL's query (signed with it)."""

    query: dict[str, list[str]] = {}  # noqa: RUF012 - replaced per request, never mutated

    def getlist(self, name: str) -> list[str]:
        return self[name]

    def value(self, name: str) -> str:
        values = self.get(name)
        return values[-1] if values else ""


def _answered_by(form: _Form) -> str | None:
    """Twilio's `AnsweredBy` (answering machine detection), or None when it did not detect."""
    answered_by = form.value("AnsweredBy").strip()
    if answered_by and not re.fullmatch(r"[a-z_]{2,32}", answered_by):
        raise BadRequest("400 Bad Request", "AnsweredBy is malformed")
    return answered_by or None


class WebhookApp:
    """The WSGI callable. One SQLite connection per serving thread."""

    def __init__(self, home: Path, *, auth_token: str, public_url: str, clock: Clock | None = None,
                 unknown_sid_wait: float = UNKNOWN_SID_WAIT) -> None:
        from twilio.request_validator import RequestValidator

        self.home = home
        self.public_url = public_url.rstrip("/")
        self.clock = clock or SystemClock()
        self.unknown_sid_wait = unknown_sid_wait
        self._validator = RequestValidator(auth_token)
        self._local = threading.local()
        self._contacts = ContactsSource(home)
        self._contacts_lock = threading.Lock()
        self._stores: list[Store] = []
        self.routes: dict[str, Callable[[_Form], tuple[str, str, bytes]]] = {
            STATUS_PATH: self._status, INBOUND_PATH: self._inbound,
            TWIML_PATH: self._twiml, KEY_PATH: self._key, CALL_STATUS_PATH: self._call_status,
        }

    # -- per-thread resources

    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.home)
            self._local.store = store
            with self._contacts_lock:
                self._stores.append(store)
        return store

    def contacts(self) -> Contacts:
        """The contacts in force (`rapidresponse.contactsource`): a broken edit keeps the last
        good copy; with no usable copy at all, no number is known and nothing is acknowledged."""
        store = self.store()
        with self._contacts_lock:
            state, _ = self._contacts.current(store)
        return state.contacts or Contacts.unusable(state.timezone)

    def context(self) -> Context:
        return Context(self.store(), self.clock, self.contacts(), SYSTEM)

    def close(self) -> None:
        with self._contacts_lock:
            for store in self._stores:
                store.close()
            self._stores.clear()
        self._local = threading.local()

    # -- WSGI

    def __call__(self, environ: Mapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, ctype, payload = self._handle(environ)
        except BadRequest as exc:
            status, ctype, payload = exc.status, "text/plain; charset=utf-8", (exc.text + "\n").encode()
        except Exception as exc:  # never a traceback to the caller: it may quote stored values
            store = getattr(self._local, "store", None)
            if store is not None and store.conn.in_transaction:
                store.conn.execute("ROLLBACK")
            print(f"{to_iso(self.clock.now())} webhook.error {type(exc).__name__}",
                  file=environ.get("wsgi.errors", sys.stderr))
            status, ctype, payload = ("500 Internal Server Error", "text/plain; charset=utf-8",
                                      b"internal error\n")
        headers = [("Content-Type", ctype), ("Content-Length", str(len(payload)))]
        if status.startswith("405"):
            headers.append(("Allow", "POST"))
        start_response(status, headers)
        return [payload]

    def _handle(self, environ: Mapping[str, Any]) -> tuple[str, str, bytes]:
        path = environ.get("PATH_INFO") or "/"
        handler = self.routes.get(path)
        if handler is None:
            raise BadRequest("404 Not Found", "not found")
        if environ.get("REQUEST_METHOD") != "POST":
            raise BadRequest("405 Method Not Allowed", "use POST")
        form = self._read_form(environ)
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE") or ""
        query = environ.get("QUERY_STRING") or ""
        url = self.public_url + path + (f"?{query}" if query else "")
        if not signature or not self._validator.validate(url, form, signature):
            raise BadRequest("403 Forbidden", "invalid or missing X-Twilio-Signature")
        form.query = parse_qs(query)
        return handler(form)

    def _read_form(self, environ: Mapping[str, Any]) -> _Form:
        ctype = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise BadRequest("415 Unsupported Media Type", "expected a form-encoded body")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest("400 Bad Request", "bad Content-Length") from None
        if length < 0:
            raise BadRequest("400 Bad Request", "bad Content-Length")
        if length > MAX_BODY:
            raise BadRequest("413 Content Too Large", "request body too large")
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            text = raw.decode("utf-8")
            return _Form(parse_qs(text, keep_blank_values=True, strict_parsing=bool(text)))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("400 Bad Request", "malformed form body") from None

    def _status(self, form: _Form) -> tuple[str, str, bytes]:
        sid = form.value("MessageSid") or form.value("SmsSid")
        status = form.value("MessageStatus") or form.value("SmsStatus")
        error_code = form.value("ErrorCode").strip() or None
        if not _SID.match(sid):
            raise BadRequest("400 Bad Request", "MessageSid is missing or malformed")
        if not re.fullmatch(r"[a-z_]{2,32}", status):
            raise BadRequest("400 Bad Request", "MessageStatus is missing or malformed")
        if error_code is not None and not error_code.isdigit():
            raise BadRequest("400 Bad Request", "ErrorCode is malformed")
        return self._receipt(sid, status, error_code)

    def _receipt(self, sid: str, status: str, error_code: str | None,
                 answered_by: str | None = None) -> tuple[str, str, bytes]:
        """Apply a text's or a call's final status; one that overtook its send is held."""
        ctx = self.context()
        outcome = record_receipt(ctx, sid, status, error_code, answered_by)
        deadline = time.monotonic() + self.unknown_sid_wait
        while outcome == "unknown" and time.monotonic() < deadline:
            time.sleep(0.1)
            outcome = record_receipt(ctx, sid, status, error_code, answered_by)
        if outcome == "unknown" and (status in RECEIPT_STATES or status in CALL_STATES):
            hold_receipt(ctx, sid, status, error_code)
        return "200 OK", "text/plain; charset=utf-8", f"{outcome}\n".encode()

    def _call_status(self, form: _Form) -> tuple[str, str, bytes]:
        sid = form.value("CallSid")
        status = form.value("CallStatus")
        if not _CALL_SID.match(sid):
            raise BadRequest("400 Bad Request", "CallSid is missing or malformed")
        if not re.fullmatch(r"[a-z\-]{2,32}", status):
            raise BadRequest("400 Bad Request", "CallStatus is missing or malformed")
        error_code = form.value("ErrorCode").strip() or None
        if error_code is not None and not error_code.isdigit():
            raise BadRequest("400 Bad Request", "ErrorCode is malformed")
        return self._receipt(sid, status, error_code, _answered_by(form))

    def _call_of(self, form: _Form) -> tuple[str, int]:
        """The CallSid and our message id (from the signed URL's query) of a call request."""
        sid = form.value("CallSid")
        if not _CALL_SID.match(sid):
            raise BadRequest("400 Bad Request", "CallSid is missing or malformed")
        message = (form.query.get("m") or [""])[-1]
        if not message.isdigit() or len(message) > 18:
            raise BadRequest("400 Bad Request", "the call's reference is missing or malformed")
        return sid, int(message)

    def _twiml(self, form: _Form) -> tuple[str, str, bytes]:
        sid, message = self._call_of(form)
        answer = call_answered(self.context(), message, sid, self.public_url, _answered_by(form))
        return "200 OK", "application/xml; charset=utf-8", answer.encode("utf-8")

    def _key(self, form: _Form) -> tuple[str, str, bytes]:
        sid, message = self._call_of(form)
        digits = form.value("Digits").strip()
        if not re.fullmatch(r"[0-9*#]?", digits):
            raise BadRequest("400 Bad Request", "Digits is malformed")
        answer = handle_key(self.context(), message, sid, digits, self.public_url)
        return "200 OK", "application/xml; charset=utf-8", answer.encode("utf-8")

    def _inbound(self, form: _Form) -> tuple[str, str, bytes]:
        from twilio.twiml.messaging_response import MessagingResponse

        sender = form.value("From").strip()
        if not sender:
            raise BadRequest("400 Bad Request", "From is missing")
        sid = form.value("MessageSid") or form.value("SmsSid")
        if not _SID.match(sid):
            raise BadRequest("400 Bad Request", "MessageSid is missing or malformed")
        result = handle_inbound(self.context(), sender, form.value("Body"), sid)
        twiml = MessagingResponse()
        if result.reply is not None:
            twiml.message(result.reply)
        return "200 OK", "application/xml; charset=utf-8", str(twiml).encode("utf-8")


def make_app(home: Path, *, clock: Clock | None = None, env: Mapping[str, str] | None = None,
             unknown_sid_wait: float = UNKNOWN_SID_WAIT) -> WebhookApp:
    """Build the app from the environment; OperationalFailure if it could not check signatures."""
    env = os.environ if env is None else env
    token = env.get("TWILIO_AUTH_TOKEN", "")
    public = env.get("RAPIDRESPONSE_PUBLIC_URL", "").strip()
    problems = []
    if not token.strip():
        problems.append("TWILIO_AUTH_TOKEN is not set (it signs every webhook request)")
    if not public:
        problems.append("RAPIDRESPONSE_PUBLIC_URL is not set (the https address Twilio calls)")
    else:
        parts = urlsplit(public)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            problems.append("RAPIDRESPONSE_PUBLIC_URL is not an http(s) URL without a query")
    if problems:
        raise OperationalFailure("cannot serve webhooks: " + "; ".join(problems))
    open_store(home).close()  # fail now, not on the first request, if there is no database
    return WebhookApp(home, auth_token=token, public_url=public, clock=clock,
                      unknown_sid_wait=unknown_sid_wait)


#: Requests served at once; the rest wait in waitress's queue, never on a socket.
SERVER_THREADS = 8
#: A connection idle this long is closed (waitress checks every CLEANUP_INTERVAL seconds).
#: Twilio gives up after 15 s, so a client this slow is not Twilio.
CHANNEL_TIMEOUT = 10
CLEANUP_INTERVAL = 2
#: Open connections at most; more are not accepted until some close.
CONNECTION_LIMIT = 200
MAX_HEADERS = 16 * 1024


def serve(app: WebhookApp, host: str, port: int, *, ready: Callable[[Any], None] | None = None) -> None:
    """Serve with waitress until interrupted (SIGINT/SIGTERM raise KeyboardInterrupt).

    waitress reads each request, body included, on its event loop and hands only complete
    requests to its threads: an idle or slow client (headers promising a body that never comes)
    holds a socket, not a thread, and is dropped after CHANNEL_TIMEOUT. Bodies over MAX_BODY get
    413 without being read. Put a TLS reverse proxy in front of it.
    """
    import logging

    from waitress.server import create_server

    # waitress's own lines may quote a request; our access line says method, path and status only.
    logging.getLogger("waitress").setLevel(logging.CRITICAL)
    try:
        server = create_server(
            _access_log(app), host=host, port=port, threads=SERVER_THREADS,
            channel_timeout=CHANNEL_TIMEOUT, cleanup_interval=CLEANUP_INTERVAL,
            connection_limit=CONNECTION_LIMIT, max_request_body_size=MAX_BODY,
            max_request_header_size=MAX_HEADERS, expose_tracebacks=False, ident="rapidresponse",
            clear_untrusted_proxy_headers=True,
        )
    except OSError as exc:
        raise OperationalFailure(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        if ready is not None:
            ready(server)
        server.run()  # returns after closing itself on KeyboardInterrupt
    finally:
        server.close()
        app.close()


def _access_log(app: WebhookApp) -> Callable[[Mapping[str, Any], StartResponse], Iterable[bytes]]:
    """One line per request: method, path and status; never a query string, header or body."""

    def logged(environ: Mapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            method = environ.get("REQUEST_METHOD", "-")
            path = environ.get("PATH_INFO") or "/"
            shown = path if path in app.routes else "(other)"
            sys.stderr.write(f"{to_iso(app.clock.now())} webhook {method} {shown} {status.split()[0]}\n")
            return start_response(status, headers, *rest)

        return app(environ, start)

    return logged
