"""Writing batches: idempotent inserts, then the tables kept beside the events.

One transaction per batch. The events are inserted in the fastest way each database
offers (SQLite and MariaDB multi-row ``INSERT ... IGNORE``, PostgreSQL binary ``COPY``),
skipping ids already stored; then every write hook runs on the events that were really
new (so a replay changes no count): the sessions, the addresses and the sensors tables,
and whatever else registered a hook (rollups).

Writing is in two steps. :func:`prepare` does the work that needs no connection: the
events as rows, grouped by the columns they fill, and what each :class:`PreparedHook`
computes from them (the counts it will add). :func:`write_prepared` then runs the
statements. The pipeline prepares a batch while the previous one is being written, so
this Python work overlaps with the database's own (SQLite and the PostgreSQL client
release the GIL while they work). When some events of a batch turn out to be stored
already, the hooks compute again from the events that were new.
"""

from __future__ import annotations

import collections
import itertools
import json
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portolan.event import FIELDS, Event
from portolan.store import schema
from portolan.store.engine import EPOCH, ONE_US, from_us, to_us

WriteHook = Callable[[Connection, Sequence[Event], int], None]
"""Called inside the batch's transaction with the new events and the time of writing
(microseconds); must not commit."""

P = TypeVar("P")


@dataclass(frozen=True, eq=False)
class PreparedHook(Generic[P]):
    """A write hook in two steps, so that most of its work can be done ahead, without a
    connection, while an earlier batch is being written.

    ``prepare(events, columns)`` computes what the hook will write for these events (given
    also as the table's columns, see :class:`Columns`; pure: no connection, no shared
    state); ``merge(parts)`` combines the results of several
    batches written in one transaction; ``apply(conn, data, now_us)`` writes it, inside
    the transaction. Called as a plain :data:`WriteHook`, it does the three at once."""

    prepare: Callable[[Sequence[Event], Columns], P]
    merge: Callable[[Sequence[P]], P]
    apply: Callable[[Connection, P, int], None]

    def __call__(self, conn: Connection, events: Sequence[Event], now_us: int) -> None:
        self.apply(conn, self.prepare(events, event_columns(events)), now_us)


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


Shape = tuple[tuple[int, ...], list[int] | None]
"""Positions of the columns that rows have a value in, and of those rows (``None``: all)."""


@dataclass
class Columns:
    """A batch as the ``events`` table's columns: one sequence of values per column, in
    column order, converted to what the database stores. Built in bulk (one C-level pass
    to split the events, then a pass per column that needs converting)."""

    values: list[Sequence[Any]]
    count: int
    _shapes: list[Shape] | None = field(default=None, init=False, repr=False)
    _inserts: dict[bool, list[tuple[str, list[Any]]]] = field(
        default_factory=dict, init=False, repr=False)

    def inserts(self, sqlite: bool) -> list[tuple[str, list[Any]]]:
        """The multi-row ``INSERT ... IGNORE`` statements of these rows (SQLite's, else
        MariaDB's), each with its values: made once, then kept (see :func:`prepare`)."""
        found = self._inserts.get(sqlite)
        if found is None:
            found = self._inserts[sqlite] = list(_insert_statements(self, sqlite))
        return found

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Every row, as a tuple of all the columns."""
        return zip(*self.values, strict=True)

    def shapes(self) -> list[Shape]:
        """The rows grouped by which columns hold a value (made once, then kept). SQLite
        statements name only those columns: binding ``None`` costs Python's sqlite3
        several times what a number costs, and events without a place leave ten columns
        empty. The columns that no row fills, and those that every row fills, are found
        by counting; only the others tell rows apart. Rows are given by position
        (``None``: all of them, the usual batch)."""
        if self._shapes is None:
            n = self.count
            empty = [column.count(None) for column in self.values]
            always = [i for i, k in enumerate(empty) if k == 0]
            sometimes = [i for i, k in enumerate(empty) if 0 < k < n]
            if not sometimes:
                self._shapes = [(tuple(always), None)] if n else []
            else:
                groups: dict[tuple[bool, ...], list[int]] = {}
                keys = zip(*[[v is not None for v in self.values[i]] for i in sometimes],
                           strict=True)
                for position, key in enumerate(keys):
                    group = groups.get(key)
                    if group is None:
                        groups[key] = [position]
                    else:
                        group.append(position)
                self._shapes = [
                    (tuple(sorted(always + [i for i, has in zip(sometimes, key, strict=True)
                                            if has])), positions)
                    for key, positions in groups.items()]
        return self._shapes


_TRANSPOSE_ROWS = 256


def event_columns(events: Sequence[Event]) -> Columns:
    """``events`` as :class:`Columns`."""
    if not events:
        return Columns([() for _ in _COLUMNS], 0)
    rows = list(map(msgspec.structs.astuple, events))
    # turned into columns a few hundred rows at a time (the rows at hand stay in the CPU's
    # cache: three times faster than all at once), then joined
    step = _TRANSPOSE_ROWS
    pieces = [tuple(zip(*rows[i : i + step], strict=True)) for i in range(0, len(rows), step)]
    values: list[Sequence[Any]] = (
        list(pieces[0]) if len(pieces) == 1 else
        [list(itertools.chain.from_iterable(piece[c] for piece in pieces))
         for c in range(len(_COLUMNS))])
    values[_TS] = [(ts - EPOCH) // ONE_US for ts in values[_TS]]
    n = len(events)
    if values[_ATTRS].count(None) != n:
        encode = _json.encode
        values[_ATTRS] = [encode(a).decode() if a else None for a in values[_ATTRS]]
    if values[_RECEIVED].count(None) != n:
        values[_RECEIVED] = [None if r is None else (r - EPOCH) // ONE_US
                             for r in values[_RECEIVED]]
    if values[_PAYLOAD].count(None) != n:
        values[_PAYLOAD] = [None if p is None else bytes(p) for p in values[_PAYLOAD]]
    return Columns(values, n)


@dataclass
class Prepared:
    """A batch made ready to write (see :func:`prepare`)."""

    events: list[Event]
    """The batch, each id once."""
    received: int
    """Events handed over, duplicates within the batch included."""
    columns: Columns
    """``events`` as the table's columns."""
    hooks: dict[int, Any] = field(default_factory=dict)
    """What each :class:`PreparedHook` (by ``id``) computed for all of ``events``."""


