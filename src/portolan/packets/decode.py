"""Decoding one frame: link layer, IPv4/IPv6, then TCP, UDP or ICMP.

:func:`decode` turns the bytes of a frame into a :class:`Packet` (addresses as packed
bytes, ports, TCP flags and sequence number, the transport payload), or None. A frame
that is not IP (ARP, STP, 802.11 management) or that is cut short or malformed is counted
by reason in the ``counters`` it is given, and skipped; nothing here raises on bad input.

Link types: Ethernet (with 802.1Q/802.1ad VLAN tags), Linux cooked capture (SLL, SLL2),
raw IP (v4 or v6), BSD loopback (NULL and LOOP). IPv4 fragments are counted and not
reassembled: the first fragment still gives its ports, later ones are skipped. IPv6
extension headers are walked (hop-by-hop, routing, fragment, destination options, AH).
The transport payload ends where the IP length says, so Ethernet padding never counts as
data.
"""

from __future__ import annotations

import collections
import socket
import struct
from typing import Final, NamedTuple

__all__ = [
    "LINK_TYPES",
    "Packet",
    "decode",
    "ip_text",
    "proto_name",
]

#: Link types read, by pcap LINKTYPE number.
LINK_TYPES: Final = {
    0: "BSD loopback",
    1: "Ethernet",
    12: "raw IP",
    101: "raw IP",
    108: "OpenBSD loopback",
    113: "Linux cooked (SLL)",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked (SLL2)",
}
#: Link types known not to carry IP frames as such (reported as "not IP").
NOT_IP_LINKS: Final = {105: "802.11", 127: "802.11 radiotap", 163: "802.11 AVS",
                       119: "802.11 Prism", 192: "PPI"}

_PROTO_NAMES: Final = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp", 47: "gre", 50: "esp",
                       51: "ah", 132: "sctp", 2: "igmp", 41: "ipv6", 4: "ipip", 89: "ospf"}
_ETHERTYPES: Final = {0x0806: "ARP", 0x88CC: "LLDP", 0x888E: "EAPOL", 0x8035: "RARP",
                      0x88E5: "MACsec", 0x8847: "MPLS", 0x8864: "PPPoE"}
_IPV6_EXT: Final = frozenset({0, 43, 60, 135, 139, 140})
_VLAN: Final = frozenset({0x8100, 0x88A8, 0x9100})

_u16 = struct.Struct("!H").unpack_from
_tcp = struct.Struct("!HHIIBB").unpack_from
_ports = struct.Struct("!HH").unpack_from


class Packet(NamedTuple):
    """One decoded IP packet: what the flow table and the recognisers need."""

    src: bytes
    """Source address, packed (4 bytes for IPv4, 16 for IPv6)."""
    dst: bytes
    """Destination address, packed."""
    proto: int
    """IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6...)."""
    sport: int
    """Source port (ICMP: type; 0 when the protocol has none)."""
    dport: int
    """Destination port (ICMP: code; 0 when the protocol has none)."""
    flags: int
    """TCP flags (FIN 1, SYN 2, RST 4, PSH 8, ACK 16); 0 for others."""
    seq: int
    """TCP sequence number; 0 for others."""
    payload: bytes
    """Transport payload as captured (may be shorter than sent when the snap length cut it)."""
    ip_len: int
    """Length of the IP packet (header included), from its header."""


def proto_name(proto: int) -> str:
    """``tcp``, ``udp``, ``icmp``... or the number as text."""
    return _PROTO_NAMES.get(proto) or str(proto)


def ip_text(packed: bytes) -> str:
    """A packed address as text."""
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def decode(link: int, data: bytes, counters: collections.Counter[str]) -> Packet | None:
    """The IP packet in one frame of link type ``link``, or None (counted by reason)."""
    n = len(data)
    if link == 1:
        if n < 14:
            counters["truncated: ethernet header"] += 1
            return None
        etype = (data[12] << 8) | data[13]
        if etype == 0x0800 and n >= 34 and data[14] == 0x45 and not data[20] & 0x3F \
                and not data[21]:
            # The common case, inline: IPv4 without options, not a fragment, TCP or UDP.
            total = (data[16] << 8) | data[17]
            end = 14 + total
            if end > n:
                end = n
            proto = data[23]
            if proto == 6 and total >= 40 and end >= 54:
                sport, dport, seq, _ack, doff, flags = _tcp(data, 34)
                if doff >= 0x50:
                    start = 34 + (doff >> 4) * 4
                    return Packet(data[26:30], data[30:34], 6, sport, dport, flags, seq,
                                  data[start:end] if start < end else b"", total)
            elif proto == 17 and total >= 28 and end >= 42:
                sport, dport = _ports(data, 34)
                return Packet(data[26:30], data[30:34], 17, sport, dport, 0, 0, data[42:end],
                              total)
        off = 14
        while etype in _VLAN:
            if n < off + 4:
                counters["truncated: vlan tag"] += 1
                return None
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        if etype == 0x0800:
            return _ipv4(data, off, counters)
        if etype == 0x86DD:
            return _ipv6(data, off, counters)
        _not_ip(etype, counters)
        return None
    if link == 113:  # Linux cooked v1: 16-byte header, protocol last
        if n < 16:
            counters["truncated: linux cooked header"] += 1
            return None
        etype = (data[14] << 8) | data[15]
        off = 16
    elif link == 276:  # Linux cooked v2: 20-byte header, protocol first
        if n < 20:
            counters["truncated: linux cooked header"] += 1
            return None
        etype = (data[0] << 8) | data[1]
        off = 20
    elif link in (12, 101, 228, 229):
        if n < 1:
            counters["truncated: empty frame"] += 1
            return None
        version = data[0] >> 4
        etype = 0x0800 if version == 4 else 0x86DD if version == 6 else -1
        off = 0
    elif link in (0, 108):
        if n < 4:
            counters["truncated: loopback header"] += 1
            return None
        family = struct.unpack_from("!I" if link == 108 else "=I", data)[0]
        if family > 0xFFFF:  # written on a machine of the other byte order
            family = struct.unpack_from("<I" if link == 108 else "!I", data)[0]
        etype = 0x0800 if family == 2 else 0x86DD if family in (10, 24, 28, 30) else -1
        off = 4
    else:
        kind = NOT_IP_LINKS.get(link)
        counters[f"not IP: link type {link}" + (f" ({kind})" if kind else "")] += 1
        return None
    if etype == 0x0800:
        return _ipv4(data, off, counters)
    if etype == 0x86DD:
        return _ipv6(data, off, counters)
    _not_ip(etype, counters)
    return None


