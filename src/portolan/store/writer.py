"""Writing batches: idempotent inserts, then the tables kept beside the events.

One transaction per batch. The events are inserted in the fastest way each database
offers (SQLite ``executemany``, PostgreSQL ``COPY`` into a temporary table, MariaDB
multi-row ``INSERT IGNORE``), skipping ids already stored; then every write hook runs on
the events that were really new (so a replay changes no count): the sessions, the
addresses and the sensors tables, and whatever else registered a hook (rollups).
"""

from __future__ import annotations

import collections
import itertools
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portolan.event import FIELDS, Event
from portolan.store import schema
from portolan.store.engine import EPOCH, ONE_US, from_us, to_us

WriteHook = Callable[[Connection, Sequence[Event], int], None]
"""Called inside the batch's transaction with the new events and the time of writing
(microseconds); must not commit."""

#: Hooks run for every written batch, in order.
WRITE_HOOKS: list[WriteHook] = []

_json = msgspec.json.Encoder()
_COLUMNS = tuple(c.name for c in schema.events.columns)
assert _COLUMNS == FIELDS, "events table and Event fields must be in the same order"
_TS = FIELDS.index("ts")
_ATTRS = FIELDS.index("attrs")
_RECEIVED = FIELDS.index("received")
_PAYLOAD = FIELDS.index("payload")


@dataclass
class WriteResult:
    """What one write did."""

    stored: int = 0
    duplicates: int = 0


def event_row(event: Event) -> list[Any]:
    """An event as the values of an ``events`` row, in column order."""
    row = list(msgspec.structs.astuple(event))
    row[_TS] = (row[_TS] - EPOCH) // ONE_US
    attrs = row[_ATTRS]
    row[_ATTRS] = _json.encode(attrs).decode() if attrs else None
    received = row[_RECEIVED]
    if received is not None:
        row[_RECEIVED] = (received - EPOCH) // ONE_US
    payload = row[_PAYLOAD]
    if payload is not None:
        row[_PAYLOAD] = bytes(payload)
    return row


def write(conn: Connection, events: Sequence[Event], now_us: int) -> WriteResult:
    """Store a batch in the connection's open transaction."""
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.id, event)
    batch = list(unique.values())
    rows = [event_row(e) for e in batch]
    dialect = conn.dialect.name
    if dialect == "postgresql":
        new_ids = _insert_postgresql(conn, rows)
    else:
        new_ids = _insert_generic(conn, rows, dialect)
    new = batch if len(new_ids) == len(batch) else [e for e in batch if e.id in new_ids]
    for hook in WRITE_HOOKS:
        hook(conn, new, now_us)
    return WriteResult(stored=len(new), duplicates=len(events) - len(new))


def _existing(conn: Connection, keys: list[tuple[int, str]]) -> set[str]:
    """Ids of these (ts, id) keys that are already stored (one primary-key probe each)."""
    found: set[str] = set()
    e = schema.events.c
    for start in range(0, len(keys), 450):
        chunk = keys[start : start + 450]
        q = sa.select(e.id).where(sa.tuple_(e.ts, e.id).in_(chunk))
        found.update(conn.execute(q).scalars())
    return found


#: Values per multi-row INSERT (SQLite allows 32,766 parameters in one statement).
_VALUES_PER_STATEMENT = 30_000
_NONES = (None,) * len(_COLUMNS)


def _by_columns(rows: list[list[Any]]) -> dict[tuple[int, ...], list[list[Any]]]:
    """Rows grouped by which columns they have a value for (most of a batch share one
    shape): each group is inserted naming only those columns, so the NULLs of the others
    cost nothing to bind (binding ``None`` is several times dearer than an integer in
    Python's sqlite3)."""
    groups: dict[tuple[bool, ...], list[list[Any]]] = {}
    for row in rows:
        key = tuple(map(operator.is_not, row, _NONES))
        group = groups.get(key)
        if group is None:
            groups[key] = [row]
        else:
            group.append(row)
    return {tuple(i for i, has in enumerate(key) if has): group
            for key, group in groups.items()}


