"""Rollups: counts of events per time bucket, kept up to date as events are stored.

A GROUP BY over millions of events is too slow for a dashboard that refreshes every few
seconds, so every batch the store writes also adds to pre-aggregated counts, in the same
transaction (a :data:`~portolan.store.writer.WRITE_HOOKS` entry): one row per
(grain, dimension, bucket, service, item) with the number of events. Grains are a minute,
an hour and a day; dimensions with many distinct items (addresses, user names...) are kept
per hour and per day only.

A question over a time range is answered from the coarsest buckets that fit inside it,
finer ones at its ends, and the events table for the seconds (or minutes, for hourly
dimensions) at the very ends that no whole bucket covers: the answer is exact. Filters
other than the time range and the service are not kept in rollups; such questions go to
the events table (correct, and slower on big stores).
"""

from __future__ import annotations

import collections
import datetime as dt
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portolan.event import FIELDS, Event
from portolan.store import PURGE_HOOKS, WRITE_HOOKS, EventFilter, QueryError, schema
from portolan.store.engine import from_us, to_us
from portolan.store.query import conditions
from portolan.store.writer import Columns, PreparedHook, event_columns, sqlite_many

MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86400
#: Far enough in the future to stand for "no end" (a whole number of days).
_END: Final = DAY * 100_000_000
#: Longest item kept in a rollup row, in characters (longer ones are cut).
ITEM_MAX: Final = 200

