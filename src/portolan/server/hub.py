"""The live stream's hub: new events, numbered, for ``GET /api/v1/stream``.

Every batch this process stores (through the pipeline of ``portolan run``, or through
ingest) is published to a :class:`Hub`, which numbers the events and keeps the newest
``[server] stream_buffer`` of them. Each client gets the events that match its filters.
Every SSE message has an id ``BOOT-SEQ``; a client that reconnects with
``Last-Event-ID`` (browsers do this on their own) gets what it missed while it is still in
the buffer, then the live events. When it is not (the server restarted, or the client was
away too long) the client gets an ``event: reset`` message first, meaning "reload what
you show from the REST API".
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import secrets
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from portolan.event import Event
from portolan.sinks.base import SINKS, SinkSpec
from portolan.store import EventFilter

if TYPE_CHECKING:
    from portolan.runtime import Runtime

#: Seconds between keep-alive comments on an idle stream.
KEEPALIVE = 15.0


class Hub:
    """Numbers new events and wakes the streams that wait for them."""

    def __init__(self, size: int = 10000) -> None:
        self.boot = secrets.token_hex(4)
        self.size = size
        self.buffer: collections.deque[tuple[int, Event]] = collections.deque()
        self._ids: set[str] = set()
        self.seq = 0
        self.closed = False
        self._waiters: set[asyncio.Event] = set()

    def publish(self, events: list[Event]) -> None:
        """Add stored events (call from the event loop). An event still in the buffer is
        not sent twice (a sensor retrying a batch it already delivered)."""
        buffer, ids = self.buffer, self._ids
        if len(events) > self.size:
            # only the newest ``size`` can stay in the buffer: the others are numbered
            # (a client that asks for them is told to reload), not kept
            skipped = len(events) - self.size
            self.seq += skipped - sum(1 for e in events[:skipped] if e.id in ids)
            events = events[skipped:]
        for e in events:
            if e.id in ids:
                continue
            self.seq += 1
            buffer.append((self.seq, e))
            ids.add(e.id)
            if len(buffer) > self.size:
                ids.discard(buffer.popleft()[1].id)
        for w in self._waiters:
            w.set()

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self.closed = True
        for w in self._waiters:
            w.set()

    def start_after(self, last_event_id: str | None) -> tuple[int, bool]:
        """The sequence number to resume after, and whether the client missed events that
        are no longer available (it should reload)."""
        if last_event_id:
            boot, _, seq = last_event_id.partition("-")
            if boot == self.boot and seq.isdigit():
                after = min(int(seq), self.seq)
                first = self.buffer[0][0] if self.buffer else self.seq + 1
                return after, after + 1 < first
            return self.seq, True
        return self.seq, False

    async def follow(self, after: int) -> AsyncIterator[list[tuple[int, Event]] | None]:
        """Yields lists of (seq, event) newer than ``after`` as they come, ``None`` after
        :data:`KEEPALIVE` seconds of quiet; ends when the hub closes."""
        wake = asyncio.Event()
        self._waiters.add(wake)
        try:
            while not self.closed:
                newer = self._since(after)
                if newer:
                    after = newer[-1][0]
                    yield newer
                    continue
                wake.clear()
                try:
                    async with asyncio.timeout(KEEPALIVE):
                        await wake.wait()
                except TimeoutError:
                    yield None
        finally:
            self._waiters.discard(wake)

    def _since(self, after: int) -> list[tuple[int, Event]]:
        if not self.buffer or self.seq <= after:
            return []
        first = self.buffer[0][0]
        start = max(0, after + 1 - first)
        return [self.buffer[i] for i in range(start, len(self.buffer))]


_hubs: dict[int, Hub] = {}


def hub_for(runtime: Runtime, size: int = 10000) -> Hub:
    """The hub of a runtime: the server and the stream sink of one process share it
    (kept while the runtime lives)."""
    key = id(runtime)
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = Hub(size)
        weakref.finalize(runtime, _hubs.pop, key, None)
    return hub


def matches(f: EventFilter, e: Event) -> bool:
    """Whether an event passes a filter (the same meaning as the store's query)."""
    if f.since is not None and e.ts < f.since:
        return False
    if f.until is not None and e.ts >= f.until:
        return False
    for name in ("sensor", "source", "service", "action", "direction", "user"):
        value = getattr(f, name)
        if value is not None and getattr(e, name) != value:
            return False
    if f.country is not None and e.country != f.country.upper():
        return False
    if f.asn is not None and e.asn != f.asn:
        return False
    if f.ip is not None and not _ip_matches(f.ip, e):
        return False
    if f.text:
        hay = " ".join(str(x) for x in (e.user, e.src_ip, e.attrs or "") if x)
        if f.text not in hay:
            return False
    return True


def _ip_matches(text: str, e: Event) -> bool:
    if "/" not in text:
        return text in (e.src_ip, e.dst_ip)
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    for ip in (e.src_ip, e.dst_ip):
        try:
            if ip and ipaddress.ip_address(ip) in net:
                return True
        except ValueError:
            continue
    return False


def sse(event_id: str | None, data: bytes, kind: str | None = None) -> bytes:
    """One SSE message (``data`` is one line of JSON: it holds no newline)."""
    out = b""
    if kind:
        out += b"event: " + kind.encode() + b"\n"
    if event_id:
        out += b"id: " + event_id.encode() + b"\n"
    return out + b"data: " + data + b"\n\n"


class StreamSink:
    """Publishes what the pipeline stored to the hub (not durable: it only feeds clients
    that are watching)."""

    name = "stream"
    durable = False

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def write(self, events: list[Event]) -> None:
        self.hub.publish(events)

    async def close(self) -> None:
        return None


def _make_sink(runtime: Runtime) -> StreamSink | None:
    from portolan.server.settings import ServerSection

    settings = runtime.config.get(ServerSection)
    if not settings.enabled:
        return None
    return StreamSink(hub_for(runtime, settings.stream_buffer))


SINKS.add("stream", SinkSpec("stream", "new events to the server's live stream", _make_sink,
                            live=True))