def prepare(events: Sequence[Event], *, dialect: str = "sqlite") -> Prepared:
    """The work of writing ``events`` that needs no connection (pure; safe to run in any
    thread while another batch is being written). For SQLite and MariaDB (``dialect``
    ``sqlite``, ``mysql`` or ``mariadb``) that includes the INSERT statements and their
    values (PostgreSQL's COPY needs none)."""
    if len({e.id for e in events}) == len(events):
        batch = list(events)
    else:
        unique: dict[str, Event] = {}
        for event in events:
            unique.setdefault(event.id, event)
        batch = list(unique.values())
    columns = event_columns(batch)
    if dialect != "postgresql":
        columns.inserts(dialect == "sqlite")
    prepared = Prepared(batch, len(events), columns)
    for hook in WRITE_HOOKS:
        if isinstance(hook, PreparedHook):
            prepared.hooks[id(hook)] = hook.prepare(batch, columns)
    return prepared


def write_prepared(conn: Connection, parts: Sequence[Prepared], now_us: int) -> WriteResult:
    """Store prepared batches in the connection's open transaction, as one."""
    total = sum(len(part.events) for part in parts)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        new_ids = _insert_postgresql(conn, [part.columns for part in parts])
    else:
        new_ids = _insert_generic(conn, [part.columns for part in parts], dialect)
    received = sum(part.received for part in parts)
    all_new = new_ids is None or len(new_ids) == total
    if all_new:
        new = parts[0].events if len(parts) == 1 else [e for p in parts for e in p.events]
    else:  # some were stored already (or came twice, in two of the parts)
        assert new_ids is not None
        unique: dict[str, Event] = {}
        for part in parts:
            for e in part.events:
                if e.id in new_ids:
                    unique.setdefault(e.id, e)
        new = list(unique.values())
    for hook in WRITE_HOOKS:
        if all_new and isinstance(hook, PreparedHook) and all(
                id(hook) in part.hooks for part in parts):
            data = [part.hooks[id(hook)] for part in parts]
            hook.apply(conn, data[0] if len(data) == 1 else hook.merge(data), now_us)
        else:
            hook(conn, new, now_us)
    return WriteResult(stored=len(new), duplicates=received - len(new))


