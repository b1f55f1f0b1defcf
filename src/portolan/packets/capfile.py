"""Reading capture files: pcap (both byte orders, micro- and nanosecond) and pcapng.

:class:`CaptureFile` yields one :data:`Frame` per packet: its number in the file (from 1,
as Wireshark counts), its time in microseconds since the epoch, its link type, its length
on the wire, and the bytes captured. The file is read in large chunks, so memory does not
grow with the file. A record cut short at the end of the file (a capture still being
written, a truncated download) ends the reading and is counted, never raised.

pcapng files may hold several sections and interfaces, each with its own link type,
time resolution and offset; unknown blocks are skipped.
"""

from __future__ import annotations

import collections
import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

__all__ = ["CaptureError", "CaptureFile", "Frame", "fingerprint"]

#: (frame number, time in µs since the epoch, link type, length on the wire, captured bytes)
Frame = tuple[int, int, int, int, bytes]

#: Bytes of the file's start that identify it (event ids are built on this).
FINGERPRINT_BYTES: Final = 4096
_CHUNK: Final = 1 << 20
#: A record larger than this is taken as corruption, not as a packet.
RECORD_MAX: Final = 1 << 24

_PCAP_MAGIC: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 1),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1),
    b"\x4d\x3c\xb2\xa1": ("<", 1000),  # nanoseconds: divide by 1000
    b"\xa1\xb2\x3c\x4d": (">", 1000),
}
_PCAPNG_SHB: Final = b"\x0a\x0d\x0d\x0a"


class CaptureError(Exception):
    """A file that is not a capture Portolan reads (says which file and why)."""


def fingerprint(head: bytes) -> str:
    """Identity of a capture file from its first bytes (header and first packets)."""
    return hashlib.blake2b(head[:FINGERPRINT_BYTES], digest_size=8).hexdigest()