def _insert_generic(conn: Connection, rows: list[list[Any]], dialect: str) -> set[str]:
    """SQLite and MariaDB: multi-row ``INSERT ... IGNORE ... RETURNING id`` gives exactly the
    ids that were new, in one statement per 30,000 values. MySQL, which has no RETURNING,
    checks the keys first."""
    sqlite = dialect == "sqlite"
    returning = sqlite or bool(getattr(conn.dialect, "is_mariadb", False))
    if not returning:
        existing = _existing(conn, [(r[_TS], r[0]) for r in rows])
        rows = [r for r in rows if r[0] not in existing]
        if not rows:
            return set()
    mark = "?" if sqlite else "%s"
    quote = '"' if sqlite else "`"
    head = "INSERT OR IGNORE INTO events (" if sqlite else "INSERT IGNORE INTO events ("
    new: set[str] = set()
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for columns, group in _by_columns(rows).items():
            names = ",".join(f"{quote}{_COLUMNS[i]}{quote}" for i in columns)
            one = "(" + ",".join([mark] * len(columns)) + ")"
            pick = operator.itemgetter(*columns) if len(columns) > 1 else (
                lambda row, i=columns[0]: (row[i],))
            per = max(1, _VALUES_PER_STATEMENT // len(columns))
            for start in range(0, len(group), per):
                part = group[start : start + per]
                sql = f"{head}{names}) VALUES " + ",".join([one] * len(part))
                flat = list(itertools.chain.from_iterable(map(pick, part)))
                if returning:
                    cursor.execute(sql + " RETURNING id", flat)
                    new.update(r[0] for r in cursor.fetchall())
                else:
                    cursor.execute(sql, flat)
                    new.update(r[0] for r in part)
    finally:
        cursor.close()
    return new


_PG_COLS = ",".join(f'"{c}"' for c in _COLUMNS)


def _insert_postgresql(conn: Connection, rows: list[list[Any]]) -> set[str]:
    """``COPY`` straight into the table, in a savepoint: a batch with no stored ids (the
    usual case) costs what COPY costs. When some id is stored already (a replay), the
    savepoint is rolled back and the batch goes through a temporary table and
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``, which gives the ids that were new."""
    import psycopg

    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SAVEPOINT portolan_copy")
        try:
            with cur.copy(f"COPY events ({_PG_COLS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT portolan_copy")
        else:
            cur.execute("RELEASE SAVEPOINT portolan_copy")
            return {row[0] for row in rows}
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS portolan_incoming "
            "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY portolan_incoming ({_PG_COLS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO events ({_PG_COLS}) SELECT {_PG_COLS} FROM portolan_incoming "
            "ON CONFLICT (ts, id) DO NOTHING RETURNING id"
        )
        new = {r[0] for r in cur.fetchall()}
        cur.execute("DELETE FROM portolan_incoming")
    return new


# -- the tables kept beside the events ---------------------------------------------------


#: Upsert statements as SQL text, made once per dialect (driver, server version) and table:
#: the hooks run on every batch, and building and compiling the statement each time cost
#: more than running it.
_UPSERTS: dict[tuple[Any, ...], tuple[str, tuple[str, ...] | None]] = {}


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], key: str,
            update: Callable[[Any], dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, in each dialect's words. ``update`` gets
    the "incoming row" namespace and returns column -> expression; it must be the same for
    every call on one table (the statement is compiled on the first call, then reused).
    Every row has a value for every column of the table, under the column's name."""
    if not rows:
        return
    dialect = conn.dialect
    cache_key = (type(dialect), dialect.server_version_info,
                 getattr(dialect, "is_mariadb", False), table.name)
    found = _UPSERTS.get(cache_key)
    if found is None:
        found = _UPSERTS[cache_key] = _compile_upsert(conn, table, list(rows[0]), key, update)
    sql, order = found
    params: list[Any] = rows if order is None else [[r[n] for n in order] for r in rows]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def _compile_upsert(conn: Connection, table: sa.Table, columns: list[str], key: str,
                    update: Callable[[Any], dict[str, Any]]) -> tuple[str, tuple[str, ...] | None]:
    """The upsert as the driver's SQL, and the order of its parameters when the driver's
    parameters are positional (SQLite) instead of named."""
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=[key], set_=update(stmt.excluded))
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=[key], set_=update(stmt.excluded))
    else:
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table)
        stmt = stmt.on_duplicate_key_update(update(stmt.inserted))
    compiled = stmt.compile(dialect=conn.dialect, column_keys=columns)
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
    unknown = set(names) - set(columns)
    assert not unknown, f"upsert into {table.name}: parameters {unknown} are not columns"
    return compiled.string, names if compiled.positional else None


