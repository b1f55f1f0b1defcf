"""Addresses that have no place on a map: private, loopback, link-local, CGNAT,
documentation, multicast and other reserved ranges (IANA special-purpose registries).

They are labelled, never looked up in a database or sent to an online provider. The
label goes into ``attrs["geo"]`` of the event; the place fields stay empty.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Every label an address can get here.
LABELS: Final = (
    "private", "loopback", "link-local", "cgnat", "documentation", "multicast", "reserved",
)

_V4: Final = (
    ("0.0.0.0/8", "reserved"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V6: Final = (
    ("::/127", "reserved"),  # unspecified (::) and loopback handled below
    ("64:ff9b:1::/48", "private"),
    ("100::/64", "reserved"),
    ("2001:2::/48", "reserved"),
    ("2001:10::/28", "reserved"),
    ("2001:20::/28", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved"),
    ("ff00::/8", "multicast"),
)


def _ranges(table: tuple[tuple[str, str], ...]) -> tuple[tuple[int, int, str], ...]:
    out = []
    for cidr, label in table:
        net = ipaddress.ip_network(cidr)
        out.append((int(net.network_address), int(net.broadcast_address), label))
    return tuple(out)


_V4_RANGES: Final = _ranges(_V4)
#: The IPv4 ranges as (first, last, label), by first address; they do not overlap.
V4_RANGES: Final = tuple(sorted(_V4_RANGES))
_V6_RANGES: Final = _ranges(_V6)
_V6_LOOPBACK: Final = 1


def classify(addr: IPAddress) -> str | None:
    """The label of a special-purpose address, or None for one that is routed on the
    internet. IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are judged by their IPv4."""
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            addr = mapped
        else:
            n = int(addr)
            if n == _V6_LOOPBACK:
                return "loopback"
            for lo, hi, label in _V6_RANGES:
                if lo <= n <= hi:
                    return label
            return None
    n = int(addr)
    for lo, hi, label in _V4_RANGES:
        if lo <= n <= hi:
            return label
    return None


def _by_first_octet() -> tuple[tuple[tuple[int, int, str], ...], ...]:
    table: list[list[tuple[int, int, str]]] = [[] for _ in range(256)]
    for lo, hi, label in _V4_RANGES:
        for octet in range(lo >> 24, (hi >> 24) + 1):
            table[octet].append((lo, hi, label))
    return tuple(tuple(t) for t in table)


_V4_BY_OCTET: Final = _by_first_octet()


def classify_v4(n: int) -> str | None:
    """:func:`classify` for an IPv4 address given as its integer value (the hot path)."""
    for lo, hi, label in _V4_BY_OCTET[n >> 24]:
        if lo <= n <= hi:
            return label
    return None
