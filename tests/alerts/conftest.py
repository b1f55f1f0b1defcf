"""A real HTTP server on 127.0.0.1 standing in for Slack, a webhook, Mattermost...

It records every request; it can answer with given status codes first (500 then 200
proves a retry) or hang until released (a channel that never answers).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from portolan.event import Event


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """The server and what it received."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.statuses: list[int] = []
        """Status codes to answer with, in order; 200 once they are used up."""
        self.hang = threading.Event()
        """While set, requests are held unanswered until :meth:`release`."""
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Request(self.path, dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.hang.is_set():
                    receiver._released.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def url(self, scheme: str = "json", path: str = "hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Request]:
        """Poll until ``count`` requests have arrived (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")

    async def arrived(self, count: int) -> list[Request]:
        """:meth:`wait_for` (20 s at most) without blocking the event loop."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")

    def messages(self) -> list[str]:
        """The message texts of json:// requests."""
        with self._lock:
            return [r.json()["message"] for r in self.requests]

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def _event(n: float = 0, **fields: Any) -> Event:
    fields.setdefault("service", "ssh")
    fields.setdefault("action", "auth_failure")
    fields.setdefault("src_ip", "203.0.113.7")
    _counter[0] += 1
    return Event(id=f"e{_counter[0]}", ts=T0 + dt.timedelta(seconds=n), sensor="s1",
                 **fields)


_counter = [0]


@pytest.fixture
def make_event() -> Any:
    """``make_event(n, **fields)``: an event ``n`` seconds after :data:`T0`."""
    return _event


class MailServer:
    """Just enough SMTP on 127.0.0.1 to take messages (no TLS, no AUTH)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                def reply(text: str) -> None:
                    self.wfile.write(text.encode() + b"\r\n")

                reply("220 localhost ESMTP")
                lines: list[str] | None = None
                while raw := self.rfile.readline():
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if lines is not None:
                        if line == ".":
                            server.messages.append("\n".join(lines))
                            lines = None
                            reply("250 queued")
                        else:
                            lines.append(line[1:] if line.startswith("..") else line)
                        continue
                    verb = line[:4].upper()
                    if verb == "EHLO":
                        reply("250-localhost\r\n250 8BITMIME")
                    elif verb == "DATA":
                        lines = []
                        reply("354 go ahead")
                    elif verb == "QUIT":
                        reply("221 bye")
                        return
                    else:
                        reply("250 OK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    try:
        yield server
    finally:
        server.close()
