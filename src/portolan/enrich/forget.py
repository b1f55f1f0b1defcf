"""Forgetting one address (``portolan forget IP``): a data subject's request, or a
mistake to undo.

Either every row about the address is deleted (events where it is the source or the
destination, its sessions, its row in the ``ips`` watch list), or, with ``anonymise``,
the events and sessions are kept and the address in them is replaced by its network
(/24 for IPv4, /48 for IPv6), the way ``[privacy] mode = "truncate"`` shows it; its
``ips`` row is deleted either way. The address is matched as written and in its
canonical forms (``::ffff:192.0.2.1`` and ``192.0.2.1`` are one address).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portolan.enrich.privacy import Privacy

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass
class ForgetResult:
    """Rows touched, per table."""

    events: int = 0
    sessions: int = 0
    ips: int = 0
    replacement: str | None = None
    """What the address became (anonymise), or None (deleted)."""


def forms(ip: str) -> list[str]:
    """The ways the address can be written in the store. Raises ValueError for text that
    is not an address."""
    text = ip.strip()
    addr = ipaddress.ip_address(text)
    found = {text, str(addr), addr.exploded}
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        found.add(str(addr.ipv4_mapped))
    if isinstance(addr, ipaddress.IPv4Address):
        found.add(f"::ffff:{addr}")
    return sorted(found)


def forget(engine: Engine, ip: str, *, anonymise: bool = False) -> ForgetResult:
    """Delete (or anonymise) everything about ``ip``, in one transaction."""
    import sqlalchemy as sa

    from portolan.store import schema

    names = forms(ip)
    E, S, I = schema.events, schema.sessions, schema.ips  # noqa: E741
    result = ForgetResult()
    with engine.begin() as conn:
        if anonymise:
            canonical = str(ipaddress.ip_address(ip.strip()))
            mapped = ipaddress.ip_address(canonical)
            if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
                canonical = str(mapped.ipv4_mapped)
            replacement = Privacy("truncate", b"").address(canonical)
            result.replacement = replacement
            for table in (E, S):
                touched = 0
                for column in ("src_ip", "dst_ip"):
                    touched += conn.execute(
                        sa.update(table).where(table.c[column].in_(names))
                        .values({column: replacement})
                    ).rowcount
                if table is E:
                    result.events = touched
                else:
                    result.sessions = touched
        else:
            result.events = conn.execute(sa.delete(E).where(
                sa.or_(E.c.src_ip.in_(names), E.c.dst_ip.in_(names)))).rowcount
            result.sessions = conn.execute(sa.delete(S).where(
                sa.or_(S.c.src_ip.in_(names), S.c.dst_ip.in_(names)))).rowcount
        result.ips = conn.execute(sa.delete(I).where(I.c.ip.in_(names))).rowcount
    return result
