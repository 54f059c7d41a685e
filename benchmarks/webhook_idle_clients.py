"""A signed ACK's answer time while idle clients hold connections to the webhook server.

Usage: python benchmarks/webhook_idle_clients.py [--idle 50] [--requests 20]

Makes a home in a temporary folder (console transport), registers one case, starts
`rapidresponse webhook` as a subprocess on 127.0.0.1, opens IDLE connections that send headers
with `Content-Length: 100` and no body (a slow-loris client), then posts REQUESTS signed ACK
replies one after another and times each answer; finally it times SIGTERM to exit while the idle
clients still hang. Target: every answer well under Twilio's 15 s (with wsgiref, the first idle
client blocked the server: no answer at all).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

TOKEN = "b" * 32
PUBLIC = "https://rr.example.org"
CLI = [sys.executable, "-m", "rapidresponse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp()) / "home"
    env = {**os.environ, "RAPIDRESPONSE_HOME": str(home), "TWILIO_AUTH_TOKEN": TOKEN,
           "RAPIDRESPONSE_PUBLIC_URL": PUBLIC, "RAPIDRESPONSE_SMS": "console"}
    subprocess.run([*CLI, "init"], env=env, capture_output=True, check=True)
    registered = subprocess.run(
        [*CLI, "register", "--alias", "Benchmarka", "--birth-date", "2011-03-02",
         "--missing-since", "now", "--last-seen", "nergens", "--json"],
        env=env, capture_output=True, text=True, check=False,
    )
    code = json.loads(registered.stdout)["ack_code"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([*CLI, "webhook", "--port", str(port)], env=env,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    idle = []
    for _ in range(args.idle):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(b"POST /twilio/inbound HTTP/1.1\r\nHost: rr\r\nContent-Type:"
                     b" application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
        idle.append(conn)
    times = []
    for _ in range(args.requests):
        params = {"From": "+32470000001", "Body": f"ACK {code}",
                  "MessageSid": "SM" + secrets.token_hex(16)}
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/twilio/inbound", params)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/twilio/inbound", data=urlencode(params).encode(),
            headers={"X-Twilio-Signature": signature,
                     "Content-Type": "application/x-www-form-urlencoded"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=20) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    server.send_signal(signal.SIGTERM)
    server.wait(30)
    stop_ms = (time.perf_counter() - started) * 1000
    for conn in idle:
        conn.close()
    print(f"{args.idle} idle clients: signed ACK answered in median {statistics.median(times):.1f} ms,"
          f" worst {max(times):.1f} ms over {len(times)} requests; SIGTERM to exit {stop_ms:.0f} ms")


if __name__ == "__main__":
    main()
