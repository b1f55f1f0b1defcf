"""``syslog``: receive syslog messages from other machines (rsyslog, syslog-ng forwarding).

RFC 3164 and RFC 5424 messages, over UDP (one message per datagram) and TCP with either
framing of RFC 6587: octet counting (``LEN SP MESSAGE``) or one message per line. Each
message goes to the format as it arrived (``<PRI>`` included), so the ``sshd`` format reads
forwarded sshd lines exactly as it reads its own log. Messages are bounded
(``max_message``): a longer one is cut (UDP) or skipped (TCP) and counted.

Received messages have no position to come back to: their ids are unique per message
(receiving process, listener, sequence number). Forwarders that need delivery guarantees
should use TCP with their own queue (rsyslog's action queue), as they do with any
receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit

import msgspec

from portolan.event import Event
from portolan.sources.base import SOURCES, Emitter, SourceContext, SourceOptions, SourceSpec
from portolan.sources.lines import LineFeeder, LineStats

log = logging.getLogger(__name__)

BATCH_MESSAGES = 1000
BATCH_WAIT = 0.1
#: Messages waiting to be parsed (beyond, UDP drops and TCP waits).
BACKLOG = 100_000


class SyslogOptions(SourceOptions, kw_only=True, forbid_unknown_fields=True):
    """Receive syslog messages over the network."""

    listen: list[str] = msgspec.field(
        default_factory=lambda: ["udp://127.0.0.1:5514", "tcp://127.0.0.1:5514"])
    """Where to listen: ``udp://HOST:PORT`` and ``tcp://HOST:PORT`` (``[::]:514`` for all
    IPv6 and IPv4 addresses; ports below 1024 need privileges)."""
    format: str = "sshd"
    """Format of the messages (with their syslog header)."""
    format_options: dict[str, Any] = {}
    """Options of the format."""
    max_message: int = 65536
    """Longest message accepted, in bytes."""


def parse_listen(text: str) -> tuple[str, str, int]:
    """``udp://127.0.0.1:514`` -> ("udp", "127.0.0.1", 514); ValueError says what is wrong."""
    parts = urlsplit(text)
    if parts.scheme not in ("udp", "tcp") or parts.port is None or parts.hostname is None:
        raise ValueError(f"syslog listen {text!r}: use udp://HOST:PORT or tcp://HOST:PORT")
    return parts.scheme, parts.hostname, parts.port


class SyslogSource:
    """See the module docstring."""

    def __init__(self, options: SyslogOptions, ctx: SourceContext) -> None:
        self.options = options
        self.ctx = ctx
        self.endpoints = [parse_listen(x) for x in options.listen]
        self.name = options.name or "syslog:" + ",".join(
            f"{proto}/{port}" for proto, _, port in self.endpoints)
        self.stats = LineStats()
        parser = ctx.parser(options.format, self.name, dict(options.format_options))
        run_key = f"{self.name}:{os.getpid()}:{time.time_ns()}"
        self.feeder = LineFeeder(parser, ctx.sensor, run_key, self.stats)
        self.sequence = 0
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(BACKLOG)
        self.bound: list[tuple[str, str, int]] = []
        """Where it really listens (the port chosen when 0 was asked for)."""
        self.ready = asyncio.Event()

    async def run(self, out: Emitter) -> None:
        loop = asyncio.get_running_loop()
        transports: list[asyncio.BaseTransport] = []
        servers: list[asyncio.Server] = []
        try:
            for proto, host, port in self.endpoints:
                if proto == "udp":
                    udp, _ = await loop.create_datagram_endpoint(
                        lambda: _Datagrams(self), local_addr=(host, port))
                    transports.append(udp)
                    address = udp.get_extra_info("sockname")
                else:
                    server = await asyncio.start_server(self._client, host, port,
                                                        limit=self.options.max_message + 16)
                    servers.append(server)
                    address = server.sockets[0].getsockname()
                self.bound.append((proto, address[0], address[1]))
                log.info("syslog: listening on %s://%s:%s", proto, address[0], address[1])
            self.ready.set()
            await self._consume(out)
        finally:
            for transport in transports:
                transport.close()
            for server in servers:
                server.close()
                with contextlib.suppress(Exception):
                    await server.wait_closed()

    def _bounded(self, message: bytes) -> bytes:
        if len(message) > self.options.max_message:
            self.ctx.counters["syslog: message too long (cut)"] += 1
            message = message[: self.options.max_message]
        return message.rstrip(b"\r\n\x00")

    def offer(self, message: bytes) -> None:
        """A datagram: queued, or dropped (and counted) when the backlog is full."""
        try:
            self.queue.put_nowait(self._bounded(message))
        except asyncio.QueueFull:
            self.ctx.counters["syslog: backlog full (dropped)"] += 1

    async def _consume(self, out: Emitter) -> None:
        queue = self.queue
        while True:
            batch = [await queue.get()]
            deadline = asyncio.get_running_loop().time() + BATCH_WAIT
            while len(batch) < BATCH_MESSAGES:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    left = deadline - asyncio.get_running_loop().time()
                    if left <= 0:
                        break
                    try:
                        async with asyncio.timeout(left):
                            batch.append(await queue.get())
                    except TimeoutError:
                        break
            events: list[Event] = []
            for message in batch:
                self.sequence += 1
                events.extend(self.feeder.feed(self.sequence, message))
            await out.emit(events)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limit = self.options.max_message
        try:
            while True:
                head = await reader.read(1)
                if not head:
                    return
                if head.isdigit():  # octet counting: LEN SP MSG
                    digits = head + await reader.readuntil(b" ")
                    length = int(digits[:-1]) if digits[:-1].isdigit() else -1
                    if length < 0 or len(digits) > 12:
                        self.ctx.counters["syslog: bad frame"] += 1
                        return
                    if length > limit:
                        self.ctx.counters["syslog: message too long (skipped)"] += 1
                        await _skip(reader, length)
                        continue
                    message = await reader.readexactly(length)
                else:  # one message per line
                    try:
                        message = head + await reader.readuntil(b"\n")
                    except asyncio.LimitOverrunError:
                        self.ctx.counters["syslog: message too long (skipped)"] += 1
                        await _skip_line(reader)
                        continue
                await self.queue.put(self._bounded(message))  # full: the sender waits
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        except asyncio.LimitOverrunError:
            self.ctx.counters["syslog: bad frame"] += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _skip(reader: asyncio.StreamReader, length: int) -> None:
    while length > 0:
        chunk = await reader.read(min(length, 65536))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", length)
        length -= len(chunk)


async def _skip_line(reader: asyncio.StreamReader) -> None:
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, source: SyslogSource) -> None:
        self.source = source

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.source.offer(data)


def _make(options: SyslogOptions, ctx: SourceContext) -> SyslogSource:
    return SyslogSource(options, ctx)


SOURCES.add("syslog", SourceSpec(
    "syslog", "Receive syslog (RFC 3164/5424) over UDP and TCP from other machines",
    SyslogOptions, _make))
