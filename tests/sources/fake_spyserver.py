"""A program that behaves like Airspy's spyserver, as far as its console goes.

    python fake_spyserver.py CONFIG

CONFIG is a spyserver-style ``key = value`` file: ``bind_host``, ``bind_port`` (0: any free
port, written to ``CONFIG.port`` once listening, its pid to ``CONFIG.pid``), ``maximum_clients``,
``maximum_session_duration`` (minutes, fractions allowed), ``device_type``.

It listens on a loopback port and prints the lines the real program prints: the banner,
``Accepted client IP:PORT running NAME`` once a TCP client has sent a HELLO command
(4-byte command type 0, 4-byte body size, body = 4-byte protocol version + the client
name, NUL-terminated; printed raw, newlines and all, in one write), ``Client
disconnected: IP:PORT``, the rejections (max clients to stdout, protocol to stderr),
session expiry, sleep and wake-up. Like the real one it never flushes stdout itself:
on a terminal the C library writes each line at once, on a pipe it buffers 4 KiB.
SIGTERM prints ``Caught signal 15`` / ``Terminating...`` (stderr) and ``Closing all
connections...``, then exits 0. SIGUSR1 plays a lost device (``Device is no longer
available.`` / ``All connections will be closed.``: every client is dropped without a
disconnect line each).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import struct
import sys
from pathlib import Path

HELLO = 0
PROTOCOL = (2 << 24) | (0 << 16) | 1700


class Console:
    """stdout as spyserver's C library treats it: per line on a terminal, else 4 KiB."""

    def __init__(self) -> None:
        self.tty = os.isatty(1)
        self.out = io.BufferedWriter(io.FileIO(1, "w", closefd=False), 4096)

    def line(self, data: bytes) -> None:
        self.out.write(data + b"\n")
        if self.tty:
            self.out.flush()

    def err(self, data: bytes) -> None:
        os.write(2, data + b"\n")

    def flush(self) -> None:
        self.out.flush()


def read_config(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


class Server:
    def __init__(self, config: dict[str, str], console: Console) -> None:
        self.console = console
        self.max_clients = int(config.get("maximum_clients", "5"))
        self.session_seconds = float(config.get("maximum_session_duration", "0")) * 60
        self.device = config.get("device_type", "AirspyHF+")
        self.clients: dict[asyncio.StreamWriter, str] = {}
        self.sleeping = True
        self.closing = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ip, port = writer.get_extra_info("peername")[:2]
        who = f"{ip}:{port}".encode()
        accepted = False
        try:
            header = await reader.readexactly(8)
            command, size = struct.unpack("<II", header)
            body = await reader.readexactly(size) if size else b""
            if command != HELLO or len(body) < 4:
                raise asyncio.IncompleteReadError(b"", None)
            (version,) = struct.unpack("<I", body[:4])
            major, minor, build = version >> 24, (version >> 16) & 0xFF, version & 0xFFFF
            if (major, minor) != (2, 0):
                self.console.err(b"Client %s rejected. Expected protocol 2.0.* but got %d.%d.%d"
                                 % (who, major, minor, build))
                return
            if len(self.clients) >= self.max_clients:
                self.console.line(b"Client %s rejected (Max Clients reached)" % who)
                return
            name = body[4:].split(b"\0", 1)[0]
            if self.sleeping:
                self.console.line(b"Device was sleeping. Wake up!")
                self.sleeping = False
            self.clients[writer] = who.decode()
            accepted = True
            self.console.line(b"Accepted client %s running %s" % (who, name) if name
                              else b"Accepted client %s" % who)
            expire = self.session_seconds or None
            try:
                await asyncio.wait_for(self._until_closed(reader), expire)
            except TimeoutError:
                self.console.line(b"User session expired. Killing the user %s ..." % who)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            dropped = writer not in self.clients and accepted
            self.clients.pop(writer, None)
            writer.close()
            if not dropped and not self.closing:
                self.console.line(b"Client disconnected: %s" % who)
            if accepted and not self.clients and not self.sleeping and not self.closing:
                self.console.line(b"No clients using the device. Sleeping...")
                self.sleeping = True

    async def _until_closed(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(4096):
            pass

    def lose_device(self) -> None:
        self.console.line(b"Device is no longer available.")
        self.console.line(b"All connections will be closed.")
        for writer in list(self.clients):
            self.clients.pop(writer)
            writer.transport.abort()


def announce(path: Path, port: int) -> None:
    """Tell the test where to connect and whom to kill."""
    Path(f"{path}.pid").write_text(f"{os.getpid()}\n")
    Path(f"{path}.port").write_text(f"{port}\n")


async def main(path: Path) -> int:
    console = Console()
    config = read_config(path)
    console.line(b"SPY Server v2.0.1700")
    console.line(b"Copyright (C) 2016-2018 Youssef Touil - https://airspy.com")
    console.line(b"Reading the configuration file: %s" % str(path).encode())
    console.err(b"Found Rafael Micro R820T tuner")
    console.line(b"Acquired an %s device" % config.get("device_type", "AirspyHF+").encode())
    server = Server(config, console)
    host = config.get("bind_host", "127.0.0.1")
    tcp = await asyncio.start_server(server.handle, host, int(config.get("bind_port", "0")))
    port = tcp.sockets[0].getsockname()[1]
    console.line(b"Listening for connections on %s:%d" % (host.encode(), port))
    announce(path, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, server.lose_device)
    await stop.wait()
    server.closing = True
    console.err(b"Caught signal 15")
    console.err(b"Terminating...")
    console.line(b"Closing all connections...")
    console.flush()
    return 0


# -- for tests: a client that says HELLO -----------------------------------------------


def hello(name: bytes, version: int = PROTOCOL) -> bytes:
    """The HELLO command a client sends first: its protocol version and name."""
    body = struct.pack("<I", version) + name + b"\0"
    return struct.pack("<II", HELLO, len(body)) + body


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]))))
