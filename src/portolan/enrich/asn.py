"""AS number and organisation from a table of address ranges (CSV), held in compact arrays.

The built-in ASN data is the ``ip-location-db`` CSV: one inclusive range per line,
``start,end,asn,organisation``, with the addresses as numbers (``asn-ipv4-num.csv``,
``asn-ipv6-num.csv``). It is read once into sorted arrays and searched by bisection: a few
megabytes for every announced network of the internet, a microsecond per lookup.
A malformed line is counted and skipped; ranges that overlap are clipped so the later one
wins where they meet.
"""

from __future__ import annotations

import array
import csv
import logging
import socket
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AsnHit:
    """What the table knows about one address."""

    asn: int
    org: str | None
    network: str
    """The CIDR block, inside the announced range, that holds the address."""


@dataclass
class _Family:
    starts: Sequence[int]
    ends: Sequence[int]
    asns: array.array[int]
    orgs: array.array[int]
    hits: dict[int, AsnHit] = field(default_factory=dict)
    """Answers for ranges that are one CIDR block, by index, as they are asked."""


@dataclass
class AsnTable:
    """IPv4 and IPv6 ranges with their AS number and organisation."""

    v4: _Family
    v6: _Family
    names: list[str]
    skipped: int = 0
    """Malformed lines that were skipped."""
    clipped: int = 0
    """Ranges shortened because the next one overlapped them."""
    sources: list[Path] = field(default_factory=list)

    @property
    def records(self) -> int:
        return len(self.v4.starts) + len(self.v6.starts)

    @classmethod
    def load(cls, v4_csv: Path | None, v6_csv: Path | None) -> AsnTable:
        """Read the two CSV files (either may be None); raises OSError naming the file."""
        names: list[str] = []
        index: dict[str, int] = {}
        table = cls(_empty(4), _empty(6), names)
        for path, version in ((v4_csv, 4), (v6_csv, 6)):
            if path is None:
                continue
            with path.open(newline="", encoding="utf-8") as fh:
                family = table._read(csv.reader(fh), version, index, path)
            if version == 4:
                table.v4 = family
            else:
                table.v6 = family
            table.sources.append(path)
        return table

    def _read(self, rows: Iterable[list[str]], version: int, index: dict[str, int],
              path: Path) -> _Family:
        ranges: list[tuple[int, int, int, int]] = []
        limit = (1 << (32 if version == 4 else 128)) - 1
        for row in rows:
            try:
                start, end, asn = int(row[0]), int(row[1]), int(row[2])
                org = row[3][:256] if len(row) > 3 else ""  # the store keeps 256
            except (ValueError, IndexError):
                self.skipped += 1
                continue
            if not (0 <= start <= end <= limit and 0 <= asn <= 0xFFFFFFFF):
                self.skipped += 1
                continue
            org_id = index.get(org)
            if org_id is None:
                org_id = index[org] = len(self.names)
                self.names.append(org)
            ranges.append((start, end, asn, org_id))
        if self.skipped:
            log.warning("%s: %d malformed lines skipped", path, self.skipped)
        ranges.sort()
        starts = [r[0] for r in ranges]
        ends = [r[1] for r in ranges]
        for i in range(len(ranges) - 1):
            if ends[i] >= starts[i + 1]:
                ends[i] = starts[i + 1] - 1
                self.clipped += 1
        typecode = "I" if version == 4 else ""
        fam = _Family(
            starts=array.array("I", starts) if typecode else starts,
            ends=array.array("I", ends) if typecode else ends,
            asns=array.array("I", (r[2] for r in ranges)),
            orgs=array.array("I", (r[3] for r in ranges)),
        )
        return fam

    def lookup(self, number: int, version: int) -> AsnHit | None:
        """The range holding the address ``number`` (its integer value), if any."""
        fam = self.v4 if version == 4 else self.v6
        i = bisect_right(fam.starts, number) - 1
        if i < 0 or number > fam.ends[i]:
            return None
        whole = fam.hits.get(i)
        if whole is not None:
            return whole
        asn = fam.asns[i]
        if asn == 0:
            return None
        org = self.names[fam.orgs[i]] or None
        start, end = fam.starts[i], fam.ends[i]
        size = end - start + 1
        if size & (size - 1) == 0 and start % size == 0:  # the range is one CIDR block
            bits = 32 if version == 4 else 128
            hit = AsnHit(asn, org, f"{_text(start, version)}/{bits - size.bit_length() + 1}")
            if len(fam.hits) < 200_000:
                fam.hits[i] = hit
            return hit
        return AsnHit(asn, org, _block(number, start, end, version))


def _empty(version: int) -> _Family:
    if version == 4:
        return _Family(array.array("I"), array.array("I"), array.array("I"), array.array("I"))
    return _Family([], [], array.array("I"), array.array("I"))


def _text(number: int, version: int) -> str:
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, number.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, number.to_bytes(16, "big"))


def _block(number: int, start: int, end: int, version: int) -> str:
    """The largest CIDR block inside ``[start, end]`` that contains ``number``."""
    bits = 32 if version == 4 else 128
    k = (end - start + 1).bit_length() - 1
    while k > 0:
        low = (number >> k) << k
        if low >= start and low + (1 << k) - 1 <= end:
            break
        k -= 1
    low = (number >> k) << k
    return f"{_text(low, version)}/{bits - k}"
