"""The listener's connections: one asyncio protocol object per TCP connection, one per
UDP port, and the shared state they report to.

A connection costs one small object (slots, no task, no timer): time-outs are enforced by
one sweep over the open connections (:meth:`Hub.sweep`), limits are checked when the
connection is made, and events go to one list that the source hands to the pipeline.
Per connection it keeps at most ``max_payload`` bytes, and only until the first payload is
reported; what comes after is counted, not kept.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Final, cast

from portolan.event import Event, Payload, make_id
from portolan.sources.listener_recognise import describe, payload_complete

log = logging.getLogger(__name__)

#: ``getsockopt`` option numbers of the kernel's netfilter headers (linux/netfilter_ipv4.h,
#: linux/netfilter_ipv6/ip6_tables.h): the destination a connection had before NAT.
SO_ORIGINAL_DST: Final = 80
IP6T_SO_ORIGINAL_DST: Final = 80
#: Seconds before asking conntrack again once it could not say.
ORIGINAL_DST_RETRY: Final = 5.0

#: Services a port usually means, for connections that never say what they speak.
WELL_KNOWN: Final = {
    21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "dns", 80: "http", 110: "pop3",
    123: "ntp", 143: "imap", 161: "snmp", 443: "https", 445: "smb", 465: "smtps",
    587: "smtp", 993: "imaps", 995: "pop3s", 1433: "mssql", 1521: "oracle", 1883: "mqtt",
    2222: "ssh", 2323: "telnet", 3306: "mysql", 3389: "rdp", 5060: "sip", 5432: "postgresql",
    5555: "spyserver", 5900: "vnc", 6379: "redis", 8000: "http", 8080: "http",
    8081: "http", 8443: "https", 9200: "elasticsearch", 11211: "memcached",
    27017: "mongodb",
}


@dataclass
class Limits:
    """What one listener allows. Built from the ``listener`` source's options
    (``ListenerOptions.limits()``), which hold the defaults and their documentation."""

    max_payload: int
    read_timeout: float
    payload_gap: float
    idle_timeout: float
    max_duration: float
    max_connections: int
    max_per_source: int
    accept_rate: float
    udp_rate: float
    original_dst: bool
    pending_max: int = 100000
    """Events waiting to be handed to the pipeline (not an option)."""


class TokenBucket:
    """``rate`` events per second, bursts up to ``rate``; a rate of 0 allows everything."""

    __slots__ = ("level", "rate", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.level = rate
        self.stamp = time.monotonic()

    def take(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        level = min(self.rate, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if level < 1.0:
            self.level = level
            return False
        self.level = level - 1.0
        return True


class Hub:
    """State the connections of one listener source share: limits, open connections,
    per-address counts, the events waiting for the pipeline, and counters."""

    def __init__(self, sensor: str, now: Callable[[], dt.datetime], limits: Limits,
                 counters: collections.Counter[str]) -> None:
        self.sensor = sensor
        self.now = now
        self.limits = limits
        self.counters = counters
        self.open: dict[int, TcpConnection] = {}
        # a plain dict: Counter's missing-key and delete paths are Python code, and these
        # run for every connection
        self.per_source: dict[str, int] = {}
        self.pending: list[Event] = []
        self.wake = asyncio.Event()
        self.accepts = TokenBucket(limits.accept_rate)
        self.datagrams = TokenBucket(limits.udp_rate)
        self.serial = 0
        self.stopping = False
        self.no_original_dst: dict[str, Any] | None = None
        self.no_original_dst_until = 0.0

    def push(self, event: Event) -> None:
        self.pending.append(event)
        if len(self.pending) == 1:
            self.wake.set()

    def count(self, reason: str) -> None:
        self.counters["listener: " + reason] += 1

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def sweep(self, mono: float) -> None:
        """Enforce every time-out that has passed (called a few times a second)."""
        for conn in [c for c in self.open.values() if c.deadline <= mono]:
            conn.on_deadline(mono)

    def close_all(self, reason: str) -> None:
        for conn in list(self.open.values()):
            conn.close(reason)


class Port:
    """One listening socket's settings, shared by its connections."""

    __slots__ = ("bind", "hub", "id_prefix", "number", "reply_http", "reply_ssh", "service",
                 "source", "wildcard")

    def __init__(self, hub: Hub, source: str, bind: str, number: int, *,
                 reply_ssh: bytes | None = None, reply_http: bytes | None = None) -> None:
        self.hub = hub
        self.source = source
        self.bind = bind
        self.number = number
        self.reply_ssh = reply_ssh
        self.reply_http = reply_http
        self.service = WELL_KNOWN.get(number, "tcp")
        self.id_prefix = f"{hub.sensor}\x1f{source}\x1f"
        self.wildcard = bind in ("0.0.0.0", "::", "")  # noqa: S104 - a comparison


