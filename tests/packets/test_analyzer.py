"""Frames to events: direction, requests inside flows, reassembly, damage."""

from __future__ import annotations

import collections
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from portolan.event import Event
from portolan.formats.base import ParseContext
from portolan.formats.pcap import read_file
from portolan.packets.analyzer import Analyzer, AnalyzerOptions
from portolan.packets.capfile import CaptureFile
from portolan.packets.decode import decode
from portolan.protocols import tls

S = 1_000_000


def _run(frames: list[bytes], options: AnalyzerOptions | None = None,
         link: int = 101) -> tuple[list[Event], Analyzer]:
    analyzer = Analyzer(sensor="t", source="test", id_key="k", options=options)
    for number, data in enumerate(frames, 1):
        analyzer.frame(number, 1700000000 * S + number * 1000, link, len(data), data)
    analyzer.finish()
    return analyzer.take(), analyzer


def _tcp(build: SimpleNamespace, a: str, b: str, ap: int, bp: int, flags: str, seq: int,
         payload: bytes = b"") -> bytes:
    return bytes(build.ipv4(a, b, 6, build.tcp(ap, bp, flags, seq, payload)))


def _conversation(build: SimpleNamespace, client: str, server: str, up: list[bytes],
                  down: list[bytes]) -> list[bytes]:
    """SYN, SYN-ACK, then the client's and server's data segments, then FINs."""
    frames = [_tcp(build, client, server, 40000, 80, "S", 0),
              _tcp(build, server, client, 80, 40000, "SA", 0)]
    cseq, sseq = 1, 1
    for i in range(max(len(up), len(down))):
        if i < len(up):
            frames.append(_tcp(build, client, server, 40000, 80, "PA", cseq, up[i]))
            cseq += len(up[i])
        if i < len(down):
            frames.append(_tcp(build, server, client, 80, 40000, "PA", sseq, down[i]))
            sseq += len(down[i])
    frames.append(_tcp(build, client, server, 40000, 80, "FA", cseq))
    frames.append(_tcp(build, server, client, 80, 40000, "FA", sseq))
    return frames


def test_outbound_flow_bytes_and_http_status(build: SimpleNamespace) -> None:
    req = b"GET /a?b=c HTTP/1.1\r\nHost: example.org\r\nUser-Agent: t/1\r\n\r\n"
    frames = _conversation(build, "192.168.1.5", "203.0.113.9", [req],
                           [b"HTTP/1.1 301 Moved\r\nLocation: /\r\n\r\n"])
    events, _ = _run(frames)
    [flow] = [e for e in events if e.action == "flow"]
    [request] = [e for e in events if e.action == "request"]
    assert (flow.direction, flow.src_ip, flow.dst_ip, flow.dst_port) == (
        "outbound", "192.168.1.5", "203.0.113.9", 80)
    assert flow.service == "http" and flow.attrs["app"] == "http"
    sizes = [len(f) for f in frames]
    # outbound: bytes_in is what the remote server sent
    assert flow.bytes_out == sum(sizes[i] for i in (0, 2, 4))
    assert flow.bytes_in == sum(sizes[i] for i in (1, 3, 5))
    assert flow.attrs["tcp_flags"] == "FSPA"
    assert request.attrs == {
        "method": "GET", "uri": "/a?b=c", "path": "/a", "http_version": "HTTP/1.1",
        "host": "example.org", "user_agent": "t/1", "status": 301, "flow": flow.id,
    }
    assert (request.src_ip, request.dst_port, request.direction) == ("192.168.1.5", 80,
                                                                     "outbound")


def test_inbound_when_a_remote_address_opens_to_a_local_one(build: SimpleNamespace) -> None:
    frames = _conversation(build, "203.0.113.9", "192.168.1.5", [b"hello"], [])
    events, _ = _run(frames)
    [flow] = events
    assert flow.direction == "inbound" and flow.src_ip == "203.0.113.9"
    assert flow.bytes_in == sum(len(frames[i]) for i in (0, 2, 4))  # what the remote sent
    # A public server's own address, configured: the same holds between public addresses.
    frames = _conversation(build, "198.51.100.1", "203.0.113.9", [b"x"], [])
    opts = AnalyzerOptions(local_networks=(), own_addresses=("203.0.113.9",))
    assert _run(frames, opts)[0][0].direction == "inbound"
    assert _run(frames, AnalyzerOptions(local_networks=()))[0][0].direction == "outbound"


