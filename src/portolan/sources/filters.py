"""Which remote addresses a source keeps: skip private ones, exclude by pattern.

A pattern is an address (``203.0.113.7``), a network in CIDR notation (``10.0.0.0/8``,
``2001:db8::/32``) or an IPv4 address with ``*`` for whole octets (``192.168.*.*``, the
form the old spyserver monitor used; unlike there, each octet is compared whole, so
``10.0.0.1`` does not exclude ``10.0.0.123``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_pattern(text: str) -> Network:
    """One pattern as a network; raises ``ValueError`` saying what is allowed."""
    value = text.strip()
    if "*" in value:
        octets = value.split(".")
        if len(octets) != 4:
            raise ValueError(f"{text!r}: a wildcard pattern has four octets (192.168.*.*)")
        fixed = 0
        for octet in octets:
            if octet == "*":
                break
            fixed += 1
        if any(o != "*" for o in octets[fixed:]):
            raise ValueError(f"{text!r}: '*' may only stand for the last octets (10.1.*.*)")
        base = ".".join([*octets[:fixed], *["0"] * (4 - fixed)])
        try:
            return ipaddress.ip_network(f"{base}/{fixed * 8}")
        except ValueError:
            raise ValueError(f"{text!r}: not an IPv4 pattern") from None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an address, a network (10.0.0.0/8) or a pattern (192.168.*.*)"
        ) from None


@dataclass
class AddressFilter:
    """Decides whether events from an address are dropped."""

    skip_private: bool = False
    exclude: Sequence[Network] = field(default_factory=tuple)

    @classmethod
    def from_options(cls, skip_private: bool, patterns: Sequence[str]) -> AddressFilter:
        return cls(skip_private, tuple(parse_pattern(p) for p in patterns))

    @property
    def active(self) -> bool:
        return self.skip_private or bool(self.exclude)

    def drops(self, ip: str | None) -> bool:
        """True when events from ``ip`` are to be dropped."""
        if ip is None or not self.active:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if self.skip_private and not addr.is_global:
            return True
        return any(addr.version == net.version and addr in net for net in self.exclude)
