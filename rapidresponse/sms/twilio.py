"""The Twilio transport: texts (Messages API) and voice calls (Calls API) through the
official `twilio` client.

The client retries nothing by itself; this module only says *what kind* of failure happened
(transient or permanent) and dispatch decides what to do with it. `twilio` and `requests` are
imported lazily, so commands that never send start fast.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rapidresponse.config import twilio_timeout
from rapidresponse.errors import InputError, OperationalFailure
from rapidresponse.sms import PermanentSendError, Sent, TransientSendError

DEFAULT_BASE_URL = "https://api.twilio.com"
STATUS_PATH = "/twilio/status"

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: An alphanumeric sender ID (allowed in Belgium): 1–11 letters, digits or spaces, one letter.
_ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")

#: Twilio codes that mean "try again later" whatever the HTTP status says.
TRANSIENT_CODES = {20429, 20500, 20503, 30001}
#: Twilio codes that mean our account or credentials are wrong, not the number: retrying
#: gives an operator time to fix them before the chain burns through every contact.
ACCOUNT_CODES = {20003, 20005}


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str | None
    messaging_service_sid: str | None
    base_url: str
    timeout: float
    status_callback: str | None
    public_url: str | None = None
    caller_id: str | None = None  # the number calls come from: TWILIO_CALLER_ID or TWILIO_FROM


def _problems(env: Mapping[str, str]) -> list[str]:
    """Every configuration mistake, as sentences that never quote a secret."""
    problems = []
    sid = env.get("TWILIO_ACCOUNT_SID", "").strip()
    if not sid:
        problems.append("TWILIO_ACCOUNT_SID is not set")
    elif not _ACCOUNT_SID.match(sid):
        problems.append("TWILIO_ACCOUNT_SID is malformed (it starts with AC and has 32 hex digits)")
    token = env.get("TWILIO_AUTH_TOKEN", "")
    if not token.strip():
        problems.append("TWILIO_AUTH_TOKEN is not set")
    elif token != token.strip() or any(ch.isspace() for ch in token):
        problems.append("TWILIO_AUTH_TOKEN is malformed (it contains spaces)")
    sender = env.get("TWILIO_FROM", "").strip()
    service = env.get("TWILIO_MESSAGING_SERVICE_SID", "").strip()
    if not sender and not service:
        problems.append("neither TWILIO_FROM nor TWILIO_MESSAGING_SERVICE_SID is set")
    if sender and not (_E164.match(sender) or _ALPHA_SENDER.match(sender)):
        problems.append("TWILIO_FROM is not an E.164 number like +32470000000"
                        " (nor an alphanumeric sender ID)")
    if service and not _SERVICE_SID.match(service):
        problems.append("TWILIO_MESSAGING_SERVICE_SID is malformed"
                        " (it starts with MG and has 32 hex digits)")
    caller = env.get("TWILIO_CALLER_ID", "").strip()
    if caller and not _E164.match(caller):
        problems.append("TWILIO_CALLER_ID is not an E.164 number like +3232000000")
    base = env.get("RAPIDRESPONSE_TWILIO_BASE_URL", "").strip()
    if base:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append("RAPIDRESPONSE_TWILIO_BASE_URL is not an http(s) URL")
    try:
        twilio_timeout(env)
    except InputError as exc:
        problems.append(str(exc))
    public = env.get("RAPIDRESPONSE_PUBLIC_URL", "").strip()
    if public:
        parts = urlsplit(public)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append("RAPIDRESPONSE_PUBLIC_URL is not an http(s) URL")
    return problems


def load_config(env: Mapping[str, str] | None = None) -> TwilioConfig:
    """Read Twilio's usual variables; OperationalFailure naming every problem at once."""
    env = os.environ if env is None else env
    problems = _problems(env)
    if problems:
        raise OperationalFailure(
            "the Twilio transport is not configured: " + "; ".join(problems)
        )
    public = env.get("RAPIDRESPONSE_PUBLIC_URL", "").strip().rstrip("/")
    sender = env.get("TWILIO_FROM", "").strip()
    caller = env.get("TWILIO_CALLER_ID", "").strip() or (sender if _E164.match(sender) else "")
    return TwilioConfig(
        account_sid=env["TWILIO_ACCOUNT_SID"].strip(),
        auth_token=env["TWILIO_AUTH_TOKEN"],
        from_number=env.get("TWILIO_FROM", "").strip() or None,
        messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID", "").strip() or None,
        base_url=(env.get("RAPIDRESPONSE_TWILIO_BASE_URL", "").strip() or DEFAULT_BASE_URL).rstrip("/"),
        timeout=twilio_timeout(env),
        status_callback=f"{public}{STATUS_PATH}" if public else None,
        public_url=public or None,
        caller_id=caller or None,
    )


