"""``capture``: packets from a live interface (or a capture file) to flow and request events.

Live capture reads an ``AF_PACKET`` socket with a BPF filter (see
:mod:`portolan.packets.live`) in a worker thread, decodes and counts the packets into
flows there, and hands the events to the pipeline in batches. Open flows are ended by
their time-outs even when no packet comes; when the source stops, every open flow is
reported before it returns, so stopping loses nothing that was seen.

With ``read`` set, the source reads that pcap or pcapng file once instead.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from portolan.config import ConfigError
from portolan.event import Event
from portolan.packets.analyzer import DEFAULT_LOCAL_NETWORKS, Analyzer, AnalyzerOptions
from portolan.packets.capfile import CaptureError, CaptureFile
from portolan.packets.flows import Timeouts
from portolan.packets.live import (
    DEFAULT_FILTER,
    LiveCapture,
    default_interface,
    interface_addresses,
)
from portolan.sources.base import SOURCES, Emitter, SourceContext, SourceOptions, SourceSpec

log = logging.getLogger(__name__)


class CaptureOptions(SourceOptions, kw_only=True, forbid_unknown_fields=True):
    """A packet capture: a live interface, or a capture file read once."""

    type: str = "capture"
    interface: str = ""
    """Interface to capture on; empty: the first one that is up and is not loopback."""
    filter: str = DEFAULT_FILTER
    """BPF filter (tcpdump syntax), compiled by libpcap; empty captures everything."""
    read: str = ""
    """A pcap or pcapng file to read instead of capturing live."""
    local_networks: list[str] = msgspec.field(
        default_factory=lambda: list(DEFAULT_LOCAL_NETWORKS))
    """Networks that are "us": a flow opened from outside them towards them is inbound,
    every other flow outbound. The interface's own addresses always count as local."""
    tcp_idle_timeout: float = 300.0
    """Seconds without a packet after which a TCP flow has ended."""
    idle_timeout: float = 60.0
    """Seconds without a packet after which a UDP, ICMP or other flow has ended."""
    active_timeout: float = 1800.0
    """Seconds after which a long flow is reported, and goes on as a new record."""
    max_flows: int = 100000
    """Open flows kept at most (memory is bounded by this); beyond, the oldest is ended."""
    http: bool = True
    """Recognise HTTP requests (on any port) and their response status."""
    tls: bool = True
    """Recognise TLS ClientHellos: server name, ALPN, JA4."""
    dns: bool = True
    """Recognise DNS queries and their answers (UDP ports 53, 5353, 5355)."""


def analyzer_options(opts: CaptureOptions, own: list[str] | None = None) -> AnalyzerOptions:
    """The analyzer's settings from a source's options; bad values raise ConfigError."""
    for text in opts.local_networks:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ConfigError(
                f"sources: capture: local_networks: {text!r} is not a network "
                "(write it as 192.168.0.0/16 or fd00::/8)"
            ) from None
    for key in ("tcp_idle_timeout", "idle_timeout", "active_timeout"):
        if getattr(opts, key) <= 0:
            raise ConfigError(f"sources: capture: {key}: must be more than 0 seconds")
    if opts.max_flows < 1:
        raise ConfigError("sources: capture: max_flows: must be at least 1")
    return AnalyzerOptions(
        timeouts=Timeouts(tcp_idle=opts.tcp_idle_timeout, idle=opts.idle_timeout,
                          active=opts.active_timeout, max_flows=opts.max_flows),
        local_networks=tuple(opts.local_networks),
        own_addresses=tuple(own or ()),
        http=opts.http, tls=opts.tls, dns=opts.dns,
    )