def test_retransmitted_and_pipelined_requests(build: SimpleNamespace) -> None:
    two = (b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
           b"HEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    frames = _conversation(build, "10.0.0.1", "10.0.0.2", [two], [])
    frames.insert(3, frames[2])  # the same segment again: a retransmission
    events, analyzer = _run(frames)
    requests = [e for e in events if e.action == "request"]
    assert [(e.attrs["method"], e.attrs["uri"]) for e in requests] == [("GET", "/1"),
                                                                       ("HEAD", "/2")]
    assert len({e.id for e in requests}) == 2
    assert analyzer.counters["tcp retransmission: payload already analysed"] == 1


def _client_hello(shared_data: Path) -> bytes:
    for _, _, link, _, data in CaptureFile(shared_data / "pcap" / "ndpi_android.pcap"):
        pkt = decode(link, data, collections.Counter())
        if pkt and pkt.proto == 6 and tls.parse_client_hello(pkt.payload):
            hello = tls.parse_client_hello(pkt.payload)
            if hello is not None and hello.sni:
                return pkt.payload
    raise AssertionError("no ClientHello with a server name in the sample")


def test_client_hello_split_over_segments(build: SimpleNamespace, shared_data: Path) -> None:
    payload = _client_hello(shared_data)
    hello = tls.parse_client_hello(payload)
    assert hello is not None
    parts = [payload[:3], payload[3:40], payload[40:]]
    frames = _conversation(build, "10.0.0.1", "198.51.100.3", parts, [])
    events, _ = _run(frames)
    [request] = [e for e in events if e.action == "request"]
    assert request.service == "tls"
    assert request.attrs["tls_sni"] == hello.sni
    assert request.attrs["ja4"] == hello.ja4
    assert request.attrs["flow"] == next(e.id for e in events if e.action == "flow")


def test_dns_query_and_answer_make_one_event(build: SimpleNamespace) -> None:
    import struct

    def name(text: str) -> bytes:
        return b"".join(bytes([len(p)]) + p.encode() for p in text.split(".")) + b"\0"

    q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + name("example.net") + b"\0\x01\0\x01"
    a = (struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0) + name("example.net") + b"\0\x01\0\x01"
         + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + bytes([192, 0, 2, 1]))
    frames = [bytes(build.ipv4("10.0.0.1", "10.0.0.53", 17, build.udp(5000, 53, q))),
              bytes(build.ipv4("10.0.0.53", "10.0.0.1", 17, build.udp(53, 5000, a)))]
    events, _ = _run(frames)
    [request] = [e for e in events if e.action == "request"]
    assert request.service == "dns" and request.src_ip == "10.0.0.1"
    assert request.attrs["dns_qname"] == "example.net"
    assert request.attrs["dns_answers"] == ["192.0.2.1"]
    # only the answer captured: the question it repeats is still reported, client first
    events, _ = _run(frames[1:])
    [request] = [e for e in events if e.action == "request"]
    assert (request.src_ip, request.dst_port) == ("10.0.0.1", 53)


def test_icmp_flow(build: SimpleNamespace) -> None:
    ping = bytes(build.ipv4("10.0.0.1", "8.8.8.8", 1, b"\x08\x00\0\0\0\x01\0\x01"))
    pong = bytes(build.ipv4("8.8.8.8", "10.0.0.1", 1, b"\x00\x00\0\0\0\x01\0\x01"))
    [flow] = _run([ping, pong])[0]
    assert (flow.proto, flow.packets, flow.src_port) == ("icmp", 2, None)
    assert (flow.attrs["icmp_type"], flow.attrs["icmp_code"]) == (8, 0)


def test_a_capture_that_is_not_ip_says_so(tmp_path: Path, build: SimpleNamespace) -> None:
    path = build.write_pcap(tmp_path / "wifi.pcap", 105, [(i * 10**9, b"\x80\0" + bytes(30))
                                                          for i in range(5)])
    ctx = ParseContext()
    assert [e for b in read_file(path, ctx) for e in b] == []
    assert ctx.counters == {"not IP: link type 105 (802.11)": 5,
                            "not an IP capture: no IP packet in 5 frames": 1}


@pytest.mark.parametrize("name", ["ndpi_sites.pcapng", "forensicscontest_evidence05.pcap"])
def test_damaged_frames_never_crash(shared_data: Path, name: str) -> None:
    rng = random.Random(11)
    analyzer = Analyzer(sensor="t", source="t", id_key="k")
    for number, ts, link, size, data in CaptureFile(shared_data / "pcap" / name):
        damaged = bytearray(data)
        for _ in range(rng.randrange(6)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        analyzer.frame(number, ts, link, size, bytes(damaged[: rng.randrange(len(data) + 1)]))
    analyzer.finish()
    events = analyzer.take()
    assert events and analyzer.counters
    for e in events:  # still valid events
        assert e.ts.tzinfo is not None and e.id


def test_ids_follow_make_id(build: SimpleNamespace) -> None:
    """Flow ids are make_id(sensor, file key, "flow", first frame), request ids
    make_id(sensor, file key, frame, service, index): documented, stable positions."""
    from portolan.event import make_id

    req = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    events, _ = _run(_conversation(build, "10.0.0.1", "10.0.0.2", [req], []))
    flow = next(e for e in events if e.action == "flow")
    request = next(e for e in events if e.action == "request")
    assert flow.id == make_id("t", "k", "flow", 1)
    assert request.id == make_id("t", "k", 3, "http", 0)


def test_request_head_split_over_segments(build: SimpleNamespace) -> None:
    """The Host header in the segment after the request line still counts."""
    parts = [b"GET /split HTTP/1.1\r\n", b"User-Agent: t\r\nHost: late.example\r\n\r\n"]
    events, _ = _run(_conversation(build, "10.0.0.1", "10.0.0.2", parts, []))
    [request] = [e for e in events if e.action == "request"]
    assert (request.attrs["uri"], request.attrs["host"]) == ("/split", "late.example")
    # a head that never ends is still reported, with what it holds, when the flow ends
    events, _ = _run(_conversation(build, "10.0.0.1", "10.0.0.2",
                                   [b"GET /cut HTTP/1.1\r\nHost: h\r\n"], []))
    [request] = [e for e in events if e.action == "request"]
    assert (request.attrs["uri"], request.attrs["host"]) == ("/cut", "h")
