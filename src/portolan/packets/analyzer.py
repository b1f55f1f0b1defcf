"""From frames to events: flows, and the requests seen inside them.

:class:`Analyzer` takes frames (from a file or a live socket), decodes them, counts them
into the :class:`~portolan.packets.flows.FlowTable`, and recognises application data:

- **HTTP** requests on any TCP port (method, Host, path, User-Agent), each completed with
  the status of its response when the response is seen; a retransmitted request is
  recognised once. HTTP over UDP (SSDP ``M-SEARCH``/``NOTIFY``) is reported as ``ssdp``.
- **TLS** ClientHellos (server name, ALPN, versions, JA4), reassembled when they span
  several segments.
- **DNS** queries over UDP (ports 53, 5353, 5355), completed with the response's code
  and addresses when it is seen.

Each flow becomes one ``flow`` event when it ends; each request a ``request`` event whose
``attrs["flow"]`` is the id of its flow's event. Event ids come from ``id_key`` (the
capture file's fingerprint, or the live capture's identity) and frame numbers, so reading
a file again gives the same ids.

Direction: an address is *local* when it is one of the capturing host's own addresses or
inside ``local_networks``. A flow opened by a remote address towards a local one is
``inbound``; every other flow is ``outbound`` (the opener is taken as the local side when
the networks do not tell, as in a capture file of unknown origin). ``src_*`` is always the
opener, ``dst_*`` the other side; ``bytes_in`` is what the remote side sent. Enrichment
should look up the remote side: ``src_ip`` of inbound events, ``dst_ip`` of outbound ones.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from portolan.event import Event
from portolan.packets.decode import Packet, decode, ip_text, proto_name
from portolan.packets.flows import Flow, FlowTable, Timeouts
from portolan.protocols import dns, http, tls

__all__ = ["DEFAULT_LOCAL_NETWORKS", "Analyzer", "AnalyzerOptions"]

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Private, shared, loopback and link-local ranges: local unless configured otherwise.
DEFAULT_LOCAL_NETWORKS: Final = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10",
)
DNS_PORTS: Final = frozenset({53, 5353, 5355})
#: Bytes of a stream's start kept while waiting for the rest of a ClientHello or head.
REASSEMBLY_MAX: Final = 16384
#: Requests of one flow waiting for their response, at most.
PENDING_MAX: Final = 16
_TCP_FLAGS: Final = "FSRPAUEC"


@dataclass
class AnalyzerOptions:
    """What the analyzer looks for, and how it decides direction."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    local_networks: Sequence[str] = DEFAULT_LOCAL_NETWORKS
    own_addresses: Sequence[str] = ()
    """The capturing host's own addresses (live capture): local whatever the networks."""
    http: bool = True
    tls: bool = True
    dns: bool = True


def _ts(us: int) -> dt.datetime:
    # A double holds µs since the epoch to well under half a µs: the result is exact.
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC)


#: TCP flags as letters (``FSRPAUEC``), for every value of the flags byte.
_FLAGS_TEXT: Final = tuple(
    "".join(c for i, c in enumerate(_TCP_FLAGS) if value >> i & 1) for value in range(256)
)


class _App:
    """Application state of one flow."""

    __slots__ = ("dns", "done", "head", "pending", "service", "tls_buf", "tls_done")

    def __init__(self) -> None:
        self.service: str | None = None
        self.done = False
        """Nothing more to recognise in this flow: its data is no longer looked at."""
        self.head: tuple[bytes, bool, int, int] | None = None
        """A request head cut short: (bytes so far, direction, frame number, time)."""
        self.pending: collections.deque[Event] = collections.deque()
        self.dns: dict[int, Event] = {}
        self.tls_buf: bytes | None = None
        self.tls_done = False


class _Locality:
    """Is a packed address local? Cached, the cache bounded."""

    def __init__(self, networks: Sequence[str], own: Sequence[str]) -> None:
        self.v4: list[tuple[int, int]] = []
        self.v6: list[tuple[int, int]] = []
        for text in networks:
            net = ipaddress.ip_network(text, strict=False)
            ranges = self.v4 if net.version == 4 else self.v6
            ranges.append((int(net.network_address), int(net.netmask)))
        self.own = {ipaddress.ip_address(a.split("%")[0]).packed for a in own}
        self.cache: dict[bytes, bool] = {}

    def __call__(self, addr: bytes) -> bool:
        hit = self.cache.get(addr)
        if hit is not None:
            return hit
        value = int.from_bytes(addr, "big")
        ranges = self.v4 if len(addr) == 4 else self.v6
        local = addr in self.own or any(value & mask == net for net, mask in ranges)
        if len(self.cache) >= 65536:
            self.cache.clear()
        self.cache[addr] = local
        return local


