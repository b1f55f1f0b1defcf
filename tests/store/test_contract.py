"""The store contract, run for real against SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import importlib.resources
from pathlib import Path

import pytest
import sqlalchemy as sa

from portolan.event import Event, make_id
from portolan.store import HEAD, EventFilter, Store

T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)


def ev(i: int, **kw: object) -> Event:
    base: dict[str, object] = {
        "id": make_id("t", i), "ts": T0 + dt.timedelta(seconds=i), "sensor": "s1",
        "source": "auth.log", "service": "ssh", "action": "auth_failure",
        "src_ip": f"203.0.113.{i % 7}", "src_port": 40000 + i, "user": "root",
    }
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


def test_migrate_is_idempotent(store: Store) -> None:
    assert store.revision() == HEAD
    assert store.migrate() == []


def test_the_head_revision_is_the_one_of_the_migrations() -> None:
    """A database at HEAD is opened without running alembic: HEAD must be the newest."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(
        importlib.resources.files("portolan.store") / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD]


def test_a_database_behind_is_brought_up_to_date(store: Store) -> None:
    """Not taken for one at HEAD: an older revision runs the migrations after it."""
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'asn_traffic'"))
    assert store.migrate() == [HEAD]
    assert store.revision() == HEAD


def test_write_is_idempotent_on_id(store: Store) -> None:
    batch = [ev(i) for i in range(50)]
    first = store.write(batch)
    again = store.write(batch)
    assert (first.stored, first.duplicates) == (50, 0)
    assert (again.stored, again.duplicates) == (0, 50)
    assert store.count() == 50
    # the addresses table counted each event once, not twice
    top, other = store.stats("src_ip")
    assert sum(n for _, n in top) + other == 50


def test_batch_partly_stored_already(store: Store) -> None:
    store.write([ev(i) for i in range(0, 40, 2)])
    result = store.write([ev(i) for i in range(40)])
    assert (result.stored, result.duplicates) == (20, 20)
    assert store.count() == 40
    top, other = store.stats("src_ip")
    assert sum(n for _, n in top) + other == 40


def test_rows_of_different_shapes_in_one_batch(store: Store) -> None:
    """Events that fill different columns, interleaved, each stored as it was."""
    shaped = [ev(i, **extra) for i, extra in enumerate([
        {}, {"country": "NL", "asn": 1136}, {"user": None}, {"country": "DE"},
        {"payload": b"\x00x", "duration": 0.5}, {}, {"user": "admin", "asn": 3320},
    ] * 3)]
    assert store.write(shaped).stored == len(shaped)
    back = {e.id: e for e in store.events(limit=100)}
    assert [back[e.id] for e in shaped] == shaped


def test_duplicates_inside_one_batch(store: Store) -> None:
    e = ev(1)
    result = store.write([e, e, ev(2)])
    assert result.stored == 2
    assert store.count() == 2


def test_round_trip_keeps_every_field(store: Store) -> None:
    original = ev(
        3, payload=b"\x00\xffGET / HTTP/1.1\r\n", attrs={"path": "/<script>", "status": 404},
        country="NL", country_name="Netherlands", city="Amsterdam", lat=52.37, lon=4.89,
        asn=1136, as_org="KPN", network="203.0.113.0/24", duration=1.5, bytes_in=10,
        bytes_out=20, packets=3, dst_ip="192.0.2.1", dst_port=22, proto="tcp",
        user="ro'ot\"; DROP TABLE events;--", geo_db="test", received=T0,
    )
    store.write([original])
    (back,) = store.events()
    assert back == original


def test_events_newest_first_with_cursor(store: Store) -> None:
    store.write([ev(i) for i in range(25)])
    page1 = store.events(limit=10)
    page2 = store.events(limit=10, before=(page1[-1].ts, page1[-1].id))
    assert [e.ts for e in page1] == sorted((e.ts for e in page1), reverse=True)
    assert page1[-1].ts > page2[0].ts
    assert not {e.id for e in page1} & {e.id for e in page2}


def test_filters(store: Store) -> None:
    store.write([ev(i, country="NL" if i % 2 else "DE", action="auth_failure" if i % 3 else
                    "auth_success") for i in range(30)])
    assert store.count(EventFilter(country="nl")) == 15
    assert store.count(EventFilter(action="auth_success")) == 10
    assert store.count(EventFilter(ip="203.0.113.0/24")) == 30
    assert store.count(EventFilter(ip="203.0.113.1")) == len([i for i in range(30) if i % 7 == 1])
    assert store.count(EventFilter(since=T0 + dt.timedelta(seconds=20))) == 10
    assert store.count(EventFilter(text="roo")) == 30


def test_stats_largest_first_with_other(store: Store) -> None:
    store.write([ev(i, src_ip="198.51.100.1" if i < 10 else f"198.51.100.{i}") for i in range(20)])
    top, other = store.stats("src_ip", limit=3)
    assert top[0] == ("198.51.100.1", 10)
    assert other == 20 - sum(n for _, n in top)