def _least(conn: Connection, a: Any, b: Any) -> Any:
    return sa.func.min(a, b) if conn.dialect.name == "sqlite" else sa.func.least(a, b)


def _greatest(conn: Connection, a: Any, b: Any) -> Any:
    return sa.func.max(a, b) if conn.dialect.name == "sqlite" else sa.func.greatest(a, b)


FAILURE_ACTIONS = frozenset({"auth_failure", "invalid_user"})
SUCCESS_ACTIONS = frozenset({"auth_success"})


def update_ips(conn: Connection, events: Sequence[Event], _now_us: int) -> None:
    """One row per remote address: first/last seen, counts, latest place and network."""
    agg: dict[str, list[Any]] = {}  # ip -> [first, last, events, failures, successes, event]
    failure, success = FAILURE_ACTIONS, SUCCESS_ACTIONS
    for e in events:
        ip = e.src_ip if e.direction == "inbound" else e.dst_ip
        if not ip:
            continue
        ts = e.ts
        row = agg.get(ip)
        if row is None:
            row = agg[ip] = [ts, ts, 0, 0, 0, e]
        else:
            if ts < row[0]:
                row[0] = ts
            if ts >= row[1]:
                row[1] = ts
                if e.country:
                    row[5] = e
            elif e.country and not row[5].country:
                row[5] = e
        row[2] += 1
        action = e.action
        if action in failure:
            row[3] += 1
        elif action in success:
            row[4] += 1
    rows = [{"ip": ip, "first_seen": to_us(first), "last_seen": to_us(last), "events": n,
             "failures": failures, "successes": successes, "country": e.country, "asn": e.asn,
             "as_org": e.as_org, "starred": False, "note": None}
            for ip, (first, last, n, failures, successes, e) in agg.items()]
    t = schema.ips
    _upsert(conn, t, rows, "ip", lambda x: {
        "first_seen": _least(conn, t.c.first_seen, x.first_seen),
        "last_seen": _greatest(conn, t.c.last_seen, x.last_seen),
        "events": t.c.events + x.events,
        "failures": t.c.failures + x.failures,
        "successes": t.c.successes + x.successes,
        "country": sa.func.coalesce(x.country, t.c.country),
        "asn": sa.func.coalesce(x.asn, t.c.asn),
        "as_org": sa.func.coalesce(x.as_org, t.c.as_org),
    })


def update_sensors(conn: Connection, events: Sequence[Event], now_us: int) -> None:
    """Every sensor that reports: last contact, newest event time, event count."""
    counts = collections.Counter([e.sensor for e in events])
    if len(counts) == 1:
        newest = {next(iter(counts)): max(e.ts for e in events)}
    else:
        newest = {}
        for e in events:
            if e.sensor not in newest or e.ts > newest[e.sensor]:
                newest[e.sensor] = e.ts
    rows = [{"name": name, "first_seen": now_us, "last_seen": now_us,
             "last_event_ts": to_us(newest[name]), "events": n, "version": None, "attrs": None}
            for name, n in counts.items()]
    t = schema.sensors
    _upsert(conn, t, rows, "name", lambda x: {
        "last_seen": x.last_seen,
        # a literal, not a bound parameter: PyMySQL's executemany cannot take parameters
        # in the ON DUPLICATE KEY UPDATE clause
        "last_event_ts": _greatest(conn, sa.func.coalesce(t.c.last_event_ts,
                                                          sa.literal_column("0")),
                                   x.last_event_ts),
        "events": t.c.events + x.events,
    })


OPEN_ACTIONS = frozenset({"connect", "auth_success"})
CLOSE_ACTIONS = frozenset({"disconnect", "session_end"})


