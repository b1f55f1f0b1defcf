"""Queries about addresses and sensors: one address's story, the watch list, sensors.

An address's events are those it started (it is their ``src_ip``), found through the
``(src_ip, ts)`` index; the ``ips`` table's counts also include events where it was the
destination of an outbound connection.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portolan.event import FIELDS, Event
from portolan.store import from_us, schema, to_us
from portolan.store.query import row_to_event
from portolan.store.rollups import DIMS, rollups

E = schema.events
IPS = schema.ips
NOTE_MAX: Final = 2000

LINKS: Final = {
    "shodan": "https://www.shodan.io/host/{ip}",
    "censys": "https://search.censys.io/hosts/{ip}",
    "abuseipdb": "https://www.abuseipdb.com/check/{ip}",
    "whois": "https://who.is/whois-ip/ip-address/{ip}",
}


def address(conn: Connection, ip: str) -> dict[str, Any] | None:
    """The ``ips`` row of an address, or None."""
    row = conn.execute(sa.select(IPS).where(IPS.c.ip == ip)).mappings().first()
    return _address(row) if row is not None else None


def _address(mapping: Any) -> dict[str, Any]:
    row = {str(k): v for k, v in mapping.items()}
    row["first_seen"] = from_us(row["first_seen"])
    row["last_seen"] = from_us(row["last_seen"])
    row["starred"] = bool(row["starred"])
    return row


def _mine(ip: str) -> Any:
    """Events this address started (found through the ``(src_ip, ts)`` index)."""
    return E.c.src_ip == ip


def top(conn: Connection, ip: str, column: Any, limit: int = 50) -> list[tuple[Any, int]]:
    n = sa.func.count().label("n")
    q = (sa.select(column, n).where(_mine(ip)).group_by(column)
         .order_by(sa.desc("n"), column).limit(limit))
    return [(k, int(c)) for k, c in conn.execute(q)]


def payload_kind(payload: bytes) -> str:
    """A rough name for what a first payload looks like."""
    if not payload:
        return "empty"
    if payload[:1] == b"\x16" and payload[1:2] == b"\x03":
        return "tls"
    if payload.startswith(b"SSH-"):
        return "ssh"
    head = payload[:8]
    for method in (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ",
                   b"PATCH ", b"PRI * "):
        if head.startswith(method[:8]):
            return "http"
    text = sum(32 <= b < 127 or b in (9, 10, 13) for b in payload[:256])
    return "text" if text >= 0.9 * min(len(payload), 256) else "binary"


def payload_kinds(conn: Connection, ip: str, limit: int = 1000) -> list[tuple[str, int]]:
    q = (sa.select(E.c.payload).where(_mine(ip), E.c.payload.is_not(None))
         .order_by(E.c.ts.desc()).limit(limit))
    counts: dict[str, int] = {}
    for (payload,) in conn.execute(q):
        kind = payload_kind(bytes(payload))
        counts[kind] = counts.get(kind, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def recent(conn: Connection, ip: str, limit: int = 20) -> list[Event]:
    q = (sa.select(*[E.c[n] for n in FIELDS]).where(_mine(ip))
         .order_by(E.c.ts.desc(), E.c.id.desc()).limit(limit))
    return [row_to_event(r) for r in conn.execute(q)]


def set_watch(conn: Connection, ip: str, starred: bool | None, note: str | None,
              clear: bool = False) -> bool:
    """Star / note an address; False when the address was never seen."""
    values: dict[str, Any] = {}
    if clear:
        values = {"starred": False, "note": None}
    else:
        if starred is not None:
            values["starred"] = starred
        if note is not None:
            values["note"] = note[:NOTE_MAX] or None
    exists = conn.execute(sa.select(IPS.c.ip).where(IPS.c.ip == ip)).first() is not None
    if exists and values:
        conn.execute(IPS.update().where(IPS.c.ip == ip).values(**values))
    return exists


def addresses(conn: Connection, *, starred: bool | None, limit: int) -> list[dict[str, Any]]:
    q = sa.select(IPS)
    if starred is not None:
        q = q.where(IPS.c.starred == starred)
    q = q.order_by(IPS.c.last_seen.desc(), IPS.c.ip).limit(limit)
    return [_address(r) for r in conn.execute(q).mappings()]


def _reported(attrs: str | None) -> dict[str, Any]:
    """What a forwarding sensor said about itself (see :mod:`portolan.server.senders`)."""
    known = json.loads(attrs) if attrs else {}
    return {"spool_depth": known.get("spool_depth"),
            "clock_offset_seconds": known.get("clock_offset_s")}


def sensors(conn: Connection, now: dt.datetime) -> list[dict[str, Any]]:
    """Every sensor, with its event rate over the last five minutes and its lag."""
    S = schema.sensors
    now_s = to_us(now) // 1_000_000
    since = now_s - now_s % 60 - 300
    assert "sensor" in DIMS
    rates = dict(conn.execute(
        sa.select(rollups.c.item, sa.func.sum(rollups.c.n))
        .where(rollups.c.grain == 60, rollups.c.dim == "sensor", rollups.c.bucket >= since)
        .group_by(rollups.c.item)
    ).all())
    out = []
    for row in conn.execute(sa.select(S).order_by(S.c.name)).mappings():
        last_event = row["last_event_ts"]
        lag = None if last_event is None else max(0.0, (row["last_seen"] - last_event) / 1e6)
        out.append({
            "name": row["name"], "first_seen": from_us(row["first_seen"]),
            "last_seen": from_us(row["last_seen"]), "last_event_ts": from_us(last_event),
            "events": int(row["events"]),
            "events_per_second": round(int(rates.get(row["name"], 0)) / 300, 3),
            "lag_seconds": lag,
            "version": row["version"],
            **_reported(row["attrs"]),
        })
    return out