def _make_http_client(base_url: str, timeout: float) -> Any:
    """A `TwilioHttpClient` that sends to `base_url` instead of *.twilio.com.

    This is the client's documented extension point (`Client(http_client=...)`); it also keeps
    the last response so a 429's Retry-After header can be honoured.
    """
    from twilio.http.http_client import TwilioHttpClient

    base = urlsplit(base_url)

    class RedirectingHttpClient(TwilioHttpClient):  # type: ignore[misc]
        last_headers: Mapping[str, str] = {}

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            parts = urlsplit(url)
            if base_url != DEFAULT_BASE_URL and parts.hostname and parts.hostname.endswith("twilio.com"):
                url = urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path,
                                  parts.query, parts.fragment))
            self.last_headers = {}
            response = super().request(method, url, *args, **kwargs)
            self.last_headers = dict(response.headers or {})
            return response

    return RedirectingHttpClient(timeout=timeout, max_retries=0)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if any."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        when = parsedate_to_datetime(value)
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _twilio_text(exc: Any) -> str:
    """Twilio's own words, without the client's "Unable to create record: " prefix."""
    text = str(getattr(exc, "msg", "") or getattr(exc, "detail", "") or getattr(exc, "title", "") or "")
    prefix = "Unable to create record: "
    return text[len(prefix):] if text.startswith(prefix) else (text or "no explanation given")


def _code(value: Any) -> int | None:
    """Twilio's five-digit error code; the client puts the HTTP status there when it has none."""
    return value if isinstance(value, int) and value >= 10000 else None


def classify(status: int | None, code: int | None, text: str,
             headers: Mapping[str, str]) -> TransientSendError | PermanentSendError:
    """Map an HTTP status and a Twilio error code to what dispatch should do."""
    code_text = str(code) if code is not None else (str(status) if status else None)
    label = f"Twilio {code}: {text}" if code is not None else f"HTTP {status}: {text}"
    if status == 429 or code in TRANSIENT_CODES or (status is not None and status >= 500):
        return TransientSendError(label, code_text, _retry_after(headers))
    if status == 401 or code in ACCOUNT_CODES:
        return TransientSendError(f"{label} (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)",
                                  code_text, _retry_after(headers))
    return PermanentSendError(label, code_text)