class Analyzer:
    """Frames in, events out; see the module docstring."""

    def __init__(self, *, sensor: str, source: str, id_key: str,
                 options: AnalyzerOptions | None = None,
                 counters: collections.Counter[str] | None = None) -> None:
        self.options = options or AnalyzerOptions()
        self.sensor = sensor
        self.source = source
        self.id_key = id_key
        self.counters: collections.Counter[str] = (
            counters if counters is not None else collections.Counter()
        )
        self.table = FlowTable(self.options.timeouts)
        self.local = _Locality(self.options.local_networks, self.options.own_addresses)
        self.frames = 0
        self.ip_packets = 0
        self.flows = 0
        self.requests = 0
        self._out: list[Event] = []
        self._last_us = 0
        # make_id(sensor, id_key, ...) with the fixed part hashed once
        self._id_prefix = f"{sensor}\x1f{id_key}\x1f".encode("utf-8", "surrogatepass")
        self._flow_prefix = self._id_prefix + b"flow\x1f"
        self._names: dict[bytes, str] = {}

    def _id(self, *parts: object) -> str:
        """``make_id(sensor, id_key, *parts)``, cheaper."""
        tail = "\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(self._id_prefix + tail, digest_size=16).hexdigest()

    def _flow_id(self, number: int) -> str:
        """``make_id(sensor, id_key, "flow", number)``, cheaper still."""
        return hashlib.blake2b(self._flow_prefix + str(number).encode(),
                               digest_size=16).hexdigest()

    def _ip(self, packed: bytes) -> str:
        """Address as text, cached (the same few addresses come back again and again)."""
        text = self._names.get(packed)
        if text is None:
            if len(self._names) >= 65536:
                self._names.clear()
            text = self._names[packed] = ip_text(packed)
        return text

    # -- input -------------------------------------------------------------------------

    def frame(self, number: int, ts: int, link: int, size: int, data: bytes) -> None:
        """Take one frame: ``ts`` in µs since the epoch, ``size`` its length on the wire."""
        self.feed(((number, ts, link, size, data),))

    def feed(self, frames: Iterable[tuple[int, int, int, int, bytes]]) -> None:
        """Take frames: (number, ``ts`` in µs since the epoch, link type, length on the
        wire, data). One loop with everything it needs at hand: this is the hot path."""
        counters = self.counters
        table = self.table
        packet = table.packet
        flow_id = self._flow_id
        tcp_data = self._tcp_data
        udp_data = self._udp_data
        frames_n = ip_n = 0
        ts = self._last_us
        try:
            for number, ts, link, size, data in frames:
                frames_n += 1
                pkt = decode(link, data, counters)
                if pkt is None:
                    continue
                ip_n += 1
                flow, forward = packet(pkt, ts, size, number)
                if not flow.id:
                    flow.id = flow_id(number)
                payload = pkt.payload
                if payload:
                    proto = pkt.proto
                    if proto == 6:
                        app = flow.app
                        if app is not None and app.done:
                            pass
                        elif flow.new_data(forward, pkt.seq, len(payload)):
                            tcp_data(flow, forward, pkt, number, ts)
                        else:
                            counters["tcp retransmission: payload already analysed"] += 1
                    elif proto == 17:
                        udp_data(flow, forward, pkt, number, ts)
                if table.ended:
                    for ended in table.take_ended():
                        self._flow_event(ended)
        finally:
            self.frames += frames_n
            self.ip_packets += ip_n
            if ip_n:
                self._last_us = ts

    def tick(self, now: dt.datetime) -> None:
        """End the flows that are idle as of ``now`` (live capture, no packets for a while)."""
        us = (now - EPOCH) // dt.timedelta(microseconds=1)
        self.table.sweep(max(us, self._last_us))
        for ended in self.table.take_ended():
            self._flow_event(ended)

    def finish(self) -> None:
        """End of input: every open flow ends."""
        self.table.flush()
        for ended in self.table.take_ended():
            self._flow_event(ended)

    def take(self) -> list[Event]:
        """The events made since the last call."""
        out, self._out = self._out, []
        return out

    # -- direction ---------------------------------------------------------------------

    def _direction(self, flow: Flow) -> Literal["inbound", "outbound"]:
        if self.local(flow.b) and not self.local(flow.a):
            return "inbound"
        return "outbound"

    def _event(self, flow: Flow, client_is_a: bool, **kw: Any) -> Event:
        a, a_port, b, b_port = flow.a, flow.a_port, flow.b, flow.b_port
        if not client_is_a:
            a, a_port, b, b_port = b, b_port, a, a_port
        ports = flow.proto in (6, 17, 132)
        return Event(
            sensor=self.sensor, source=self.source, direction=self._direction(flow),
            proto=proto_name(flow.proto), src_ip=self._ip(a), dst_ip=self._ip(b),
            src_port=a_port if ports else None, dst_port=b_port if ports else None, **kw,
        )

    # -- flows -------------------------------------------------------------------------

    def _flow_event(self, flow: Flow) -> None:
        app: _App | None = flow.app
        if app is not None:
            if app.head is not None:  # the rest of the head never came: what there is
                data, forward, number, ts = app.head
                app.head = None
                self._http_requests(flow, forward, data, number, ts, final=True)
            self._out.extend(app.pending)
            self._out.extend(app.dns.values())
            app.pending.clear()
            app.dns.clear()
        direction = self._direction(flow)
        inbound = direction == "inbound"
        attrs: dict[str, Any] = {
            "end": flow.end,
            "packets_in": flow.pkts_ab if inbound else flow.pkts_ba,
            "packets_out": flow.pkts_ba if inbound else flow.pkts_ab,
        }
        if flow.proto == 6:
            attrs["tcp_flags"] = _FLAGS_TEXT[(flow.flags_ab | flow.flags_ba) & 0xFF]
        elif flow.first_type >= 0:
            attrs["icmp_type"], attrs["icmp_code"] = flow.first_type >> 8, flow.first_type & 0xFF
        proto = flow.proto
        service = app.service if app is not None and app.service else proto_name(proto)
        if app is not None and app.service:
            attrs["app"] = app.service
        self.flows += 1
        ports = proto in (6, 17, 132)
        first = flow.first_us
        self._out.append(Event(
            id=flow.id or self._flow_id(flow.first_frame),
            ts=_ts(first), sensor=self.sensor, source=self.source, service=service,
            action="flow", direction=direction, proto=proto_name(proto),
            src_ip=self._ip(flow.a), dst_ip=self._ip(flow.b),
            src_port=flow.a_port if ports else None, dst_port=flow.b_port if ports else None,
            duration=max(0, flow.last_us - first) / 1e6,
            bytes_in=flow.bytes_ab if inbound else flow.bytes_ba,
            bytes_out=flow.bytes_ba if inbound else flow.bytes_ab,
            packets=flow.pkts_ab + flow.pkts_ba, attrs=attrs,
        ))

    # -- application data --------------------------------------------------------------

    def _app(self, flow: Flow) -> _App:
        app: _App | None = flow.app
        if app is None:
            app = flow.app = _App()
        return app

    def _request(self, flow: Flow, client_is_a: bool, number: int, ts: int, service: str,
                 attrs: dict[str, Any], index: int = 0) -> Event:
        attrs["flow"] = flow.id
        self.requests += 1
        return self._event(
            flow, client_is_a, id=self._id(number, service, index),
            ts=_ts(ts), service=service, action="request", attrs=attrs,
        )

    def _tcp_data(self, flow: Flow, forward: bool, pkt: Packet, number: int, ts: int) -> None:
        data = pkt.payload
        opts = self.options
        app: _App | None = flow.app
        if app is not None and app.head is not None and app.head[1] == forward:
            # the next segment of a request head that was cut short
            head, _, first, first_ts = app.head
            app.head = None
            self._http_requests(flow, forward, head + data, first, first_ts)
            return
        if opts.http:
            if http.looks_like_request(data):
                self._http_requests(flow, forward, data, number, ts)
                return
            if data.startswith(b"HTTP/") and app is not None and app.pending:
                self._http_response(flow, data)
                return
        if opts.tls and (app is None or not app.tls_done):
            self._tls(flow, forward, data, number, ts)

    def _http_requests(self, flow: Flow, forward: bool, data: bytes, number: int,
                       ts: int, final: bool = False) -> None:
        app = self._app(flow)
        app.service = app.service or "http"
        index = 0
        while data and index < PENDING_MAX:
            req = http.parse_request(data)
            if req is None and not final and index == 0 and b"\n" not in data:
                app.head = (data, forward, number, ts)  # the request line goes on
                return
            if req is None:
                if index == 0:
                    self.counters["http: request line not recognised"] += 1
                return
            if not req.complete and not final and index == 0 and len(data) < http.HEAD_MAX:
                # The head goes on in the next segment (Host may be there): wait for it.
                app.head = (data, forward, number, ts)
                return
            event = self._request(flow, forward, number, ts, "http", req.attrs(), index)
            if len(app.pending) >= PENDING_MAX:
                self._out.append(app.pending.popleft())
            app.pending.append(event)
            index += 1
            # Pipelined requests: another head may follow a head without a body.
            if not req.complete or req.header("content-length") not in (None, "0"):
                return
            data = data[req.head_size:]
            if not http.looks_like_request(data):
                return

    def _http_response(self, flow: Flow, data: bytes) -> None:
        status = http.response_status(data)
        app = self._app(flow)
        if status is None or status < 200:  # 100 Continue: the real status follows
            return
        event = app.pending.popleft()
        event.attrs["status"] = status
        self._out.append(event)

    def _tls(self, flow: Flow, forward: bool, data: bytes, number: int, ts: int) -> None:
        app = self._app(flow)
        buf = app.tls_buf
        if buf is None:
            if not tls.looks_like_tls(data):
                app.tls_done = True
                # The opener's first bytes after a handshake we saw are neither HTTP nor
                # TLS: nothing here to recognise, later segments are not looked at.
                app.done = forward and flow.isn >= 0 and app.service is None
                return
            buf = data
        else:
            buf = buf + data
        if len(buf) > REASSEMBLY_MAX:
            self.counters["tls: client hello larger than the reassembly limit"] += 1
            app.tls_done, app.tls_buf = True, None
            return
        need = tls.hello_size(buf)
        if need is not None and len(buf) < need:
            app.tls_buf = buf  # the rest of the ClientHello is in the next segments
            return
        hello = tls.parse_client_hello(buf)
        if hello is None:
            if need is not None:
                self.counters["tls: malformed client hello"] += 1
                app.tls_done, app.tls_buf = True, None
            elif buf[5:6] not in (b"", b"\x01"):
                app.tls_done, app.tls_buf = True, None  # a handshake, not a ClientHello
            else:
                app.tls_buf = buf
            return
        app.tls_done, app.tls_buf = True, None
        app.service = app.service or "tls"
        app.done = app.service == "tls"  # encrypted from here on
        self._out.append(self._request(flow, forward, number, ts, "tls", hello.attrs()))

    def _udp_data(self, flow: Flow, forward: bool, pkt: Packet, number: int, ts: int) -> None:
        data = pkt.payload
        opts = self.options
        if opts.dns and (pkt.dport in DNS_PORTS or pkt.sport in DNS_PORTS):
            msg = dns.parse_message(data)
            if msg is None:
                self.counters["dns: malformed message"] += 1
                return
            self._dns(flow, forward, msg, number, ts)
            return
        if opts.http and http.looks_like_request(data):
            req = http.parse_request(data)
            if req is not None:
                app = self._app(flow)
                app.service = app.service or "ssdp"
                self._out.append(self._request(flow, forward, number, ts, "ssdp", req.attrs()))

    def _dns(self, flow: Flow, forward: bool, msg: dns.DnsMessage, number: int,
             ts: int) -> None:
        app = self._app(flow)
        app.service = app.service or "dns"
        if not msg.response:
            if not msg.questions:
                return
            attrs = msg.attrs()
            attrs["dns_id"] = msg.id
            event = self._request(flow, forward, number, ts, "dns", attrs)
            old = app.dns.pop(msg.id, None)
            if old is not None:
                self._out.append(old)
            elif len(app.dns) >= PENDING_MAX:
                self._out.append(app.dns.pop(next(iter(app.dns))))
            app.dns[msg.id] = event
            return
        query = app.dns.pop(msg.id, None)
        if query is None:
            # Only the answer was captured: report the question it repeats.
            if not msg.questions:
                return
            attrs = msg.attrs()
            attrs["dns_id"] = msg.id
            self._out.append(self._request(flow, not forward, number, ts, "dns", attrs))
            return
        answer = msg.attrs()
        for key in ("dns_rcode", "dns_answers"):
            if key in answer:
                query.attrs[key] = answer[key]
        self._out.append(query)

