"""What a GeoIP lookup answers, in the two forms it is kept in, and the address helpers
shared by single and batch lookups."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Final, NamedTuple

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
FIELDS: Final = ("country", "country_name", "city", "lat", "lon", "asn", "as_org", "network",
                 "geo_db")
_SPECIALS: dict[str, Answer] = {}


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