def update_sessions(conn: Connection, events: Sequence[Event], _now_us: int) -> None:
    """Pair connects with disconnects by ``Event.session``: start, end, duration.

    A connect opens (or completes) the session's row; a disconnect closes it, computing
    the duration from the start when the event does not carry one. A disconnect whose
    connect was never seen is kept, with no start. Other events of the session fill in
    what is missing (the user name, the place).
    """
    rows: dict[str, dict[str, Any]] = {}
    for e in events:
        if not e.session:
            continue
        row = rows.get(e.session)
        if row is None:
            row = rows[e.session] = {
                "id": e.session, "sensor": e.sensor, "source": e.source, "service": e.service,
                "proto": e.proto, "src_ip": e.src_ip, "src_port": e.src_port,
                "dst_ip": e.dst_ip, "dst_port": e.dst_port, "user": e.user, "start_ts": None,
                "end_ts": None, "duration": None, "bytes_in": None, "bytes_out": None,
                "attrs": {}, "country": e.country, "city": e.city, "lat": e.lat, "lon": e.lon,
                "asn": e.asn, "as_org": e.as_org,
            }
        ts = to_us(e.ts)
        if e.action in OPEN_ACTIONS and (row["start_ts"] is None or ts < row["start_ts"]):
            row["start_ts"] = ts
        if e.action in CLOSE_ACTIONS:
            row["end_ts"] = ts
            if e.duration is not None:
                row["duration"] = e.duration
            if e.bytes_in is not None:
                row["bytes_in"] = e.bytes_in
            if e.bytes_out is not None:
                row["bytes_out"] = e.bytes_out
        if e.user and not row["user"]:
            row["user"] = e.user
        if e.attrs:
            row["attrs"].update(e.attrs)
    if not rows:
        return
    t = schema.sessions
    known: dict[str, tuple[int | None, str | None]] = {}
    ids = list(rows)
    for start in range(0, len(ids), 900):
        q = sa.select(t.c.id, t.c.start_ts, t.c.attrs).where(t.c.id.in_(ids[start : start + 900]))
        for sid, start_ts, attrs in conn.execute(q):
            known[sid] = (start_ts, attrs)
    for sid, row in rows.items():
        old_start, old_attrs = known.get(sid, (None, None))
        if old_attrs:
            merged = json.loads(old_attrs)
            merged.update(row["attrs"])
            row["attrs"] = merged
        start_ts = row["start_ts"] if row["start_ts"] is not None else old_start
        if old_start is not None and row["start_ts"] is not None:
            start_ts = min(old_start, row["start_ts"])
        row["start_ts"] = start_ts
        if row["end_ts"] is not None and row["duration"] is None and start_ts is not None:
            row["duration"] = max(0.0, (row["end_ts"] - start_ts) / 1e6)
        row["attrs"] = _json.encode(row["attrs"]).decode() if row["attrs"] else None
    _upsert(conn, t, list(rows.values()), "id", lambda x: {
        "start_ts": x.start_ts,
        "end_ts": sa.func.coalesce(x.end_ts, t.c.end_ts),
        "duration": sa.func.coalesce(x.duration, t.c.duration),
        "bytes_in": sa.func.coalesce(x.bytes_in, t.c.bytes_in),
        "bytes_out": sa.func.coalesce(x.bytes_out, t.c.bytes_out),
        "user": sa.func.coalesce(t.c.user, x.user),
        "attrs": x.attrs,
        "country": sa.func.coalesce(x.country, t.c.country),
        "city": sa.func.coalesce(x.city, t.c.city),
        "lat": sa.func.coalesce(x.lat, t.c.lat),
        "lon": sa.func.coalesce(x.lon, t.c.lon),
        "asn": sa.func.coalesce(x.asn, t.c.asn),
        "as_org": sa.func.coalesce(x.as_org, t.c.as_org),
    })


WRITE_HOOKS.extend([update_sessions, update_ips, update_sensors])

__all__ = ["WRITE_HOOKS", "WriteHook", "WriteResult", "event_row", "from_us", "write"]