class CaptureFile:
    """Frames of one pcap or pcapng file, read once from start to end."""

    def __init__(self, path: Path, counters: collections.Counter[str] | None = None) -> None:
        self.path = path
        self.counters: collections.Counter[str] = (
            counters if counters is not None else collections.Counter()
        )
        with path.open("rb") as f:
            head = f.read(FINGERPRINT_BYTES)
        self.fingerprint = fingerprint(head)
        if head[:4] in _PCAP_MAGIC:
            self.kind = "pcap"
        elif head[:4] == _PCAPNG_SHB:
            self.kind = "pcapng"
        else:
            raise CaptureError(
                f"{path}: not a pcap or pcapng file (it starts with {head[:4].hex() or 'nothing'})"
            )
        self.link_types: set[int] = set()
        """Link types seen so far (pcapng files may have several)."""

    def __iter__(self) -> Iterator[Frame]:
        with self.path.open("rb") as f:
            if self.kind == "pcap":
                yield from self._pcap(f)
            else:
                yield from self._pcapng(f)

    def _truncated(self, what: str) -> None:
        self.counters[f"truncated file: {what}"] += 1

    # -- pcap --------------------------------------------------------------------------

    def _pcap(self, f: BinaryIO) -> Iterator[Frame]:
        header = f.read(24)
        if len(header) < 24:
            self._truncated("pcap header")
            return
        order, divisor = _PCAP_MAGIC[header[:4]]
        link = struct.unpack_from(order + "I", header, 20)[0] & 0x0FFFFFFF
        self.link_types.add(link)
        record = struct.Struct(order + "IIII")
        unpack = record.unpack_from
        buf = b""
        pos = 0
        number = 0
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            buf = buf[pos:] + chunk if pos < len(buf) else chunk
            pos = 0
            end = len(buf)
            while pos + 16 <= end:
                sec, frac, incl, orig = unpack(buf, pos)
                if incl > RECORD_MAX:
                    self.counters["corrupt record (length too large)"] += 1
                    return
                stop = pos + 16 + incl
                if stop > end:
                    break
                number += 1
                us = sec * 1_000_000 + (frac // divisor if divisor != 1 else frac)
                yield number, us, link, orig, buf[pos + 16 : stop]
                pos = stop
        if pos < len(buf):
            self._truncated("last record cut short")

    # -- pcapng ------------------------------------------------------------------------

    def _pcapng(self, f: BinaryIO) -> Iterator[Frame]:
        order = "<"
        # Per interface of the current section: (link type, units per second, offset s).
        interfaces: list[tuple[int, int, int]] = []
        number = 0
        buf = b""
        pos = 0
        eof = False
        while True:
            if len(buf) - pos < 12 and not eof:
                more = f.read(_CHUNK)
                eof = not more
                buf = buf[pos:] + more
                pos = 0
            if len(buf) - pos < 12:
                if len(buf) > pos:
                    self._truncated("last block cut short")
                return
            btype_raw = buf[pos : pos + 4]
            if btype_raw == _PCAPNG_SHB:
                bom = buf[pos + 8 : pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    self.counters["corrupt pcapng section header"] += 1
                    return
                interfaces = []
            btype, blen = struct.unpack_from(order + "II", buf, pos)
            if blen < 12 or blen > RECORD_MAX or blen % 4:
                self.counters["corrupt pcapng block length"] += 1
                return
            while len(buf) - pos < blen and not eof:
                more = f.read(max(_CHUNK, blen))
                eof = not more
                buf = buf[pos:] + more
                pos = 0
            if len(buf) - pos < blen:
                self._truncated("last block cut short")
                return
            body = pos + 8
            if btype == 6:  # enhanced packet block
                iface, hi, lo, incl, orig = struct.unpack_from(order + "IIIII", buf, body)
                if iface >= len(interfaces) or 28 + incl > blen:
                    self.counters["corrupt pcapng packet block"] += 1
                else:
                    number += 1
                    link, rate, offset = interfaces[iface]
                    ticks = (hi << 32) | lo
                    us = ticks * 1_000_000 // rate if rate != 1_000_000 else ticks
                    start = body + 20
                    yield number, us + offset * 1_000_000, link, orig, buf[start : start + incl]
            elif btype == 3:  # simple packet block: no time, no interface number
                if interfaces:
                    orig = struct.unpack_from(order + "I", buf, body)[0]
                    incl = min(orig, blen - 16)
                    number += 1
                    yield number, 0, interfaces[0][0], orig, buf[body + 4 : body + 4 + incl]
            elif btype == 2:  # obsolete packet block
                iface, _drops, hi, lo, incl, orig = struct.unpack_from(
                    order + "HHIIII", buf, body)
                if iface < len(interfaces) and 28 + incl <= blen:
                    number += 1
                    link, rate, offset = interfaces[iface]
                    us = ((hi << 32) | lo) * 1_000_000 // rate
                    start = body + 20
                    yield number, us + offset * 1_000_000, link, orig, buf[start : start + incl]
                else:
                    self.counters["corrupt pcapng packet block"] += 1
            elif btype == 1:  # interface description block
                link = struct.unpack_from(order + "H", buf, body)[0]
                rate, offset = _idb_options(buf, body + 8, pos + blen - 4, order)
                interfaces.append((link, rate, offset))
                self.link_types.add(link)
            pos += blen


def _idb_options(buf: bytes, pos: int, end: int, order: str) -> tuple[int, int]:
    """Time resolution (units per second) and offset (seconds) from an IDB's options."""
    rate, offset = 1_000_000, 0
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", buf, pos)
        if code == 0:
            break
        value = buf[pos + 4 : pos + 4 + length]
        if code == 9 and length >= 1:  # if_tsresol
            v = value[0]
            rate = 2 ** (v & 0x7F) if v & 0x80 else 10 ** v
        elif code == 14 and length == 8:  # if_tsoffset
            offset = struct.unpack(order + "q", value)[0]
        pos += 4 + ((length + 3) & ~3)
    return max(rate, 1), offset