def test_stats_by_attribute(store: Store) -> None:
    store.write([ev(i, attrs={"instance": "hf" if i % 2 else "vhf"}) for i in range(10)])
    top, _ = store.stats("attrs.instance")
    assert dict(top) == {"hf": 5, "vhf": 5}


def test_sessions_pair_connect_and_disconnect(store: Store) -> None:
    connect = ev(1, action="connect", session="sess-a", attrs={"client": "SDR#"})
    store.write([connect])
    (active,) = store.sessions(active=True)
    assert active["session"] == "sess-a" and active["end"] is None
    close = ev(11, action="disconnect", session="sess-a")
    store.write([close])
    assert store.sessions(active=True) == []
    (done,) = store.sessions()
    assert done["duration"] == pytest.approx(10.0)
    assert done["attrs"] == {"client": "SDR#"}


def test_disconnect_without_connect_is_kept(store: Store) -> None:
    store.write([ev(5, action="disconnect", session="orphan")])
    (s,) = store.sessions()
    assert s["start"] is None and s["end"] == T0 + dt.timedelta(seconds=5)
    assert store.sessions(active=True) == []


def test_purge(store: Store) -> None:
    store.write([ev(i) for i in range(10)])
    deleted = store.purge(T0 + dt.timedelta(seconds=4))
    assert deleted == 4
    assert store.count() == 6


