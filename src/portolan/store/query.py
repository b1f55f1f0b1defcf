"""Reading the store: events, counts, sessions. Everything that shows data (CLI, API,
dashboard, terminal view) reads through here, never through SQL of its own.

All values are bound as parameters; field names for counts are checked against a fixed
list (or ``attrs.KEY`` with a safe key), never pasted into SQL.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portolan.event import FIELDS, Event, Payload
from portolan.store import schema
from portolan.store.engine import from_us, to_us

E = schema.events

#: Fields that ``stats`` can count by (plus ``attrs.KEY``).
STAT_FIELDS = (
    "country", "country_name", "city", "asn", "as_org", "network", "src_ip", "dst_ip",
    "dst_port", "src_port", "service", "action", "direction", "proto", "sensor", "source",
    "user",
)
_ATTR_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class QueryError(ValueError):
    """A query that cannot be run as asked (unknown field, bad address...)."""


class EventFilter(msgspec.Struct, kw_only=True):
    """Which events: every given condition must hold."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    sensor: str | None = None
    source: str | None = None
    service: str | None = None
    action: str | None = None
    direction: str | None = None
    country: str | None = None
    asn: int | None = None
    ip: str | None = None
    """An address (either end of the connection) or a network in CIDR notation."""
    user: str | None = None
    text: str | None = None
    """Free text, found in the user name, the address or the attributes."""


def conditions(f: EventFilter) -> list[Any]:
    cond: list[Any] = []
    if f.since is not None:
        cond.append(E.c.ts >= to_us(f.since))
    if f.until is not None:
        cond.append(E.c.ts < to_us(f.until))
    for name in ("sensor", "source", "service", "action", "direction", "user"):
        value = getattr(f, name)
        if value is not None:
            cond.append(E.c[name] == value)
    if f.country is not None:
        cond.append(E.c.country == f.country.upper())
    if f.asn is not None:
        cond.append(E.c.asn == f.asn)
    if f.ip is not None:
        cond.append(_ip_condition(f.ip))
    if f.text:
        like = "%" + f.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cond.append(sa.or_(
            E.c.user.like(like, escape="\\"),
            E.c.src_ip.like(like, escape="\\"),
            E.c.attrs.like(like, escape="\\"),
        ))
    return cond


def _ip_condition(text: str) -> Any:
    if "/" not in text:
        return sa.or_(E.c.src_ip == text, E.c.dst_ip == text)
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise QueryError(f"ip: {text!r} is neither an address nor a network") from None
    if net.version == 4 and net.prefixlen % 8 == 0 and net.prefixlen > 0:
        octets = str(net.network_address).split(".")[: net.prefixlen // 8]
        prefix = ".".join(octets) + "."
        return sa.or_(E.c.src_ip.startswith(prefix), E.c.dst_ip.startswith(prefix))
    if net.num_addresses <= 4096:
        hosts = [str(a) for a in net]
        return sa.or_(E.c.src_ip.in_(hosts), E.c.dst_ip.in_(hosts))
    raise QueryError(f"ip: networks are matched on whole octets (/8, /16, /24) or up to 4096 "
                     f"addresses; {text!r} is neither")


def row_to_event(row: Any) -> Event:
    """A row of the events table as an :class:`Event`."""
    values = dict(zip(FIELDS, row, strict=True))
    values["ts"] = from_us(values["ts"])
    values["received"] = from_us(values["received"])
    values["attrs"] = json.loads(values["attrs"]) if values["attrs"] else {}
    if values["payload"] is not None:
        values["payload"] = Payload(values["payload"])
    return Event(**values)


def events(conn: Connection, f: EventFilter, *, limit: int = 100,
           before: tuple[dt.datetime, str] | None = None) -> list[Event]:
    """Events matching ``f``, newest first; ``before`` is the (ts, id) of the last event
    of the previous page (cursor pagination)."""
    q = sa.select(*[E.c[n] for n in FIELDS]).where(*conditions(f))
    if before is not None:
        ts, eid = to_us(before[0]), before[1]
        q = q.where(sa.or_(E.c.ts < ts, sa.and_(E.c.ts == ts, E.c.id < eid)))
    q = q.order_by(E.c.ts.desc(), E.c.id.desc()).limit(limit)
    return [row_to_event(r) for r in conn.execute(q)]


def _field_expr(conn: Connection, field: str) -> Any:
    if field in STAT_FIELDS:
        return E.c[field]
    if field.startswith("attrs."):
        key = field[6:]
        if not _ATTR_KEY.match(key):
            raise QueryError(f"{field!r}: attribute names are letters, digits and _")
        dialect = conn.dialect.name
        if dialect == "sqlite":
            return sa.func.json_extract(E.c.attrs, f"$.{key}")
        if dialect == "postgresql":
            return sa.cast(E.c.attrs, sa.JSON)[key].as_string()
        return sa.func.json_unquote(sa.func.json_extract(E.c.attrs, f"$.{key}"))
    raise QueryError(f"cannot count by {field!r}; allowed: {', '.join(STAT_FIELDS)}, attrs.KEY")


def stats(conn: Connection, field: str, f: EventFilter, *, limit: int = 10,
          ) -> tuple[list[tuple[Any, int]], int]:
    """Counts of events by ``field``, largest first, and the total of the rest."""
    col = _field_expr(conn, field)
    cond = conditions(f)
    count = sa.func.count().label("n")
    q = (sa.select(col.label("k"), count).where(*cond).group_by(col)
         .order_by(sa.desc("n"), col).limit(limit))
    top = [(k, int(n)) for k, n in conn.execute(q)]
    total = conn.execute(sa.select(sa.func.count()).select_from(E).where(*cond)).scalar_one()
    return top, int(total) - sum(n for _, n in top)


def _session_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["session"] = d.pop("id")
    d["start"] = from_us(d.pop("start_ts"))
    d["end"] = from_us(d.pop("end_ts"))
    d["attrs"] = json.loads(d["attrs"]) if d["attrs"] else {}
    return d


def sessions(conn: Connection, *, since: dt.datetime | None = None, active: bool = False,
             service: str | None = None, sensor: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
    """Sessions, newest first; ``active`` keeps the open ones (no end yet)."""
    S = schema.sessions
    q = sa.select(S)
    if active:
        q = q.where(S.c.end_ts.is_(None), S.c.start_ts.is_not(None))
    if since is not None:
        ts = to_us(since)
        q = q.where(sa.or_(S.c.start_ts >= ts, S.c.end_ts >= ts))
    if service is not None:
        q = q.where(S.c.service == service)
    if sensor is not None:
        q = q.where(S.c.sensor == sensor)
    order = sa.func.coalesce(S.c.start_ts, S.c.end_ts)
    q = q.order_by(order.desc(), S.c.id).limit(limit)
    return [_session_dict(r) for r in conn.execute(q)]


def count_events(conn: Connection, f: EventFilter | None = None) -> int:
    """How many events match."""
    cond = conditions(f) if f is not None else []
    return int(conn.execute(sa.select(sa.func.count()).select_from(E).where(*cond)).scalar_one())