def session_id(port: Port, ip: str, peer_port: int, accepted_ns: int, serial: int) -> str:
    """``make_id(sensor, source, ip, peer_port, accepted_ns, serial)``, spelled out with
    the sensor and source joined once per port: it is the costliest step of a connection."""
    key = f"{port.id_prefix}{ip}\x1f{peer_port}\x1f{accepted_ns}\x1f{serial}"
    return blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _plain_ip(ip: str) -> str:
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


def original_destination(sock: Any, family: int) -> tuple[str, int] | str:
    """The destination a connection had before an iptables/nftables REDIRECT (from
    conntrack), or the reason it is not known (``ENOENT``: no NAT entry, ``ENOPROTOOPT``:
    conntrack not loaded)."""
    try:
        if family == socket.AF_INET6:
            raw = sock.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
            port = struct.unpack_from("!H", raw, 2)[0]
            return _plain_ip(socket.inet_ntop(socket.AF_INET6, raw[8:24])), port
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        port = struct.unpack_from("!H", raw, 2)[0]
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    except (ValueError, struct.error):
        return "malformed"


class TcpConnection(asyncio.Protocol):
    """One accepted TCP connection: a ``connect`` event at once, the first payload as one
    event when it is whole (or at the pause, close, size cap or read time-out), a
    ``disconnect`` event with duration and bytes at the end."""

    __slots__ = (
        "buffer", "bytes_in", "bytes_out", "deadline", "dst_ip", "dst_port", "extra",
        "last_data", "mono", "peer_ip", "peer_port", "port", "reason", "reported",
        "service", "session", "started", "transport",
    )

    def __init__(self, port: Port) -> None:
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.buffer: bytes | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.reported = False
        self.reason = ""
        self.session = ""
        self.service = port.service
        self.deadline = 0.0
        self.mono = 0.0
        self.last_data = 0.0
        self.peer_ip = ""
        self.peer_port = 0
        self.dst_ip = ""
        self.dst_port = 0
        self.extra: dict[str, Any] | None = None
        self.started: dt.datetime | None = None

    # -- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes; they behave alike
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        port = self.port
        hub = port.hub
        limits = hub.limits
        mono = time.monotonic()
        self.mono = self.last_data = mono
        peer = transport.get_extra_info("peername")
        if not peer:  # already gone
            transport.abort()
            return
        self.peer_ip = ip = _plain_ip(peer[0])
        self.peer_port = peer[1]
        if hub.stopping:
            transport.abort()
            return
        if limits.accept_rate and not hub.accepts.take(mono):
            hub.count("closed over the accept rate")
            transport.abort()
            return
        if len(hub.pending) >= limits.pending_max:
            hub.count("closed while the pipeline was behind")
            transport.abort()
            return
        self.started = ts = hub.now()
        self._destination(transport)
        hub.serial += 1
        self.session = session_id(port, ip, self.peer_port, time.time_ns(), hub.serial)
        from_there = hub.per_source.get(ip, 0)
        over = 0 < limits.max_per_source <= from_there
        attrs = dict(self.extra) if self.extra else {}
        if over:
            attrs["rejected"] = "max_per_source"
        hub.push(self._event("connect", ts, attrs))
        if over:
            hub.count("closed over the per-source limit")
            self.reported = True
            self.reason = "max_per_source"
            self._disconnect()
            transport.abort()
            return
        hub.per_source[ip] = from_there + 1
        if limits.max_connections and len(hub.open) >= limits.max_connections:
            oldest = next(iter(hub.open.values()))
            hub.count("evicted the oldest connection at max_connections")
            oldest.close("evicted")
        hub.open[id(self)] = self
        self.deadline = mono + limits.read_timeout
        if port.reply_ssh is not None:
            self._write(port.reply_ssh)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.last_data = mono = time.monotonic()
        limits = self.port.hub.limits
        if self.reported:
            self.deadline = min(mono + limits.idle_timeout, self.mono + limits.max_duration)
            return
        buffer = data if self.buffer is None else self.buffer + data
        if len(buffer) >= limits.max_payload:
            self.buffer = buffer[:limits.max_payload]
            self._report_payload()
            return
        self.buffer = buffer
        if payload_complete(buffer, want_kexinit=self.port.reply_ssh is not None):
            self._report_payload()
        else:
            self.deadline = min(mono + limits.payload_gap, self.mono + limits.read_timeout)

    def eof_received(self) -> bool:
        if not self.reason:
            self.reason = "closed"
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.session or self.port.hub.open.pop(id(self), None) is None:
            return
        if not self.reason:
            self.reason = "closed" if exc is None else _reason(exc)
        self._finish()

    # -- time-outs and closing -----------------------------------------------------------

    def on_deadline(self, mono: float) -> None:
        limits = self.port.hub.limits
        if not self.reported:
            if self.buffer is not None and mono < self.mono + limits.read_timeout:
                self._report_payload()  # the peer paused: that was its first payload
                return
            self.close("read_timeout")
        elif mono >= self.mono + limits.max_duration:
            self.close("max_duration")
        else:
            self.close("idle_timeout")

    def close(self, reason: str) -> None:
        """End the connection from this side (time-out, eviction, shutdown)."""
        if self.port.hub.open.pop(id(self), None) is None:
            return
        self.reason = reason
        self._finish()
        if self.transport is not None:
            self.transport.abort()

    # -- reporting ----------------------------------------------------------------------

    def _finish(self) -> None:
        hub = self.port.hub
        left = hub.per_source.pop(self.peer_ip, 1) - 1
        if left > 0:
            hub.per_source[self.peer_ip] = left
        now = hub.now()
        if not self.reported and self.buffer is not None:
            self._report_payload(replying=False, now=now)
        self._disconnect(now)

    def _disconnect(self, now: dt.datetime | None = None) -> None:
        hub = self.port.hub
        start = self.started
        assert start is not None
        if now is None:
            now = hub.now()
        event = self._event("disconnect", now, {"reason": self.reason})
        event.duration = max(0.0, (now - start).total_seconds())
        event.bytes_in = self.bytes_in
        event.bytes_out = self.bytes_out
        hub.push(event)

    def _report_payload(self, replying: bool = True, now: dt.datetime | None = None) -> None:
        self.reported = True
        data = self.buffer or b""
        self.buffer = None
        port = self.port
        hub = port.hub
        service, attrs = describe(data)
        if service:
            self.service = service
        event = self._event("payload", now or hub.now(), attrs)
        event.payload = Payload(data)
        hub.push(event)
        limits = hub.limits
        self.deadline = min(self.last_data + limits.idle_timeout, self.mono + limits.max_duration)
        if replying and service == "http" and port.reply_http is not None:
            self._write(port.reply_http)
            self.reason = "replied"
            if self.transport is not None:
                self.transport.close()

    def _event(self, action: str, ts: dt.datetime, attrs: dict[str, Any]) -> Event:
        port = self.port
        return Event(
            id=f"{self.session}.{action[0]}",  # .c, .p, .d: unique as the session is
            ts=ts,
            sensor=port.hub.sensor,
            source=port.source,
            service=self.service,
            action=action,
            proto="tcp",
            src_ip=self.peer_ip,
            src_port=self.peer_port,
            dst_ip=self.dst_ip,
            dst_port=self.dst_port,
            session=self.session,
            attrs=attrs,
        )

    def _destination(self, transport: asyncio.Transport) -> None:
        port = self.port
        hub = port.hub
        if port.wildcard:
            local = transport.get_extra_info("sockname")
            self.dst_ip = _plain_ip(local[0]) if local else port.bind
        else:
            self.dst_ip = port.bind
        self.dst_port = port.number
        if not hub.limits.original_dst:
            return
        if hub.no_original_dst and self.mono < hub.no_original_dst_until:
            self.extra = hub.no_original_dst
            return
        sock = transport.get_extra_info("socket")
        found = original_destination(sock, sock.family)
        if isinstance(found, str):
            # conntrack is not tracking this host's connections: that holds for a while, so
            # it is asked again only every few seconds (a lookup that fails is not cheap)
            self.extra = hub.no_original_dst = {"original_dst": "unavailable",
                                                "original_dst_error": found}
            hub.no_original_dst_until = self.mono + ORIGINAL_DST_RETRY
        elif found != (self.dst_ip, self.dst_port):
            self.extra = {"listen_port": self.dst_port, "redirected": True}
            self.dst_ip, self.dst_port = found
            self.service = WELL_KNOWN.get(self.dst_port, "tcp")

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.bytes_out += len(data)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, "error").lower()
    return type(exc).__name__.lower()


