"""Decoding frames of every link type read, and the damaged ones that must not crash."""

from __future__ import annotations

import collections
import random
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from portolan.packets.capfile import CaptureFile
from portolan.packets.decode import Packet, decode, ip_text, proto_name


def _decode(link: int, data: bytes) -> tuple[Packet | None, collections.Counter[str]]:
    counters: collections.Counter[str] = collections.Counter()
    return decode(link, data, counters), counters


@pytest.fixture
def segment(build: SimpleNamespace) -> bytes:
    return build.ipv4("192.0.2.1", "198.51.100.7", 6,
                      build.tcp(40000, 80, "PA", seq=7, payload=b"GET / HTTP/1.1\r\n\r\n"))


def _check(pkt: Packet | None) -> None:
    assert pkt is not None
    assert (ip_text(pkt.src), ip_text(pkt.dst)) == ("192.0.2.1", "198.51.100.7")
    assert (pkt.proto, pkt.sport, pkt.dport, pkt.seq, pkt.flags) == (6, 40000, 80, 7, 0x18)
    assert pkt.payload == b"GET / HTTP/1.1\r\n\r\n"


def test_ethernet(build: SimpleNamespace, segment: bytes) -> None:
    pkt, counters = _decode(1, build.eth(segment))
    _check(pkt)
    assert not counters


def test_vlan_tags(build: SimpleNamespace, segment: bytes) -> None:
    pkt, _ = _decode(1, build.eth(segment, vlans=[100, 200], etype=0x0800))
    _check(pkt)


def test_linux_cooked_v1_and_v2(segment: bytes) -> None:
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800)
    _check(_decode(113, sll + segment)[0])
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02" * 8)
    _check(_decode(276, sll2 + segment)[0])


@pytest.mark.parametrize("link", [12, 101, 228])
def test_raw_ip(segment: bytes, link: int) -> None:
    _check(_decode(link, segment)[0])


@pytest.mark.parametrize(("link", "header"), [
    (0, struct.pack("=I", 2)),  # BSD loopback: host byte order
    (0, struct.pack(">I" if struct.pack("=I", 1)[0] else "<I", 2)),  # from the other order
    (108, struct.pack("!I", 2)),  # OpenBSD loopback: network order
])
def test_loopback(segment: bytes, link: int, header: bytes) -> None:
    _check(_decode(link, header + segment)[0])


def test_ethernet_padding_is_not_payload(build: SimpleNamespace) -> None:
    ip = build.ipv4("10.0.0.1", "10.0.0.2", 6, build.tcp(1, 2, "A"))
    pkt, _ = _decode(1, build.eth(ip) + b"\0" * 6)  # padded to the 60-byte minimum
    assert pkt is not None and pkt.payload == b"" and pkt.ip_len == 40


def test_ipv6_with_extension_headers(build: SimpleNamespace) -> None:
    hop = bytes([60, 0]) + b"\x01\x04\0\0\0\0"  # hop-by-hop -> destination options
    dest = bytes([17, 0]) + b"\x01\x04\0\0\0\0"  # destination options -> UDP
    ip = build.ipv6("2001:db8::1", "2001:db8::2", 0, build.udp(5353, 5353, b"q"), hop + dest)
    pkt, counters = _decode(1, build.eth(ip))
    assert pkt is not None and not counters
    assert (ip_text(pkt.src), pkt.proto, pkt.sport, pkt.payload) == ("2001:db8::1", 17, 5353,
                                                                      b"q")
    assert pkt.ip_len == len(ip)


def test_ipv6_fragments(build: SimpleNamespace) -> None:
    first = bytes([6, 0, 0, 0]) + b"\0\0\0\x2a"  # offset 0, more fragments
    ip = build.ipv6("2001:db8::1", "2001:db8::2", 44, build.tcp(1234, 443, "S"), first)
    pkt, counters = _decode(101, ip)
    assert pkt is not None and (pkt.proto, pkt.dport) == (6, 443)
    later = bytes([6, 0, 0x05, 0xA8]) + b"\0\0\0\x2a"  # offset 181 * 8
    pkt, counters = _decode(101, build.ipv6("2001:db8::1", "2001:db8::2", 44, b"x" * 16, later))
    assert pkt is not None and (pkt.proto, pkt.sport, pkt.dport) == (6, 0, 0)
    assert counters == {"ipv6 fragment (not reassembled)": 1}