def _not_ip(etype: int, counters: collections.Counter[str]) -> None:
    if etype < 0:
        counters["not IP: unknown IP version"] += 1
    elif etype < 0x600:
        counters["not IP: 802.3 LLC (STP, CDP...)"] += 1
    else:
        name = _ETHERTYPES.get(etype)
        counters[f"not IP: ethertype 0x{etype:04x}" + (f" ({name})" if name else "")] += 1


def _ipv4(data: bytes, off: int, counters: collections.Counter[str]) -> Packet | None:
    n = len(data)
    if n < off + 20:
        counters["truncated: ipv4 header"] += 1
        return None
    vihl = data[off]
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20:
        counters["malformed: ipv4 header"] += 1
        return None
    total = (data[off + 2] << 8) | data[off + 3]
    if total < ihl:
        counters["malformed: ipv4 length"] += 1
        return None
    end = off + total
    if end > n:
        end = n  # cut by the snap length: keep what was captured
    frag = ((data[off + 6] & 0x1F) << 8) | data[off + 7]
    proto = data[off + 9]
    src = data[off + 12 : off + 16]
    dst = data[off + 16 : off + 20]
    if frag or data[off + 6] & 0x20:
        counters["ipv4 fragment (not reassembled)"] += 1
        if frag:  # not the first fragment: no transport header here
            return Packet(src, dst, proto, 0, 0, 0, 0, b"", total)
    return _transport(data, off + ihl, end, src, dst, proto, total, counters)


def _ipv6(data: bytes, off: int, counters: collections.Counter[str]) -> Packet | None:
    n = len(data)
    if n < off + 40:
        counters["truncated: ipv6 header"] += 1
        return None
    if data[off] >> 4 != 6:
        counters["malformed: ipv6 header"] += 1
        return None
    plen = (data[off + 4] << 8) | data[off + 5]
    proto = data[off + 6]
    src = data[off + 8 : off + 24]
    dst = data[off + 24 : off + 40]
    total = plen + 40
    end = min(off + total, n)
    pos = off + 40
    for _ in range(8):  # extension headers, bounded
        if proto in _IPV6_EXT:
            if end < pos + 8:
                counters["truncated: ipv6 extension header"] += 1
                return None
            proto, hlen = data[pos], (data[pos + 1] + 1) * 8
            pos += hlen
        elif proto == 44:  # fragment header
            if end < pos + 8:
                counters["truncated: ipv6 extension header"] += 1
                return None
            counters["ipv6 fragment (not reassembled)"] += 1
            nxt = data[pos]
            if ((data[pos + 2] << 8) | data[pos + 3]) & 0xFFF8:
                return Packet(src, dst, nxt, 0, 0, 0, 0, b"", total)
            proto = nxt
            pos += 8
        elif proto == 51:  # AH: length in 4-byte units
            if end < pos + 8:
                counters["truncated: ipv6 extension header"] += 1
                return None
            proto, hlen = data[pos], (data[pos + 1] + 2) * 4
            pos += hlen
        else:
            break
    if pos > end:
        counters["truncated: ipv6 extension header"] += 1
        return None
    return _transport(data, pos, end, src, dst, proto, total, counters)


def _transport(data: bytes, pos: int, end: int, src: bytes, dst: bytes, proto: int,
               total: int, counters: collections.Counter[str]) -> Packet | None:
    if proto == 6:
        if end < pos + 20:
            counters["truncated: tcp header"] += 1
            return None
        sport, dport, seq, _ack, doff, flags = _tcp(data, pos)
        hlen = (doff >> 4) * 4
        if hlen < 20:
            counters["malformed: tcp header length"] += 1
            return None
        start = pos + hlen
        payload = data[start:end] if start < end else b""
        return Packet(src, dst, 6, sport, dport, flags, seq, payload, total)
    if proto == 17:
        if end < pos + 8:
            counters["truncated: udp header"] += 1
            return None
        sport, dport = _ports(data, pos)
        return Packet(src, dst, 17, sport, dport, 0, 0, data[pos + 8 : end], total)
    if proto in (1, 58):
        if end < pos + 2:
            counters["truncated: icmp header"] += 1
            return None
        return Packet(src, dst, proto, data[pos], data[pos + 1], 0, 0, b"", total)
    return Packet(src, dst, proto, 0, 0, 0, 0, b"", total)
