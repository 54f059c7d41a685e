"""A slow or idle client cannot stall the webhook server (issue 7, failure 5).

wsgiref served one request at a time with no socket time-out: a client that sent headers with
`Content-Length: 100` and no body blocked it, and a correctly signed ACK got no answer (Twilio
gives up after 15 s; the acknowledgement was lost). The real server process is started on
127.0.0.1, held by idle clients, and must still answer a signed ACK, and stop on SIGTERM.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator
from twilio_stub import AUTH_TOKEN

from conftest import CHAIN_PLAYBOOK, MINOR, assert_no_secrets, write_playbook
from processes import query, wait_for

PUBLIC = "https://rr.example.org"
PROSECUTOR = "+32470000001"
#: How long the test waits for an answer: far below Twilio's 15 s, far above a normal reply.
ANSWER_WITHIN = 8.0

CLI = Callable[..., subprocess.CompletedProcess[str]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, stderr_path: Path) -> None:
        self.proc, self.port, self.stderr_path = proc, port, stderr_path

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def accepting(self) -> bool:
        assert self.proc.poll() is None, f"the webhook server exited: {self.stderr()}"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def post(self, path: str, params: dict[str, str]) -> tuple[int, str]:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, params)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=urlencode(params).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "X-Twilio-Signature": signature},
        )
        with urllib.request.urlopen(request, timeout=ANSWER_WITHIN) as response:
            return response.status, response.read().decode()


@pytest.fixture
def webhook(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], Server]]:
    started: list[Server] = []

    def start() -> Server:
        port = free_port()
        stderr_path = tmp_path / f"webhook-{port}.err"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rapidresponse", "webhook", "--port", str(port)],
                env={**env, "RAPIDRESPONSE_PUBLIC_URL": PUBLIC}, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err,
            )
        server = Server(proc, port, stderr_path)
        started.append(server)
        wait_for(server.accepting, "the webhook server to listen")
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        assert_no_secrets(server.stderr())


def idle_client(port: int) -> socket.socket:
    """Headers announcing a 100-byte body, then nothing: the slow-loris of the report."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST /twilio/inbound HTTP/1.1\r\nHost: rr.example.org\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
    return sock


def waiting_case(home: Path, cli: CLI) -> tuple[str, str]:
    """A case whose youth prosecutor has been texted and is waiting to acknowledge."""
    write_playbook(home, "chain", CHAIN_PLAYBOOK)
    result = cli("register", "--alias", MINOR["alias"], "--birth-date", MINOR["birth_date"],
                 "--last-seen", MINOR["last_seen"], "--missing-since", "now", "--playbook", "chain",
                 "--json")
    assert result.returncode == 0, result.stderr
    case = json.loads(result.stdout)
    return str(case["case"]), str(case["ack_code"])


def ack_params(code: str) -> dict[str, str]:
    return {"From": PROSECUTOR, "Body": f"ACK {code}", "MessageSid": "SM" + secrets.token_hex(16)}


def test_idle_clients_do_not_delay_a_signed_ack_and_sigterm_stops_the_server(
    home: Path, cli: CLI, stub: Any, webhook: Callable[[], Server]
) -> None:
    ref, code = waiting_case(home, cli)
    server = webhook()
    idle = [idle_client(server.port) for _ in range(6)]  # more than a small thread pool

    status, body = server.post("/twilio/inbound", ack_params(code))
    assert status == 200 and f"{ref} bevestigd" in body
    [step] = query(home, "SELECT state FROM steps WHERE step_key = 'alert'")
    assert step["state"] == "acknowledged"

    assert all(sock.fileno() != -1 for sock in idle)  # still hanging when the stop comes
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=ANSWER_WITHIN) == 0
    assert "Webhook server stopped" in server.stderr()
    for sock in idle:
        sock.close()


def test_a_body_over_the_cap_is_refused_without_reading_it(
    home: Path, cli: CLI, stub: Any, webhook: Callable[[], Server]
) -> None:
    server = webhook()
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(b"POST /twilio/status HTTP/1.1\r\nHost: rr.example.org\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 10000000\r\n\r\n")
        answer = sock.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413")


def test_the_webhook_acknowledges_on_the_last_good_contacts_while_the_file_is_broken(
    home: Path, cli: CLI, stub: Any, webhook: Callable[[], Server]
) -> None:
    ref, code = waiting_case(home, cli)
    contacts = home / "contacts.toml"
    contacts.write_text(contacts.read_text().replace("[roles.police]", "[roles.police"))
    server = webhook()
    status, body = server.post("/twilio/inbound", ack_params(code))
    assert status == 200 and f"{ref} bevestigd" in body
