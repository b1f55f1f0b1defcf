"""The store sink holds a batch while the database is unavailable, and loses nothing."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg

from portolan.event import Event, make_id
from portolan.pipeline import PipelineStats
from portolan.sinks.store import StoreSink
from portolan.store import Store
from tests.waiting import eventually

T0 = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def batch(start: int, n: int) -> list[Event]:
    return [Event(id=make_id(i), ts=T0 + dt.timedelta(seconds=i), service="ssh",
                  action="auth_failure", src_ip="192.0.2.1") for i in range(start, start + n)]


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True)


async def test_database_outage_holds_the_batch(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.migrate()
    stats = PipelineStats()
    sink = StoreSink(store, stats, retry_max=0.2)
    await sink.write(batch(0, 10))
    name = postgres_url.rsplit("/", 1)[1]
    with _admin(postgres_url) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        pending = asyncio.create_task(sink.write(batch(10, 10)))
        assert await eventually(lambda: sink.retries >= 3, within=20)
        assert not pending.done()
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    await asyncio.wait_for(pending, 30)
    assert store.count() == 20
    assert stats.extra["stored"] == 20
    store.close()


async def test_an_event_the_database_refuses_is_skipped_alone(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.migrate()
    stats = PipelineStats()
    sink = StoreSink(store, stats)
    events = batch(0, 8)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER no_evil BEFORE INSERT ON events WHEN NEW.user = 'evil' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    events[5].user = "evil"
    await sink.write(events)
    assert store.count() == 7
    assert sink.rejected == 1
    store.close()


async def test_replayed_batch_counts_duplicates(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.migrate()
    sink = StoreSink(store, PipelineStats())
    await sink.write(batch(0, 5))
    await sink.write(batch(0, 5))
    assert (sink.stored, sink.duplicates) == (5, 5)
    store.close()


async def test_retention_service_purges_old_events(sqlite_url: str) -> None:
    from portolan.sinks.store import retention

    store = Store(sqlite_url)
    store.migrate()
    now = dt.datetime.now(dt.UTC)
    old = [Event(id=make_id("old", i), ts=now - dt.timedelta(days=40), service="s", action="a")
           for i in range(3)]
    new = [Event(id=make_id("new", i), ts=now, service="s", action="a") for i in range(2)]
    store.write(old + new)
    task = asyncio.create_task(retention(store, 30, every=0.05))
    assert await eventually(lambda: store.count() == 2, step=0.05)
    task.cancel()
    store.close()
