"""Traffic per autonomous system: bytes, packets and flows per remote AS, per hour.

A write hook (run in the store's batch transaction, on newly stored events only, so a
replay counts nothing twice) adds every ``flow`` event to the ``asn_traffic`` table: one
row per hour, sensor, direction, remote AS and announced network, with the AS
organisation. The remote side is ``src_ip`` of inbound flows and ``dst_ip`` of outbound
ones, the address enrichment looks up. Private and reserved remote addresses are kept
apart (``private``), and left out of :func:`query` unless asked for; public addresses that
no ASN database knows are counted under AS 0.

:func:`query` answers "where does my traffic go": totals per AS (or per network) over a
time range, largest first, for the API, the dashboard's chart and ``/metrics``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portolan.event import Event
from portolan.store import PURGE_HOOKS, WRITE_HOOKS, schema, to_us

__all__ = ["asn_traffic", "purge", "query", "update_asn_traffic"]

HOUR_US = 3_600_000_000

asn_traffic = sa.Table(
    "asn_traffic",
    schema.metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("bucket", sa.BigInteger, nullable=False),
    sa.Column("sensor", sa.String(256), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("asn", sa.BigInteger, nullable=False),
    sa.Column("network", sa.String(64), nullable=False),
    sa.Column("as_org", sa.String(256)),
    sa.Column("private", sa.Boolean, nullable=False),
    sa.Column("bytes_in", sa.BigInteger, nullable=False),
    sa.Column("bytes_out", sa.BigInteger, nullable=False),
    sa.Column("packets", sa.BigInteger, nullable=False),
    sa.Column("flows", sa.BigInteger, nullable=False),
    sa.Index("ix_asn_traffic_bucket", "bucket"),
)


def _private(ip: str) -> bool:
    try:
        return not ipaddress.ip_address(ip).is_global
    except ValueError:
        return True


def update_asn_traffic(conn: Connection, events: Sequence[Event], _now_us: int) -> None:
    """Add the new ``flow`` events to the per-hour, per-AS totals."""
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.action != "flow":
            continue
        remote = e.src_ip if e.direction == "inbound" else e.dst_ip
        if not remote:
            continue
        bucket = to_us(e.ts) // HOUR_US * HOUR_US
        asn = e.asn or 0
        network = e.network or ""
        private = not asn and _private(remote)
        key = hashlib.blake2b(
            f"{bucket}\x1f{e.sensor}\x1f{e.direction}\x1f{asn}\x1f{network}\x1f{private}"
            .encode(), digest_size=16).hexdigest()
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "key": key, "bucket": bucket, "sensor": e.sensor, "direction": e.direction,
                "asn": asn, "network": network, "as_org": e.as_org,
                "private": private,
                "bytes_in": 0, "bytes_out": 0, "packets": 0, "flows": 0,
            }
        row["bytes_in"] += e.bytes_in or 0
        row["bytes_out"] += e.bytes_out or 0
        row["packets"] += e.packets or 0
        row["flows"] += 1
        if e.as_org:
            row["as_org"] = e.as_org
    if not rows:
        return
    t = asn_traffic
    values = [rows[key] for key in sorted(rows)]  # every writer locks rows in one order
    dialect = conn.dialect.name

    def update(x: Any) -> dict[str, Any]:
        return {
            "bytes_in": t.c.bytes_in + x.bytes_in,
            "bytes_out": t.c.bytes_out + x.bytes_out,
            "packets": t.c.packets + x.packets,
            "flows": t.c.flows + x.flows,
            "as_org": sa.func.coalesce(x.as_org, t.c.as_org),
        }

    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(t)
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"],
                                                set_=update(stmt.excluded)), values)
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pstmt = pg_insert(t)
        conn.execute(pstmt.on_conflict_do_update(index_elements=["key"],
                                                 set_=update(pstmt.excluded)), values)
    else:
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        mstmt = mysql_insert(t)
        conn.execute(mstmt.on_duplicate_key_update(update(mstmt.inserted)), values)


def query(
    conn: Connection,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    direction: Literal["inbound", "outbound"] | None = "outbound",
    include_private: bool = False,
    sensor: str | None = None,
    by: Literal["asn", "network"] = "asn",
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Totals per remote AS (or per announced network) over ``[since, until)``, the
    largest (bytes both ways) first. Each row: ``asn``, ``as_org``, ``network`` (when
    ``by="network"``), ``bytes``, ``bytes_in``, ``bytes_out``, ``packets``, ``flows``,
    ``private``. Hours are whole: a range starting mid-hour includes that hour's flows."""
    t = asn_traffic
    bytes_total = sa.func.sum(t.c.bytes_in + t.c.bytes_out)
    cols: list[Any] = [t.c.asn, t.c.private]
    if by == "network":
        cols.append(t.c.network)
    q = sa.select(
        *cols,
        sa.func.max(t.c.as_org).label("as_org"),
        bytes_total.label("bytes"),
        sa.func.sum(t.c.bytes_in).label("bytes_in"),
        sa.func.sum(t.c.bytes_out).label("bytes_out"),
        sa.func.sum(t.c.packets).label("packets"),
        sa.func.sum(t.c.flows).label("flows"),
    ).group_by(*cols).order_by(bytes_total.desc(), t.c.asn).limit(limit)
    if since is not None:
        q = q.where(t.c.bucket >= to_us(since) // HOUR_US * HOUR_US)
    if until is not None:
        q = q.where(t.c.bucket < to_us(until))
    if direction is not None:
        q = q.where(t.c.direction == direction)
    if not include_private:
        q = q.where(t.c.private.is_(False))
    if sensor is not None:
        q = q.where(t.c.sensor == sensor)
    out = []
    for row in conn.execute(q).mappings():
        item = {k: (int(v) if k in ("bytes", "bytes_in", "bytes_out", "packets", "flows",
                                     "asn") else v) for k, v in row.items()}
        item["private"] = bool(item["private"])
        if item["asn"] == 0 and not item["as_org"]:
            item["as_org"] = "private" if item["private"] else "unknown"
        out.append(item)
    return out


WRITE_HOOKS.append(update_asn_traffic)


def purge(conn: Connection, before_us: int) -> None:
    """Forget the hours that end before ``before_us`` (a purge hook of the store)."""
    conn.execute(sa.delete(asn_traffic).where(asn_traffic.c.bucket <= before_us - HOUR_US))


PURGE_HOOKS.append(purge)