def test_purge_forgets_that_past_beside_the_events(store: Store) -> None:
    """Sessions ended before, addresses not seen since (not those the user starred or
    annotated), and the rollup buckets that end before the time; the rest stays."""
    from portolan.store import rollups, schema, story

    day = dt.timedelta(days=1)
    store.write([
        ev(1, ts=T0 - 2 * day, src_ip="198.51.100.1"),  # seen then only
        ev(2, ts=T0 - 2 * day, src_ip="198.51.100.2"),  # and again since
        ev(3, ts=T0, src_ip="198.51.100.2"),
        ev(4, ts=T0 - 2 * day, src_ip="198.51.100.3"),  # starred
        ev(5, ts=T0 - 2 * day, src_ip="198.51.100.4"),  # with a note
        ev(6, ts=T0 - 2 * day, src_ip="198.51.100.5", action="connect", session="old"),
        ev(7, ts=T0 - 2 * day, src_ip="198.51.100.5", action="disconnect", session="old"),
        ev(8, ts=T0, src_ip="198.51.100.6", action="connect", session="new"),
    ])
    with store.engine.begin() as conn:
        assert story.set_watch(conn, "198.51.100.3", True, None)
        assert story.set_watch(conn, "198.51.100.4", None, "the neighbours' scanner")
    cutoff = T0 - day
    assert store.purge(cutoff) == 6
    with store.connect() as conn:
        ips = set(conn.execute(sa.select(schema.ips.c.ip)).scalars())
        sessions = set(conn.execute(sa.select(schema.sessions.c.id)).scalars())
        buckets = list(conn.execute(sa.select(rollups.rollups.c.grain,
                                              rollups.rollups.c.bucket)))
    assert ips == {"198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.6"}
    assert sessions == {"new"}
    seconds = int(cutoff.timestamp())
    assert buckets and all(bucket + grain > seconds for grain, bucket in buckets)
    assert {bucket for grain, bucket in buckets if grain == 86400} == {
        int(T0.timestamp()) // 86400 * 86400}


def test_attacker_text_is_data(store: Store) -> None:
    hostile = "x'); DELETE FROM events; --\x1b[31m<script>alert(1)</script>"
    store.write([ev(1, user=hostile, attrs={"ua": hostile})])
    (back,) = store.events(EventFilter(user=hostile))
    assert back.user == hostile and back.attrs["ua"] == hostile


def _tables(store: Store) -> tuple[dict[str, tuple[int, int, int, int, str | None]],
                                   dict[object, int], dict[str, tuple[int, int]],
                                   dict[str, tuple[object, ...]]]:
    """The addresses table (first/last seen, events, failures, country), the rollup
    counts by country, the sensors table (events, newest event) and the sessions table,
    as a test compares them."""
    from portolan.store import rollups, schema

    with store.connect() as conn:
        ips = {r.ip: (r.first_seen, r.last_seen, r.events, r.failures, r.country)
               for r in conn.execute(sa.select(schema.ips))}
        counted = rollups.counts(conn, "country", EventFilter(), limit=100)
        sensors = {r.name: (r.events, r.last_event_ts)
                   for r in conn.execute(sa.select(schema.sensors))}
        sessions = {r.id: (r.start_ts, r.end_ts, r.duration, r.user, r.bytes_in, r.attrs)
                    for r in conn.execute(sa.select(schema.sessions))}
    return ips, {k: n for k, _label, n in counted.top}, sensors, sessions


def test_prepared_batches_written_together_count_as_written_apart(
        store: Store, tmp_path: Path) -> None:
    """The pipeline's group commit: batches prepared one by one (rows and counts made
    ahead), then written in one transaction, leave every table as writing them one by
    one does; an event in two of them, or stored already, is counted once."""
    first = [ev(i, country=["NL", "DE", None][i % 3], sensor=f"s{i % 2}", session=f"c{i % 4}",
                action=["connect", "auth_failure", "disconnect"][i % 3],
                user="root" if i % 5 else None, bytes_in=i if i % 3 == 2 else None,
                attrs={"k": i % 7}) for i in range(30)]
    second = [ev(i, country="FR", action=["auth_success", "disconnect"][i % 2],
                 session=f"c{i % 6}", user=f"u{i}", attrs={"j": i}) for i in range(25, 60)]
    store.write(first[:5])  # stored already: a replay
    result = store.write_prepared([store.prepare(first), store.prepare(second)])
    assert (result.stored, result.duplicates) == (55, 10)  # 5 replayed, 5 in both batches

    apart = Store(f"sqlite:///{tmp_path / 'apart.db'}")
    apart.migrate()
    try:
        apart.write(first[:5])
        apart.write(first)
        apart.write(second)
        assert _tables(store) == _tables(apart)
    finally:
        apart.close()
    assert store.count() == 60


def test_prepared_batches_all_new_merge_as_written_apart(store: Store, tmp_path: Path) -> None:
    """All new: the counts prepared batch by batch are merged, then written once; the
    sessions that span batches come out as when each batch is written alone."""
    def action(i: int) -> str:  # each session opens first and closes last
        return "connect" if i < 4 else "disconnect" if i >= 26 else ["auth_failure",
                                                                     "auth_success"][i % 2]

    parts = [[ev(i, session=f"c{i % 4}", action=action(i), attrs={f"a{k}": i},
                 user=None if i < 12 else f"u{i}", bytes_in=i, country=["NL", None][i % 2])
              for i in range(k * 10, k * 10 + 10)] for k in range(3)]
    result = store.write_prepared([store.prepare(p) for p in parts])
    assert (result.stored, result.duplicates) == (30, 0)
    apart = Store(f"sqlite:///{tmp_path / 'apart.db'}")
    apart.migrate()
    try:
        for p in parts:
            apart.write(p)
        assert _tables(store) == _tables(apart)
    finally:
        apart.close()
    assert len(_tables(store)[3]) == 4


def test_prepared_batches_all_new(store: Store) -> None:
    parts = [[ev(i, country="NL") for i in range(k * 10, k * 10 + 10)] for k in range(3)]
    result = store.write_prepared([store.prepare(p) for p in parts])
    assert (result.stored, result.duplicates) == (30, 0)
    ips, by_country, sensors, _ = _tables(store)
    assert by_country == {"NL": 30}
    assert sensors == {"s1": (30, int(parts[2][9].ts.timestamp() * 1e6))}
    assert sum(row[2] for row in ips.values()) == 30
    assert ips["203.0.113.0"][:2] == (int(parts[0][0].ts.timestamp() * 1e6),
                                      int(parts[2][8].ts.timestamp() * 1e6))


def test_a_batch_is_one_transaction(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The events and what the hooks write commit together: when a hook fails, none of
    the batch is stored, and writing it again counts every event (a SQLite savepoint
    must not commit the events on their own)."""
    from portolan.store import WRITE_HOOKS

    def broken(_conn: object, _events: object, _now: int) -> None:
        raise RuntimeError("hook failed")

    batch = [ev(i) for i in range(20)]
    monkeypatch.setattr("portolan.store.writer.WRITE_HOOKS", [*WRITE_HOOKS, broken])
    with pytest.raises(RuntimeError, match="hook failed"):
        store.write(batch)
    assert store.count() == 0
    monkeypatch.undo()
    assert store.write(batch).stored == 20
    ips, _, sensors, _ = _tables(store)
    assert sum(row[2] for row in ips.values()) == 20
    assert sensors["s1"][0] == 20


def test_postgresql_compares_ids_and_addresses_bytewise(postgres_url: str) -> None:
    """SQLite compares bytes already; MariaDB keeps its own collation."""
    store = Store(postgres_url)
    store.migrate()
    try:
        with store.connect() as conn:
            found = dict(conn.exec_driver_sql(
                "SELECT table_name || '.' || column_name, collation_name "
                "FROM information_schema.columns WHERE table_name || '.' || column_name "
                "IN ('events.id', 'events.src_ip', 'ips.ip', 'sessions.id')").all())
        assert found == {"events.id": "C", "events.src_ip": "C", "ips.ip": "C",
                         "sessions.id": "C"}
    finally:
        store.close()

