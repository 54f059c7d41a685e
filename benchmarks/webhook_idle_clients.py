"""A signed ACK's answer time while idle clients hold connections to the webhook server.

Usage: python benchmarks/webhook_idle_clients.py [--idle 50] [--requests 20] [--quick]

Makes a home in a temporary folder (console transport), registers one case, starts
`rapidresponse webhook` as a subprocess on 127.0.0.1, opens IDLE connections that send headers
with `Content-Length: 100` and no body (a slow-loris client), then posts REQUESTS signed ACK
replies one after another and times each answer; finally it times SIGTERM to exit while the idle
clients still hang, and removes the home. Target: every answer well under Twilio's 15 s (with
wsgiref, the first idle client blocked the server: no answer at all).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
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

from quick import parse_args
from twilio.request_validator import RequestValidator

TOKEN = "b" * 32
PUBLIC = "https://rr.example.org"
CLI = [sys.executable, "-m", "rapidresponse"]
TWILIO_TIMEOUT_MS = 15_000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20)
    args = parse_args(parser, idle=2, requests=2)
    folder = Path(tempfile.mkdtemp(prefix="rr-bench-webhook-"))
    env = {**os.environ, "RAPIDRESPONSE_HOME": str(folder / "home"), "TWILIO_AUTH_TOKEN": TOKEN,
           "RAPIDRESPONSE_PUBLIC_URL": PUBLIC, "RAPIDRESPONSE_SMS": "console"}
    try:
        subprocess.run([*CLI, "init"], env=env, capture_output=True, check=True)
        registered = subprocess.run(
            [*CLI, "register", "--alias", "Benchmarka", "--birth-date", "2011-03-02",
             "--missing-since", "now", "--last-seen", "nergens", "--json"],
            env=env, capture_output=True, text=True, check=False,
        )
        if registered.returncode != 0:
            print(f"register failed: {registered.stderr.strip()}", file=sys.stderr)
            return 1
        times, stop_ms = measure(env, json.loads(registered.stdout)["ack_code"], args.idle, args.requests)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    verdict = "PASS" if max(times) < TWILIO_TIMEOUT_MS else "MISS"
    print(f"{args.idle} idle clients: signed ACK answered in median {statistics.median(times):.1f} ms,"
          f" worst {max(times):.1f} ms over {len(times)} requests (Twilio gives up after"
          f" {TWILIO_TIMEOUT_MS / 1000:.0f} s): {verdict}; SIGTERM to exit {stop_ms:.0f} ms")
    return 0


def measure(env: dict[str, str], code: str, idle_clients: int, requests: int) -> tuple[list[float], float]:
    """Answer times of signed ACKs (ms) with idle clients hanging, and SIGTERM to exit (ms)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([*CLI, "webhook", "--port", str(port)], env=env,
                              stderr=subprocess.DEVNULL)
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(idle_clients):
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(b"POST /twilio/inbound HTTP/1.1\r\nHost: rr\r\nContent-Type:"
                         b" application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
            idle.append(conn)
        times = []
        for _ in range(requests):
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
        return times, (time.perf_counter() - started) * 1000
    finally:
        for conn in idle:
            conn.close()
        if server.poll() is None:
            server.kill()
            server.wait()

if __name__ == "__main__":
    sys.exit(main())