rollups = sa.Table(
    "rollups",
    schema.metadata,
    sa.Column("grain", sa.Integer, primary_key=True),
    sa.Column("dim", sa.String(16), primary_key=True),
    sa.Column("bucket", sa.BigInteger, primary_key=True),
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("item", sa.String(ITEM_MAX), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("label", sa.String(256)),
)


@dataclass(frozen=True)
class Dim:
    """A dimension that events are counted by."""

    name: str
    grains: tuple[int, ...]
    numeric: bool = False
    """Items are integers (ASN, port); kept as text, given back as int."""


_FINE = (MINUTE, HOUR, DAY)
_COARSE = (HOUR, DAY)

#: Every dimension, by the name the API uses.
DIMS: Final[dict[str, Dim]] = {d.name: d for d in (
    Dim("service", _FINE),
    Dim("action", _FINE),
    Dim("sensor", _FINE),
    Dim("country", _FINE),
    Dim("asn", _FINE, numeric=True),
    Dim("city", _COARSE),
    Dim("ip", _COARSE),
    Dim("user", _COARSE),
    Dim("dst_port", _COARSE, numeric=True),
    Dim("host", _COARSE),
    Dim("instance", _COARSE),
)}
#: Filters that rollups answer (besides the time range and the dimension itself).
ROLLUP_FILTERS: Final = frozenset({"service"})
_FILTER_FIELDS = ("sensor", "source", "service", "action", "direction", "country", "asn",
                  "ip", "user", "text")


# -- writing ---------------------------------------------------------------------------

Rows = dict[tuple[int, str, int, str, str], list[Any]]
"""Rollup rows to add: (grain, dim, bucket, service, item) -> [n, label]."""

_COL: Final = {name: i for i, name in enumerate(FIELDS)}


def _raw_columns(events: Sequence[Event], table: Columns) -> dict[str, Sequence[Any]]:
    """Every dimension's raw value for every event (``None`` for none), one sequence per
    dimension, most of them the table's columns as they are: this runs for every stored
    batch. Values become items (text, cut to ``ITEM_MAX``) after counting, once per
    distinct value."""
    v = table.values
    n = table.count
    direction = v[_COL["direction"]]
    src, dst = v[_COL["src_ip"]], v[_COL["dst_ip"]]
    attrs = [e.attrs for e in events]
    blank: list[Any] = [""] * n
    return {
        "service": v[_COL["service"]],
        "action": v[_COL["action"]],
        "sensor": v[_COL["sensor"]],
        "country": v[_COL["country"]],
        "asn": v[_COL["asn"]],
        "city": v[_COL["city"]],
        "ip": (src if direction.count("inbound") == n else
               [s if d == "inbound" else t for s, d, t in zip(src, direction, dst, strict=True)]),
        "user": v[_COL["user"]],
        "dst_port": v[_COL["dst_port"]],
        "host": _attribute(attrs, "host", blank),
        "instance": _attribute(attrs, "instance", blank),
    }


def _attribute(attrs: list[dict[str, Any]], key: str, blank: list[Any]) -> list[Any]:
    """An attribute of every event, made an item at once (it may hold anything JSON does:
    a list...); ``blank`` when no event has it."""
    if not any(attrs):
        return blank
    values = [a.get(key) if a else None for a in attrs]
    if values.count(None) == len(values):
        return blank
    return [_item(v) for v in values]


def _item(value: Any) -> str:
    return "" if value is None else str(value)[:ITEM_MAX]


def _labels(table: Columns) -> dict[str, dict[str, str]]:
    """The newest label of each item, for the dimensions that have labels."""
    v = table.values
    country, asn, city = v[_COL["country"]], v[_COL["asn"]], v[_COL["city"]]
    return {
        "country": {c: name for c, name in zip(country, v[_COL["country_name"]], strict=True)
                    if c and name},
        "asn": {str(a): org for a, org in zip(asn, v[_COL["as_org"]], strict=True)
                if a is not None and org},
        "city": {place[:ITEM_MAX]: c for place, c in zip(city, country, strict=True)
                 if place and c},
    }


Part = tuple[Sequence[Event], Columns]
"""A batch, and the same batch as the events table's columns."""


def aggregate(events: Sequence[Event]) -> Rows:
    """The rollup rows a batch adds: (grain, dim, bucket, service, item) -> [n, label]."""
    return aggregate_parts([(events, event_columns(events))])


def aggregate_parts(parts: Sequence[Part]) -> Rows:
    """The rollup rows that batches written together add (see :func:`aggregate`).

    Counted over all the batches at once: a batch of a file read back spans hours, and
    makes a row per minute and dimension; the batches written together share most of
    those rows. The events are grouped by (bucket, service) first; then each dimension's
    values are counted per group with :class:`collections.Counter` over plain values (no
    tuple per event), one pass in C. Values become items (text, cut) once per distinct
    value."""
    parts = [(events, table) for events, table in parts if table.count]
    if not parts:
        return {}
    labels: dict[str, dict[str, str]] = {"country": {}, "asn": {}, "city": {}}
    raw: dict[str, list[Any]] = {name: [] for name in DIMS}
    stamps: list[int] = []
    for events, table in parts:
        stamps += table.values[_COL["ts"]]
        for name, column in _raw_columns(events, table).items():
            raw[name] += column
        for name, found in _labels(table).items():
            labels[name].update(found)
    seconds = [us // 1_000_000 for us in stamps]
    services = raw["service"]
    minutes = _groups([t - t % MINUTE for t in seconds], services)
    by_first = {MINUTE: minutes, HOUR: _coarser(minutes, HOUR)}
    out: Rows = {}
    for dim in DIMS.values():
        first = dim.grains[0]
        named = labels.get(dim.name, {})
        column = raw[dim.name]
        # one value for every event (the sensor of a file, an attribute no event has):
        # each group counts its events
        same = column.count(column[0]) == len(column)
        counted: collections.Counter[tuple[int, str, str]] = collections.Counter()
        for (bucket, service), positions in by_first[first].items():
            if same:
                size = len(column) if positions is None else len(positions)
                counted[(bucket, service, _item(column[0]))] += size
                continue
            if positions is None:
                values: Any = column
            elif len(positions) == 1:
                values = (column[positions[0]],)
            else:
                values = operator.itemgetter(*positions)(column)
            for value, n in collections.Counter(values).items():
                counted[(bucket, service, _item(value))] += n
        for grain in dim.grains:
            if grain == first:
                level = counted
            else:
                level = collections.Counter()
                for (bucket, service, item), n in counted.items():
                    level[(bucket - bucket % grain, service, item)] += n
            for (bucket, service, item), n in level.items():
                out[(grain, dim.name, bucket, service, item)] = [n, named.get(item)]
    return out


Groups = dict[tuple[int, str], list[int] | None]
"""Positions of the events of each (bucket, service); ``None`` stands for all of them."""


def _groups(buckets: list[int], services: Sequence[str]) -> Groups:
    """The events grouped by (bucket, service); one group of all of them for the usual
    batch of a live source (one service, one bucket)."""
    if len(set(buckets)) == 1 and len(set(services)) == 1:
        return {(buckets[0], services[0]): None}
    groups: Groups = {}
    for i, key in enumerate(zip(buckets, services, strict=True)):
        group = groups.get(key)
        if group is None:
            groups[key] = [i]
        else:
            group.append(i)
    return groups


def _coarser(groups: Groups, grain: int) -> Groups:
    """Groups of a coarser grain, made of the finer groups (not of every event again)."""
    if len(groups) == 1:
        ((bucket, service), positions), = groups.items()
        return {(bucket - bucket % grain, service): positions}
    out: Groups = {}
    for (bucket, service), positions in groups.items():
        assert positions is not None
        key = (bucket - bucket % grain, service)
        group = out.get(key)
        if group is None:
            out[key] = list(positions)
        else:
            group += positions
    return out


_UPSERT = {
    "sqlite": "INSERT INTO rollups (grain, dim, bucket, service, item, n, label) "
              "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (grain, dim, bucket, service, item) "
              "DO UPDATE SET n = n + excluded.n, label = COALESCE(excluded.label, label)",
    "postgresql": "INSERT INTO rollups (grain, dim, bucket, service, item, n, label) "
                  "VALUES (%s, %s, %s, %s, %s, %s, %s) "
                  "ON CONFLICT (grain, dim, bucket, service, item) DO UPDATE SET "
                  "n = rollups.n + excluded.n, label = COALESCE(excluded.label, rollups.label)",
    "mysql": "INSERT INTO rollups (grain, dim, bucket, service, item, n, label) "
             "VALUES (%s, %s, %s, %s, %s, %s, %s) "
             "ON DUPLICATE KEY UPDATE n = n + VALUES(n), label = COALESCE(VALUES(label), label)",
}


def add(conn: Connection, rows: Rows) -> None:
    """Add aggregated rows in the connection's open transaction (sorted, so concurrent
    writers lock rows in the same order)."""
    if not rows:
        return
    dialect = conn.dialect.name
    items = rows.items() if dialect == "sqlite" else sorted(rows.items())
    values = [(*key, n, label) for key, (n, label) in items]
    if dialect == "postgresql":
        _add_postgresql(conn, values)
        return
    sql = _UPSERT["mysql" if dialect in ("mysql", "mariadb") else dialect]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if dialect == "sqlite":
            sqlite_many(cursor, sql, values)
        else:
            cursor.executemany(sql, values)
    finally:
        cursor.close()


_PG_COLUMNS = "grain, dim, bucket, service, item, n, label"


def _add_postgresql(conn: Connection, values: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: thousands of rows per batch go through COPY into a temporary table and
    one INSERT ... ON CONFLICT, instead of one statement per row."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS portolan_rollups_in "
                    "(LIKE rollups INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY portolan_rollups_in ({_PG_COLUMNS}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO rollups ({_PG_COLUMNS}) SELECT {_PG_COLUMNS} FROM portolan_rollups_in "
            "ORDER BY grain, dim, bucket, service, item "
            "ON CONFLICT (grain, dim, bucket, service, item) DO UPDATE SET "
            "n = rollups.n + excluded.n, label = COALESCE(excluded.label, rollups.label)")
        cur.execute("DELETE FROM portolan_rollups_in")


def _keep(events: Sequence[Event], table: Columns) -> list[Part]:
    return [(events, table)]


def _join(parts: Sequence[list[Part]]) -> list[Part]:
    return [part for batches in parts for part in batches]


def _apply(conn: Connection, parts: list[Part], _now_us: int) -> None:
    add(conn, aggregate_parts(parts))


update_rollups = PreparedHook(_keep, _join, _apply)
"""The write hook: adds the batch's new events to the rollups, counted when the batches
written together are known (see :func:`aggregate_parts`)."""

WRITE_HOOKS.append(update_rollups)


def purge(conn: Connection, before_us: int) -> None:
    """Forget the buckets that end before ``before_us`` (a purge hook): a bucket that
    holds that time stays whole. One range of the key per grain and dimension."""
    seconds = before_us // 1_000_000
    for name, dim in DIMS.items():
        for grain in dim.grains:
            conn.execute(sa.delete(rollups).where(
                rollups.c.grain == grain, rollups.c.dim == name,
                rollups.c.bucket <= seconds - grain))


PURGE_HOOKS.append(purge)


# -- reading ---------------------------------------------------------------------------


def _floor(t: int, g: int) -> int:
    return t - t % g


def _ceil(t: int, g: int) -> int:
    return -((-t) // g) * g


def plan(lo: int, hi: int, grains: Sequence[int]
         ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """Cover [lo, hi) with whole buckets, coarsest in the middle: returns
    (grain, start, end) pieces and the (start, end) rests no whole bucket covers."""
    g0 = grains[0]
    a, b = _ceil(lo, g0), _floor(hi, g0)
    if a >= b:
        return [], [(lo, hi)] if lo < hi else []
    rests = []
    if lo < a:
        rests.append((lo, a))
    if b < hi:
        rests.append((b, hi))
    pieces: list[tuple[int, int, int]] = []
    index = 0
    while True:
        grain = grains[index]
        if index == len(grains) - 1:
            pieces.append((grain, a, b))
            break
        coarser = grains[index + 1]
        ca, cb = _ceil(a, coarser), _floor(b, coarser)
        if ca >= cb:
            pieces.append((grain, a, b))
            break
        if a < ca:
            pieces.append((grain, a, ca))
        if cb < b:
            pieces.append((grain, cb, b))
        a, b, index = ca, cb, index + 1
    return pieces, rests


_US: Final = 1_000_000


def _bounds(f: EventFilter) -> tuple[int, int]:
    """The time range of ``f`` in microseconds ("no bound" as whole days far away)."""
    lo = 0 if f.since is None else max(0, to_us(f.since))
    hi = _END * _US if f.until is None else min(_END * _US, to_us(f.until))
    return lo, hi


def _pieces(f: EventFilter, grains: Sequence[int]
            ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """:func:`plan` for ``f``: pieces in seconds, rests in microseconds."""
    lo, hi = _bounds(f)
    pieces, rests = plan(lo, hi, [g * _US for g in grains])
    return [(g // _US, a // _US, b // _US) for g, a, b in pieces], rests


def rollup_able(f: EventFilter) -> bool:
    """True when every condition of ``f`` other than time and service is absent."""
    return all(getattr(f, name) is None or name in ROLLUP_FILTERS
               for name in _FILTER_FIELDS) and not f.text


def _event_expr(conn: Connection, dim: str) -> Any:
    """The events-table expression of a dimension (for the ends of a range, and for
    questions that rollups cannot answer)."""
    E = schema.events
    if dim == "ip":
        return sa.case((E.c.direction == "inbound", E.c.src_ip), else_=E.c.dst_ip)
    if dim in ("host", "instance"):
        from portolan.store.query import _field_expr

        return _field_expr(conn, f"attrs.{dim}")
    return E.c[dim]


def _label_expr(dim: str) -> Any:
    E = schema.events
    return {"country": E.c.country_name, "asn": E.c.as_org, "city": E.c.country}.get(dim)


def _piece_condition(pieces: list[tuple[int, int, int]]) -> Any:
    R = rollups
    return sa.or_(*[sa.and_(R.c.grain == g, R.c.bucket >= a, R.c.bucket < b)
                    for g, a, b in pieces])


def _events_counts(conn: Connection, dim: str, f: EventFilter,
                   spans: list[tuple[int, int]] | None,
                   keys: Sequence[str] | None = None,
                   limit: int | None = None) -> dict[str, list[Any]]:
    """Counts from the events table: item -> [n, label]."""
    E = schema.events
    expr = _event_expr(conn, dim)
    label = _label_expr(dim)
    cond = conditions(_replace(f, since=None, until=None) if spans is not None else f)
    if spans is not None:
        cond.append(sa.or_(*[sa.and_(E.c.ts >= a, E.c.ts < b) for a, b in spans]))
    if keys is not None:
        cond.append(expr.in_(keys))
    n = sa.func.count().label("n")
    cols = [expr.label("k"), n, (sa.func.max(label) if label is not None
                                 else sa.null()).label("l")]
    q = sa.select(*cols).where(*cond).group_by(expr)
    if limit is not None:
        q = q.order_by(sa.desc("n"), expr).limit(limit)
    out: dict[str, list[Any]] = {}
    for k, count, lab in conn.execute(q):
        item = "" if k is None else str(k)[:ITEM_MAX]
        prev = out.get(item)
        if prev is None:
            out[item] = [int(count), lab]
        else:
            prev[0] += int(count)
    return out


def _replace(f: EventFilter, **changes: Any) -> EventFilter:
    return msgspec.structs.replace(f, **changes)


@dataclass
class Counts:
    """Counts by one dimension: the top items, the total of the others, the grand total."""

    field: str
    top: list[tuple[Any, str | None, int]]
    other: int
    total: int


def _out_key(dim: Dim, item: str) -> Any:
    if item == "":
        return None
    if dim.numeric:
        try:
            return int(item)
        except ValueError:
            return item
    return item


def counts(conn: Connection, field: str, f: EventFilter, *, limit: int = 10) -> Counts:
    """The ``limit`` most frequent items of ``field`` among the events matching ``f``."""
    dim = DIMS.get(field)
    if dim is None:
        raise QueryError(f"cannot count by {field!r}; allowed: {', '.join(DIMS)}")
    if not rollup_able(f):
        found = _events_counts(conn, field, f, None)
        return _finish(dim, found, limit)
    pieces, rests = _pieces(f, dim.grains)
    edge = _events_counts(conn, field, f, rests) if rests else {}
    if not pieces:
        return _finish(dim, edge, limit)
    R = rollups
    cond = [R.c.dim == field, _piece_condition(pieces)]
    if f.service is not None:
        cond.append(R.c.service == f.service)
    total_n = sa.func.sum(R.c.n)
    q = (sa.select(R.c.item, total_n.label("n"), sa.func.max(R.c.label))
         .where(*cond).group_by(R.c.item)
         .order_by(sa.desc("n"), R.c.item).limit(limit + len(edge)))
    merged: dict[str, list[Any]] = {k: [int(n), lab] for k, n, lab in conn.execute(q)}
    missing = [k for k in edge if k not in merged]
    for start in range(0, len(missing), 500):
        chunk = missing[start:start + 500]
        q2 = (sa.select(R.c.item, total_n, sa.func.max(R.c.label))
              .where(*cond, R.c.item.in_(chunk)).group_by(R.c.item))
        for k, n, lab in conn.execute(q2):
            merged[k] = [int(n), lab]
    for k, (n, lab) in edge.items():
        row = merged.setdefault(k, [0, lab])
        row[0] += n
        if row[1] is None:
            row[1] = lab
    total = int(conn.execute(sa.select(sa.func.coalesce(total_n, 0)).where(*cond)).scalar_one())
    total += sum(n for n, _ in edge.values())
    result = _finish(dim, merged, limit)
    result.other = total - sum(c for _, _, c in result.top)
    result.total = total
    return result


def _finish(dim: Dim, found: dict[str, list[Any]], limit: int) -> Counts:
    ordered = sorted(found.items(), key=lambda kv: (-kv[1][0], kv[0]))
    top = [(_out_key(dim, k), lab, n) for k, (n, lab) in ordered[:limit]]
    total = sum(n for n, _ in found.values())
    return Counts(dim.name, top, total - sum(c for _, _, c in top), total)


#: Bucket widths a time series may use, in seconds.
STEPS: Final = (60, 300, 900, 3600, 21600, 86400)
#: Most buckets in one time series.
MAX_POINTS: Final = 10_000


def series(conn: Connection, f: EventFilter, step: int, *, now: dt.datetime
           ) -> list[tuple[dt.datetime, int]]:
    """Counts per bucket of ``step`` seconds over [since, until) (until: now), every bucket
    included, zero or not. Bounds are widened to whole buckets."""
    if step not in STEPS:
        raise QueryError(f"step: {step} is not allowed; allowed: {', '.join(map(str, STEPS))}")
    if f.since is None:
        raise QueryError("since: a time series needs a start")
    until = f.until or now
    lo = _floor(to_us(f.since) // 1_000_000, step)
    hi = _ceil(_ceil(to_us(until), 1_000_000) // 1_000_000, step)
    if hi <= lo:
        return []
    if (hi - lo) // step > MAX_POINTS:
        raise QueryError(f"step: {(hi - lo) // step} buckets asked; at most {MAX_POINTS}: "
                         "use a larger step or a shorter range")
    values = dict.fromkeys(range(lo, hi, step), 0)
    dim, item = _series_dim(f)
    if dim is None:
        E = schema.events
        step_us = step * 1_000_000
        bucket = (E.c.ts - E.c.ts % step_us).label("b")
        cond = conditions(_replace(f, since=from_us(lo * 1_000_000),
                                           until=from_us(hi * 1_000_000)))
        q = sa.select(bucket, sa.func.count()).where(*cond).group_by(bucket)
        for b, n in conn.execute(q):
            values[int(b) // 1_000_000] = int(n)
    else:
        grain = max(g for g in DIMS[dim].grains if step % g == 0)
        R = rollups
        cond = [R.c.grain == grain, R.c.dim == dim, R.c.bucket >= lo, R.c.bucket < hi]
        if item is not None:
            cond.append(R.c.item == item)
        if f.service is not None:
            cond.append(R.c.service == f.service)
        b = (R.c.bucket - R.c.bucket % step).label("b")
        q = sa.select(b, sa.func.sum(R.c.n)).where(*cond).group_by(b)
        for bk, n in conn.execute(q):
            values[int(bk)] = int(n)
    return [(from_us(k * 1_000_000), n) for k, n in values.items()]  # type: ignore[misc]


def _series_dim(f: EventFilter) -> tuple[str | None, str | None]:
    """Which rollup dimension answers a series with filter ``f`` (None: the events table)."""
    extra = [name for name in _FILTER_FIELDS
             if getattr(f, name) is not None and name not in ROLLUP_FILTERS]
    if not extra:
        return "service", None
    if len(extra) == 1 and extra[0] in ("action", "sensor", "country", "asn"):
        value = getattr(f, extra[0])
        return extra[0], (value.upper() if extra[0] == "country" else str(value))
    return None, None


def backfill(conn: Connection, chunk: int = 20000) -> int:
    """Build rollups from events already stored (the migration that adds them)."""
    from portolan.event import FIELDS
    from portolan.store.query import row_to_event

    E = schema.events
    done = 0
    last: tuple[int, str] | None = None
    while True:
        q = sa.select(*[E.c[n] for n in FIELDS]).order_by(E.c.ts, E.c.id).limit(chunk)
        if last is not None:
            q = q.where(sa.or_(E.c.ts > last[0], sa.and_(E.c.ts == last[0], E.c.id > last[1])))
        rows = conn.execute(q).fetchall()
        if not rows:
            return done
        batch = [row_to_event(r) for r in rows]
        add(conn, aggregate(batch))
        done += len(batch)
        last = (to_us(batch[-1].ts), batch[-1].id)
