"""What a GeoIP lookup answers, in the forms it is kept in (one address's :data:`Result`
and :data:`Answer`, a batch's :class:`Columns`), and the address helpers shared by single
and batch lookups."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeVar

#: What a lookup gives: the event fields, then ``attrs`` to add (or None).
Result = tuple[
    str | None, str | None, str | None, float | None, float | None,
    int | None, str | None, str | None, str | None, dict[str, Any] | None,
]
#: ``attrs`` to add, as (key, value) pairs.
Attrs = tuple[tuple[str, Any], ...]
#: A :data:`Result` as the enricher keeps it: the ``attrs`` to add as pairs. A tuple of
#: strings, numbers and such tuples is not tracked by Python's garbage collector, so the
#: answers held in the caches cost nothing at each collection (with a dictionary in them,
#: every collection would go through all of them again).
Answer = tuple[
    str | None, str | None, str | None, float | None, float | None,
    int | None, str | None, str | None, str | None, Attrs | None,
]
INVALID: Final[Answer] = (None,) * 9 + ((("geo", "invalid"),),)
NOTHING: Final[Answer] = (None,) * 10
#: The first five fields of an :data:`Answer` (country, country name, city, latitude,
#: longitude), then its ``attrs`` to add as a dictionary (or None): what a batch's
#: addresses of the same place share.
Place = tuple[str | None, str | None, str | None, float | None, float | None,
              dict[str, Any] | None]
NO_PLACE: Final[Place] = (None,) * 6
FIELDS: Final = ("country", "country_name", "city", "lat", "lon", "asn", "as_org", "network",
                 "geo_db")
_SPECIALS: dict[str, Answer] = {}
T = TypeVar("T")


def to_result(answer: Answer) -> Result:
    """The :data:`Result` of an :data:`Answer` (its ``attrs`` as a dictionary)."""
    pairs = answer[9]
    if pairs is None:
        return (*answer[:9], None)
    return (*answer[:9], dict(pairs))


def to_answer(result: Result) -> Answer:
    """The :data:`Answer` of a :data:`Result`."""
    attrs = result[9]
    if attrs is None:
        return (*result[:9], None)
    return (*result[:9], tuple(attrs.items()))


class Columns:
    """The answers for a list of addresses, field by field: the enricher writes them into
    its events without an :data:`Answer` made for each address (:meth:`answers` makes
    them, for the cache and for :meth:`GeoIP.lookup_many`)."""

    __slots__ = ("_pairs", "as_org", "asn", "geo_db", "invalid", "network", "place")

    def __init__(self, place: list[Place],
                 pairs: list[Attrs | None] | Callable[[], list[Attrs | None]],
                 asn: list[int | None], as_org: list[str | None], network: list[str | None],
                 geo_db: list[str | None], invalid: int = 0) -> None:
        self.place = place
        """The place of each address, and its ``attrs`` to add as a dictionary (shared:
        read it, never change it)."""
        self._pairs = pairs
        self.asn = asn
        self.as_org = as_org
        self.network = network
        self.geo_db = geo_db
        self.invalid = invalid
        """How many of the addresses did not parse."""

    def __len__(self) -> int:
        return len(self.place)

    @property
    def pairs(self) -> list[Attrs | None]:
        """The ``attrs`` to add, as in an :data:`Answer` (worked out when first asked
        for: writing events needs only :attr:`place`)."""
        if callable(self._pairs):
            self._pairs = self._pairs()
        return self._pairs

    def answers(self, which: slice = slice(None)) -> list[Answer]:
        """The :data:`Answer` of each address (of those ``which`` selects)."""
        return [(p[0], p[1], p[2], p[3], p[4], asn, org, net, dbs, pairs)
                for p, asn, org, net, dbs, pairs in zip(
                    self.place[which], self.asn[which], self.as_org[which],
                    self.network[which], self.geo_db[which], self.pairs[which], strict=True)]

    @classmethod
    def of(cls, answers: list[Answer]) -> Columns:
        """The columns of these answers."""
        invalid_pairs = INVALID[9]
        place: list[Place] = []
        invalid = 0
        for a in answers:
            pairs = a[9]
            if pairs is invalid_pairs:
                invalid += 1
            place.append((a[0], a[1], a[2], a[3], a[4], None if pairs is None else dict(pairs)))
        return cls(place, [a[9] for a in answers], [a[5] for a in answers],
                   [a[6] for a in answers], [a[7] for a in answers], [a[8] for a in answers],
                   invalid)

    @classmethod
    def merged(cls, n: int, parts: list[tuple[list[int], Columns]]) -> Columns:
        """The columns of ``n`` addresses whose answers come in parts: (where each answer
        of the part goes, the part)."""
        out = cls([NO_PLACE] * n, [None] * n, [None] * n, [None] * n, [None] * n, [None] * n)
        for where, part in parts:
            out.invalid += part.invalid
            _scatter(out.place, where, part.place)
            _scatter(out.pairs, where, part.pairs)
            _scatter(out.asn, where, part.asn)
            _scatter(out.as_org, where, part.as_org)
            _scatter(out.network, where, part.network)
            _scatter(out.geo_db, where, part.geo_db)
        return out


def _scatter(into: list[T], where: list[int], values: list[T]) -> None:
    for i, value in zip(where, values, strict=True):
        into[i] = value


def special_place(label: str) -> Place:
    """The place of a special-purpose address of this label (its ``attrs``)."""
    return (None, None, None, None, None, dict(special(label)[9] or ()))


class Template(NamedTuple):
    """What the database files say about an address, before the AS table is asked."""

    country: str | None
    country_name: str | None
    city: str | None
    lat: float | None
    lon: float | None
    extra: Attrs | None
    place_db: str
    asn: int | None
    as_org: str | None
    asn_db: str
    asn_file: int
    """Index in ``GeoIP.files`` of the database that gave the AS (-1: none did)."""
    asn_prefix: int
    """Prefix length of the network of that database that holds the address."""


def special(label: str) -> Answer:
    """The answer for a special-purpose address of this label."""
    found = _SPECIALS.get(label)
    if found is None:
        found = _SPECIALS[label] = (None,) * 9 + ((("geo", label),),)
    return found


def parse(ip: str) -> tuple[int, int, str] | None:
    """(IP version, integer value, canonical text) of an address, or None. IPv4-mapped
    IPv6 addresses are returned as the IPv4 address they carry."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big"), ip
    except (OSError, ValueError):
        pass
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is None:
            return 6, int(addr), str(addr)
        addr = mapped
    return 4, int(addr), str(addr)


def cidr(number: int, prefix: int, version: int) -> str:
    """The network of ``prefix`` bits that holds the address ``number``, as CIDR text."""
    if version == 4:
        low = number & ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF)
        return f"{socket.inet_ntop(socket.AF_INET, low.to_bytes(4, 'big'))}/{prefix}"
    full = (1 << 128) - 1
    low = number & ((full << (128 - prefix)) & full)
    return f"{socket.inet_ntop(socket.AF_INET6, low.to_bytes(16, 'big'))}/{prefix}"