class CaptureSource:
    """Live capture, or one capture file; see the module docstring."""

    def __init__(self, opts: CaptureOptions, ctx: SourceContext, *,
                 max_frames: int = 0) -> None:
        self.opts = opts
        self.ctx = ctx
        self.max_frames = max_frames
        self.interface = "" if opts.read else (opts.interface or default_interface() or "")
        self.chosen = not opts.read and not opts.interface
        """True when the interface was picked as the default (the CLI says so)."""
        where = Path(opts.read).name if opts.read else self.interface
        self.name = opts.name or f"capture:{where}"
        self.analyzer: Analyzer | None = None
        self.capture: LiveCapture | None = None
        self.kernel_drops = 0
        analyzer_options(opts)  # validate early

    def open(self) -> None:
        """Open the live socket, or check the file, now (errors surface before the
        pipeline starts)."""
        if self.opts.read:
            CaptureFile(Path(self.opts.read))
            return
        if self.capture is not None:
            return
        if not self.interface:
            raise CaptureError("no interface to capture on: none is up except loopback "
                               "(name one with -i, or interface = \"...\")")
        self.capture = LiveCapture(self.interface, self.opts.filter)
        self.analyzer = Analyzer(
            sensor=self.ctx.sensor, source=self.name,
            id_key=f"live:{self.interface}:{time.time_ns()}",
            options=analyzer_options(self.opts, interface_addresses(self.interface)),
            counters=self.ctx.counters,
        )

    async def run(self, out: Emitter) -> None:
        if self.opts.read:
            await self._read_file(out)
        else:
            await self._live(out)

    # -- a file ------------------------------------------------------------------------

    async def _read_file(self, out: Emitter) -> None:
        from portolan.formats.pcap import batches

        capture = CaptureFile(Path(self.opts.read), self.ctx.counters)
        self.analyzer = Analyzer(
            sensor=self.ctx.sensor, source=self.name, id_key=capture.fingerprint,
            options=analyzer_options(self.opts), counters=self.ctx.counters,
        )
        events: Iterator[list[Event]] = batches(capture, self.analyzer)
        while True:
            batch = await asyncio.to_thread(next, events, None)
            if batch is None:
                return
            await out.emit(batch)

    # -- live --------------------------------------------------------------------------

    def _read(self) -> tuple[list[Event], bool]:
        assert self.capture is not None and self.analyzer is not None
        analyzer = self.analyzer
        limit = 5000
        if self.max_frames:
            limit = min(limit, self.max_frames - analyzer.frames)
        analyzer.feed(self.capture.read(max_frames=limit, timeout=0.5))
        analyzer.tick(self.ctx.now())
        done = bool(self.max_frames) and analyzer.frames >= self.max_frames
        if done:
            analyzer.finish()
        return analyzer.take(), done

    async def _live(self, out: Emitter) -> None:
        self.open()
        assert self.capture is not None and self.analyzer is not None
        loop = asyncio.get_running_loop()
        pending: list[Event] = []
        try:
            while True:
                job = loop.run_in_executor(None, self._read)
                try:
                    events, done = await asyncio.shield(job)
                except asyncio.CancelledError:
                    # Let the worker finish its batch; its events are not lost.
                    pending, _ = await job
                    raise
                if events:
                    await out.emit(events)
                if done:
                    return
        except asyncio.CancelledError:
            self.analyzer.finish()
            final = pending + self.analyzer.take()
            if final:
                await out.emit(final)
            raise
        finally:
            self._close()

    def _close(self) -> None:
        if self.capture is not None:
            try:
                self.kernel_drops += self.capture.stats()[1]
            except OSError:
                pass
            if self.kernel_drops:
                self.ctx.counters["dropped by the kernel (capture too slow)"] += self.kernel_drops
            self.capture.close()
            self.capture = None

    @property
    def counts(self) -> collections.Counter[str]:
        """Frames, IP packets, flows and requests so far."""
        a = self.analyzer
        c: collections.Counter[str] = collections.Counter()
        if a is not None:
            c.update(frames=a.frames, ip_packets=a.ip_packets, flows=a.flows,
                     requests=a.requests)
        return c


def _make(opts: CaptureOptions, ctx: SourceContext) -> CaptureSource:
    return CaptureSource(opts, ctx)


SOURCES.add("capture", SourceSpec(
    "capture", "packet capture (live interface or pcap file): flows, HTTP requests, TLS "
    "server names, DNS queries", CaptureOptions, _make))