def test_ipv4_fragments_counted_first_keeps_ports(build: SimpleNamespace) -> None:
    first = build.ipv4("10.0.0.1", "10.0.0.2", 17, build.udp(53, 5000, b"a" * 20), mf=True)
    pkt, counters = _decode(101, first)
    assert pkt is not None and (pkt.sport, pkt.dport) == (53, 5000)
    assert counters == {"ipv4 fragment (not reassembled)": 1}
    later = build.ipv4("10.0.0.1", "10.0.0.2", 17, b"b" * 20, frag=3)
    pkt, counters = _decode(101, later)
    assert pkt is not None and (pkt.proto, pkt.sport, pkt.payload) == (17, 0, b"")


def test_icmp(build: SimpleNamespace) -> None:
    pkt, _ = _decode(101, build.ipv4("10.0.0.1", "10.0.0.2", 1, b"\x08\x00\0\0\0\x01\0\x01"))
    assert pkt is not None and (proto_name(pkt.proto), pkt.sport, pkt.dport) == ("icmp", 8, 0)


@pytest.mark.parametrize(("link", "data", "reason"), [
    (1, b"\x00" * 10, "truncated: ethernet header"),
    (1, b"\x02" * 12 + b"\x08\x06" + b"\0" * 28, "not IP: ethertype 0x0806 (ARP)"),
    (1, b"\x02" * 12 + b"\x00\x26" + b"\x42\x42\x03" + b"\0" * 35,
     "not IP: 802.3 LLC (STP, CDP...)"),
    (1, b"\x02" * 12 + b"\x08\x00" + b"\x45\x00", "truncated: ipv4 header"),
    (1, b"\x02" * 12 + b"\x08\x00" + b"\x46" + b"\0" * 19, "malformed: ipv4 length"),
    (1, b"\x02" * 12 + b"\x08\x00" + b"\x43" + b"\0" * 19, "malformed: ipv4 header"),
    (1, b"\x02" * 12 + b"\x86\xdd" + b"\x60" + b"\0" * 20, "truncated: ipv6 header"),
    (101, b"\x70" + b"\0" * 30, "not IP: unknown IP version"),
    (105, b"\x08\x00" + b"\0" * 30, "not IP: link type 105 (802.11)"),
    (147, b"\0" * 30, "not IP: link type 147"),
    (113, b"\0" * 10, "truncated: linux cooked header"),
])
def test_bad_frames_are_counted_by_reason(link: int, data: bytes, reason: str) -> None:
    pkt, counters = _decode(link, data)
    assert pkt is None
    assert counters == {reason: 1}


def test_truncated_transport_headers(build: SimpleNamespace) -> None:
    tcp = build.ipv4("10.0.0.1", "10.0.0.2", 6, b"\0" * 10)
    assert _decode(101, tcp)[1] == {"truncated: tcp header": 1}
    udp = build.ipv4("10.0.0.1", "10.0.0.2", 17, b"\0" * 4)
    assert _decode(101, udp)[1] == {"truncated: udp header": 1}
    bad_off = build.ipv4("10.0.0.1", "10.0.0.2", 6, b"\0" * 12 + b"\x20" + b"\0" * 7)
    assert _decode(101, bad_off)[1] == {"malformed: tcp header length": 1}


def test_random_damage_never_raises(shared_data: Path) -> None:
    """Every frame of a real capture, cut short and flipped at random, decodes or is
    counted; nothing raises."""
    rng = random.Random(7)
    counters: collections.Counter[str] = collections.Counter()
    frames = list(CaptureFile(shared_data / "pcap" / "ndpi_android.pcap"))
    for _, _, link, _, data in frames:
        for _ in range(20):
            damaged = bytearray(data[: rng.randrange(len(data) + 1)])
            for _ in range(rng.randrange(4)):
                if damaged:
                    damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            decode(link, bytes(damaged), counters)
    assert sum(counters.values()) > 0