class TwilioTransport:
    """Thread-safe: each sending thread gets its own `Client` (and HTTP session)."""

    name = "twilio"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._config: TwilioConfig | None = None
        self._local = threading.local()

    @classmethod
    def from_environment(cls) -> TwilioTransport:
        """Never raises: `check()` reports configuration problems before anything is claimed."""
        return cls()

    @property
    def config(self) -> TwilioConfig:
        if self._config is None:
            self._config = load_config(self._env)
        return self._config

    def check(self) -> None:
        _ = self.config

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from twilio.rest import Client

            cfg = self.config
            http = _make_http_client(cfg.base_url, cfg.timeout)
            client = Client(cfg.account_sid, cfg.auth_token, http_client=http, environment={})
            self._local.client, self._local.http = client, http
        return client

    def send(self, to: str, body: str) -> Sent:
        cfg = self.config
        params: dict[str, Any] = {"to": to, "body": body}
        if cfg.messaging_service_sid:
            params["messaging_service_sid"] = cfg.messaging_service_sid
        if cfg.from_number:
            params["from_"] = cfg.from_number
        if cfg.status_callback:
            params["status_callback"] = cfg.status_callback
        return self._create(self._client().messages, params, "text")

    def call(self, to: str, speech: str, message_id: int) -> Sent:
        """One call. With RAPIDRESPONSE_PUBLIC_URL, Twilio fetches what to say from the signed
        webhook when the call is answered (so a call answered after the stand-down says only
        that it is no longer needed), and sends the key press and the final status there too.
        Without it the TwiML goes inline: the call speaks, but no key can arrive."""
        from rapidresponse.voice import (
            CALL_STATUS_PATH,
            MACHINE_DETECTION,
            RING_SECONDS,
            twiml,
            twiml_url,
        )

        cfg = self.config
        if not cfg.caller_id:
            # Every call would fail the same way: wait (status turns red), don't burn the chain.
            raise TransientSendError("no number to call from: set TWILIO_CALLER_ID (an E.164 number)",
                                     "caller-id")
        params: dict[str, Any] = {"to": to, "from_": cfg.caller_id, "timeout": RING_SECONDS}
        if cfg.public_url:
            params.update(url=twiml_url(cfg.public_url, message_id), method="POST",
                          status_callback=f"{cfg.public_url}{CALL_STATUS_PATH}",
                          status_callback_event=["completed"], status_callback_method="POST",
                          machine_detection=MACHINE_DETECTION)
        else:
            params["twiml"] = twiml(speech, None)
        return self._create(self._client().calls, params, "call")

    def hang_up(self, sid: str, answered: bool) -> str:
        """End a call nobody needs any more, in one request: `canceled` while it is queued or
        ringing (what Twilio documents for those), `completed` once it has been answered.
        Returns the status asked for."""
        status = "completed" if answered else "canceled"
        self._request(lambda: self._client().calls(sid).update(status=status), "hang-up")
        return status

    def _create(self, resource: Any, params: dict[str, Any], what: str) -> Sent:
        """`resource.create(**params)`, every failure sorted into transient or permanent."""
        created = self._request(lambda: resource.create(**params), what)
        sid = str(created.sid or "")
        if not sid:
            raise TransientSendError(f"Twilio accepted the {what} but returned no SID", "no-sid",
                                     maybe_sent=True)
        return Sent(sid=sid)

    def _request(self, request: Any, what: str) -> Any:
        """One request to Twilio, every failure sorted into transient or permanent."""
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        cfg = self.config
        try:
            return request()
        except requests.ConnectTimeout:
            raise TransientSendError(f"cannot reach Twilio within {cfg.timeout:g} s", "connection") from None
        except requests.Timeout:
            raise TransientSendError(
                f"Twilio did not answer within {cfg.timeout:g} s (it may have accepted the {what})",
                "timeout",
                maybe_sent=True,
            ) from None
        except requests.RequestException as exc:
            raise TransientSendError(f"cannot reach Twilio ({type(exc).__name__})",
                                     "connection") from None
        except TwilioRestException as exc:
            headers = self._local.http.last_headers
            raise classify(exc.status, _code(exc.code), _twilio_text(exc), headers) from None
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            code = getattr(exc, "code", None)
            if isinstance(status, int):
                raise classify(status, _code(code), _twilio_text(exc),
                               self._local.http.last_headers) from None
            raise TransientSendError(f"Twilio client error ({type(exc).__name__})", "client") from None
        except ValueError:  # an answer that is not JSON: a proxy's page, a truncated body
            raise TransientSendError(
                f"Twilio answered something unreadable (it may have accepted the {what})", "garbage",
                maybe_sent=True,
            ) from None