def _existing(conn: Connection, keys: list[tuple[int, str]]) -> set[str]:
    """Ids of these (ts, id) keys that are already stored (one primary-key probe each)."""
    found: set[str] = set()
    e = schema.events.c
    for start in range(0, len(keys), 450):
        chunk = keys[start : start + 450]
        q = sa.select(e.id).where(sa.tuple_(e.ts, e.id).in_(chunk))
        found.update(conn.execute(q).scalars())
    return found


#: Parameters per multi-row statement (SQLite allows 32,766 in one statement).
_PARAMS_PER_STATEMENT = 30_000


def _statements(head: str, one: str, tail: str, count: int, width: int,
                ) -> Iterator[tuple[int, int, str]]:
    """``count`` rows of ``width`` values cut into multi-row statements of at most
    :data:`_PARAMS_PER_STATEMENT` parameters: (first row, rows, ``head`` + ``VALUES`` +
    ``one`` once per row + ``tail``) for each. One statement, and one step of the
    database, for thousands of rows (each step releases and takes back the GIL, and
    taking it back waits for the rest of the process)."""
    per = max(1, _PARAMS_PER_STATEMENT // width)
    full = ""
    for start in range(0, count, per):
        rows = min(per, count - start)
        if rows == per and full:
            sql = full
        else:
            sql = head + "VALUES " + ",".join([one] * rows) + tail
            if rows == per:
                full = sql
        yield start, rows, sql


def _insert_generic(conn: Connection, parts: Sequence[Columns], dialect: str) -> set[str] | None:
    """SQLite and MariaDB: multi-row ``INSERT ... IGNORE``, one statement per 30,000 values,
    naming only the columns that hold a value, in a savepoint. When every row went in (the
    usual case) that is all: returns ``None`` ("all new"). Otherwise the savepoint is
    rolled back and the rows go in again with ``RETURNING id``, which gives exactly the ids
    that were new. (Each row that RETURNING hands back is one step of the database, and a
    thread waits for the GIL after each: too dear for every batch.) MySQL, which has no
    RETURNING, checks the keys first."""
    sqlite = dialect == "sqlite"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if not sqlite and not getattr(conn.dialect, "is_mariadb", False):
            new: set[str] = set()
            for part in parts:
                ids, stamps = part.values[0], part.values[_TS]
                existing = _existing(conn, list(zip(stamps, ids, strict=True)))
                keep = [i for i, id_ in enumerate(ids) if id_ not in existing]
                if keep:
                    kept = Columns([[column[i] for i in keep] for column in part.values],
                                   len(keep))
                    _inserts(cursor, kept, sqlite, returning=False)
                    new.update(ids[i] for i in keep)
            return new
        total = sum(part.count for part in parts)
        cursor.execute("SAVEPOINT portolan_insert")
        inserted = sum(_inserts(cursor, part, sqlite, returning=False) for part in parts)
        if inserted == total:
            cursor.execute("RELEASE SAVEPOINT portolan_insert")
            return None
        cursor.execute("ROLLBACK TO SAVEPOINT portolan_insert")
        cursor.execute("RELEASE SAVEPOINT portolan_insert")
        new = set()
        for part in parts:
            _inserts(cursor, part, sqlite, returning=True, new=new)
        return new
    finally:
        cursor.close()


def _inserts(cursor: Any, part: Columns, sqlite: bool, *, returning: bool,
             new: set[str] | None = None) -> int:
    """Run the multi-row ``INSERT ... IGNORE`` statements of :func:`_insert_generic`;
    returns how many rows went in, and adds their ids to ``new`` with ``returning``."""
    inserted = 0
    for sql, flat in part.inserts(sqlite):
        if returning:
            cursor.execute(sql + " RETURNING id", flat)
            ids = [r[0] for r in cursor.fetchall()]
            assert new is not None
            new.update(ids)
            inserted += len(ids)
        else:
            cursor.execute(sql, flat)
            inserted += cursor.rowcount
    return inserted


def _insert_statements(part: Columns, sqlite: bool) -> Iterator[tuple[str, list[Any]]]:
    """The statements of :meth:`Columns.inserts`: one per shape of row (see
    :meth:`Columns.shapes`) and 30,000 values. The values of a statement are laid out
    row after row by slice assignment, a column at a time (no tuple per row)."""
    mark = "?" if sqlite else "%s"
    quote = '"' if sqlite else "`"
    head = "INSERT OR IGNORE INTO events (" if sqlite else "INSERT IGNORE INTO events ("
    for columns, positions in part.shapes():
        width = len(columns)
        names = ",".join(f"{quote}{_COLUMNS[i]}{quote}" for i in columns)
        one = "(" + ",".join([mark] * width) + ")"
        if positions is None:
            count, picked = part.count, [part.values[i] for i in columns]
        else:
            count = len(positions)
            pick = operator.itemgetter(*positions) if count > 1 else (
                lambda column, at=positions[0]: (column[at],))
            picked = [pick(part.values[i]) for i in columns]
        for start, rows, sql in _statements(f"{head}{names}) ", one, "", count, width):
            flat: list[Any] = [None] * (rows * width)
            for j, column in enumerate(picked):
                flat[j::width] = column[start : start + rows]
            yield sql, flat


_PG_COLS = ",".join(f'"{c}"' for c in _COLUMNS)


def _pg_type(column: sa.Column[Any]) -> str:
    """The PostgreSQL type of an ``events`` column, for binary COPY."""
    kind = column.type
    if isinstance(kind, sa.BigInteger):
        return "int8"
    if isinstance(kind, sa.Integer):
        return "int4"
    if isinstance(kind, sa.Float):
        return "float8"
    if isinstance(kind, sa.LargeBinary):
        return "bytea"
    return "text"  # VARCHAR and TEXT share their binary form


#: Binary COPY: half the client's work of text COPY, and less of the server's.
_PG_TYPES = [_pg_type(c) for c in schema.events.columns]
_PG_COPY = f"COPY {{table}} ({_PG_COLS}) FROM STDIN (FORMAT BINARY)"


def _insert_postgresql(conn: Connection, parts: Sequence[Columns]) -> set[str] | None:
    """``COPY`` straight into the table, in a savepoint: a batch with no stored ids (the
    usual case) costs what COPY costs, and ``None`` says that all were new. When some id is
    stored already (a replay), the savepoint is rolled back and the batch goes through a
    temporary table and ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``, which gives the
    ids that were new."""
    import psycopg

    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SAVEPOINT portolan_copy")
        try:
            with cur.copy(_PG_COPY.format(table="events")) as copy:
                copy.set_types(_PG_TYPES)
                for part in parts:
                    for row in part.rows():
                        copy.write_row(row)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT portolan_copy")
        else:
            cur.execute("RELEASE SAVEPOINT portolan_copy")
            return None  # all new
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS portolan_incoming "
            "(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(_PG_COPY.format(table="portolan_incoming")) as copy:
            copy.set_types(_PG_TYPES)
            for part in parts:
                for row in part.rows():
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
    if conn.dialect.name != "sqlite":  # every writer locks rows in the same order
        rows = sorted(rows, key=operator.itemgetter(key))
    params: list[Any] = rows if order is None else [[r[n] for n in order] for r in rows]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "sqlite":
            sqlite_many(cursor, sql, params)
        else:
            cursor.executemany(sql, params)
    finally:
        cursor.close()


def sqlite_many(cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``cursor.executemany(sql, rows)`` for SQLite, as multi-row statements (see
    :func:`_statements`): ``sql`` has one ``VALUES (?, ...)`` group."""
    if not rows:
        return
    width = len(rows[0])
    one = "(" + ", ".join(["?"] * width) + ")"
    head, found, tail = sql.partition("VALUES " + one)
    if not found or width == 0:
        cursor.executemany(sql, rows)
        return
    for start, count, statement in _statements(head, one, tail, len(rows), width):
        cursor.execute(statement, list(itertools.chain.from_iterable(
            rows[start : start + count])))


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


IpCounts = dict[str, list[Any]]
"""ip -> [first, last, events, failures, successes, the newest event with a place]."""


def _count_ips(events: Sequence[Event], _columns: Columns | None = None) -> IpCounts:
    agg: IpCounts = {}
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
            _widen(row, ts, ts, e)
        row[2] += 1
        action = e.action
        if action in failure:
            row[3] += 1
        elif action in success:
            row[4] += 1
    return agg


def _widen(row: list[Any], first: Any, last: Any, e: Event) -> None:
    """Stretches an address's first and last seen over [first, last], ``e`` being the event
    at ``last``: the place kept is the newest one known."""
    if first < row[0]:
        row[0] = first
    if last >= row[1]:
        row[1] = last
        if e.country:
            row[5] = e
    elif e.country and not row[5].country:
        row[5] = e


def _merge_ips(parts: Sequence[IpCounts]) -> IpCounts:
    """Counts of batches in the order they came, as if counted together."""
    out: IpCounts = {}
    for part in parts:
        for ip, (first, last, n, failures, successes, e) in part.items():
            row = out.get(ip)
            if row is None:
                out[ip] = [first, last, n, failures, successes, e]
                continue
            _widen(row, first, last, e)
            row[2] += n
            row[3] += failures
            row[4] += successes
    return out


def _write_ips(conn: Connection, agg: IpCounts, _now_us: int) -> None:
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


update_ips = PreparedHook(_count_ips, _merge_ips, _write_ips)
"""One row per remote address: first/last seen, counts, latest place and network."""


SensorCounts = dict[str, list[int]]
"""sensor name -> [events, time of the newest (microseconds)]."""

_SENSOR = FIELDS.index("sensor")


def _count_sensors(_events: Sequence[Event], columns: Columns) -> SensorCounts:
    names, stamps = columns.values[_SENSOR], columns.values[_TS]
    counts = collections.Counter(names)
    if len(counts) == 1:
        return {names[0]: [len(names), max(stamps)]}
    newest: dict[str, int] = {}
    for name, ts in zip(names, stamps, strict=True):
        if name not in newest or ts > newest[name]:
            newest[name] = ts
    return {name: [n, newest[name]] for name, n in counts.items()}


def _merge_sensors(parts: Sequence[SensorCounts]) -> SensorCounts:
    out: SensorCounts = {}
    for part in parts:
        for name, (n, newest) in part.items():
            row = out.get(name)
            if row is None:
                out[name] = [n, newest]
            else:
                row[0] += n
                row[1] = max(row[1], newest)
    return out


def _write_sensors(conn: Connection, counts: SensorCounts, now_us: int) -> None:
    """Every sensor that reports: last contact, newest event time, event count."""
    rows = [{"name": name, "first_seen": now_us, "last_seen": now_us,
             "last_event_ts": newest, "events": n, "version": None, "attrs": None}
            for name, (n, newest) in counts.items()]
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


update_sensors = PreparedHook(_count_sensors, _merge_sensors, _write_sensors)
"""One row per sensor: last contact, newest event time, event count."""


OPEN_ACTIONS = frozenset({"connect", "auth_success"})
CLOSE_ACTIONS = frozenset({"disconnect", "session_end"})


SessionRows = dict[str, dict[str, Any]]
"""session id -> its row as the events of a batch make it (``attrs`` still a dict)."""


def _session_rows(events: Sequence[Event], columns: Columns) -> SessionRows:
    """What the events of a batch say of their sessions (see :data:`update_sessions`)."""
    rows: SessionRows = {}
    for e, ts in zip(events, columns.values[_TS], strict=True):
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
    return rows


def _merge_sessions(parts: Sequence[SessionRows]) -> SessionRows:
    """The rows of batches in the order they came, as if made from all their events."""
    out: SessionRows = {}
    for part in parts:
        for sid, later in part.items():
            row = out.get(sid)
            if row is None:
                out[sid] = {**later, "attrs": dict(later["attrs"])}
                continue
            if later["start_ts"] is not None and (row["start_ts"] is None
                                                  or later["start_ts"] < row["start_ts"]):
                row["start_ts"] = later["start_ts"]
            for name in ("end_ts", "duration", "bytes_in", "bytes_out"):
                if later[name] is not None:
                    row[name] = later[name]
            if later["user"] and not row["user"]:
                row["user"] = later["user"]
            row["attrs"].update(later["attrs"])
    return out


def _write_sessions(conn: Connection, rows: SessionRows, _now_us: int) -> None:
    """Pair connects with disconnects by ``Event.session``: start, end, duration.

    A connect opens (or completes) the session's row; a disconnect closes it, computing
    the duration from the start when the event does not carry one. A disconnect whose
    connect was never seen is kept, with no start. Other events of the session fill in
    what is missing (the user name, the place). (The rows are copied, not changed: a
    write that fails is tried again with the same prepared rows.)
    """
    if not rows:
        return
    rows = {sid: dict(row) for sid, row in rows.items()}
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


update_sessions = PreparedHook(_session_rows, _merge_sessions, _write_sessions)
"""One row per session (``Event.session``): connect paired with disconnect."""

WRITE_HOOKS.extend([update_sessions, update_ips, update_sensors])

__all__ = ["WRITE_HOOKS", "Columns", "Prepared", "PreparedHook", "WriteHook", "WriteResult",
           "event_columns", "from_us", "prepare", "write_prepared"]