class UdpPort(asyncio.DatagramProtocol):
    """One UDP port: a ``datagram`` event per datagram received, payload bounded."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = (port.bind, port.number)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.DatagramTransport, transport)
        self.transport = transport
        local = transport.get_extra_info("sockname")
        if local:
            self.local = (_plain_ip(local[0]), local[1])

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        port = self.port
        hub = port.hub
        if hub.stopping:
            return
        if not hub.datagrams.take(time.monotonic()):
            hub.count("UDP datagram dropped over udp_rate")
            return
        if len(hub.pending) >= hub.limits.pending_max:
            hub.count("UDP datagram dropped while the pipeline was behind")
            return
        ts = hub.now()
        ip = _plain_ip(str(addr[0]))
        kept = data[:hub.limits.max_payload]
        service, attrs = describe(kept)
        attrs["size"] = len(data)
        serial = hub.next_serial()
        hub.push(Event(
            id=make_id(hub.sensor, port.source, ip, addr[1], time.time_ns(), serial),
            ts=ts,
            sensor=hub.sensor,
            source=port.source,
            service=service or WELL_KNOWN.get(port.number, "udp"),
            action="datagram",
            proto="udp",
            src_ip=ip,
            src_port=addr[1],
            dst_ip=self.local[0],
            dst_port=self.local[1],
            bytes_in=len(data),
            payload=Payload(kept),
            attrs=attrs,
        ))

    def error_received(self, exc: Exception) -> None:
        self.port.hub.count(f"UDP error {_reason(exc)}")
