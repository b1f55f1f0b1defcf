"""Building real frames and capture files byte by byte, for the decoder's odd cases."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

import pytest


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp(sport: int, dport: int, flags: str = "", seq: int = 1000, payload: bytes = b"") -> bytes:
    bits = sum({"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}[c] for c in flags)
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, bits, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src: str, dst: str, proto: int, body: bytes, *, frag: int = 0, mf: bool = False) -> bytes:
    flags_frag = (0x2000 if mf else 0) | frag
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, flags_frag, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))
    head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
    return head + body


def ipv6(src: str, dst: str, proto: int, body: bytes, ext: bytes = b"") -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(body), proto, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + ext + body


def eth(ip: bytes, vlans: Iterable[int] = (), etype: int | None = None) -> bytes:
    if etype is None:
        etype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    tags = b"".join(struct.pack("!HH", 0x8100, v) for v in vlans)
    return b"\x02" * 6 + b"\x04" * 6 + tags + struct.pack("!H", etype) + ip


def write_pcap(path: Path, link: int, frames: Iterable[tuple[int, bytes]], *,
               order: str = "<", nano: bool = False) -> Path:
    """``frames``: (time in nanoseconds since the epoch, data)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, link)]
    for ts, data in frames:
        sec, ns = divmod(ts, 1_000_000_000)
        frac = ns if nano else ns // 1000
        out.append(struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def write_pcapng(path: Path, interfaces: list[tuple[int, int | None]],
                 packets: Iterable[tuple[int, int, bytes]], *, order: str = "<") -> Path:
    """``interfaces``: (link type, if_tsresol byte or None); ``packets``: (interface,
    timestamp in that interface's units, data)."""
    out = [_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for link, resol in interfaces:
        opts = b""
        if resol is not None:
            opts = struct.pack(order + "HH", 9, 1) + bytes([resol]) + b"\0\0\0"
            opts += struct.pack(order + "HH", 0, 0)
        out.append(_block(order, 1, struct.pack(order + "HHI", link, 0, 65535) + opts))
    for iface, ts, data in packets:
        out.append(_block(order, 6, struct.pack(order + "IIIII", iface, ts >> 32,
                                                 ts & 0xFFFFFFFF, len(data), len(data)) + data))
    path.write_bytes(b"".join(out))
    return path


@pytest.fixture
def build() -> SimpleNamespace:
    """Frame and file builders: tcp, udp, ipv4, ipv6, eth, write_pcap, write_pcapng."""
    return SimpleNamespace(tcp=tcp, udp=udp, ipv4=ipv4, ipv6=ipv6, eth=eth,
                           write_pcap=write_pcap, write_pcapng=write_pcapng)
