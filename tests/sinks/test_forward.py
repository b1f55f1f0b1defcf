"""The forwarder against a real collector (``portolan serve`` in its own process)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portolan.event import Event, encode, make_id
from portolan.pipeline import Pipeline
from portolan.sinks.forward import Collector, ForwardSection, ForwardSink, Spool
from portolan.sources.base import Emitter
from portolan.store import EventFilter, Store
from tests.waiting import eventually, eventually_sync

T0 = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def events(start: int, n: int, sensor: str = "s1") -> list[Event]:
    return [Event(id=make_id(sensor, i), ts=T0 + dt.timedelta(milliseconds=i), sensor=sensor,
                  source="test", service="ssh", action="auth_failure", src_ip="198.51.100.7",
                  user="root") for i in range(start, start + n)]


class Batches:
    name = "batches"

    def __init__(self, batches: list[list[Event]]) -> None:
        self.batches = batches

    async def run(self, out: Emitter) -> None:
        for b in self.batches:
            await out.emit(b)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CollectorProcess:
    """``portolan serve`` on a loopback port, started and killed like a real one."""

    def __init__(self, db_url: str, data_dir: Path) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.env = {**os.environ, "PORTOLAN_DATA_DIR": str(data_dir)}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self) -> str:
        out = subprocess.run([sys.executable, "-m", "portolan", "-q", "token", "create",
                              "--scope", "ingest", "--db", self.db_url],
                             capture_output=True, text=True, env=self.env, check=True)
        return out.stdout.strip()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "portolan", "-q", "serve", "--db", self.db_url,
             "--listen", f"127.0.0.1:{self.port}"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def healthy() -> bool:
            try:
                return httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert eventually_sync(healthy, 30), "collector did not start"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def collector(postgres_url: str, tmp_path: Path) -> Iterator[CollectorProcess]:
    store = Store(postgres_url)
    store.migrate()
    store.close()
    c = CollectorProcess(postgres_url, tmp_path / "collector")
    yield c
    if c.proc is not None and c.proc.poll() is None:
        c.kill()


def sink_for(c: CollectorProcess, token: str, spool: Path, **kw: object) -> ForwardSink:
    settings = ForwardSection(url=c.url, token=token, timeout=5)
    return ForwardSink(Spool(spool, 1 << 30), Collector(settings, "s1"), retry_max=0.3,
                       drain_seconds=0.5, **kw)  # type: ignore[arg-type]


def stored_ids(db_url: str) -> list[str]:
    store = Store(db_url)
    try:
        with store.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("SELECT id FROM events")]
    finally:
        store.close()


async def test_spool_waits_for_the_collector_and_survives_its_kill(
    collector: CollectorProcess, tmp_path: Path
) -> None:
    token = collector.token()
    spool = tmp_path / "spool.db"
    # 1. the collector is down: everything goes to the spool, nothing is lost
    sink = sink_for(collector, token, spool)
    await Pipeline([Batches([events(i * 2000, 2000) for i in range(3)])], [], [sink]).run()
    assert Spool(spool, 1 << 30).depth == 6000

    # 2. a new run (a restarted sensor) finds the spool and delivers it once the collector
    #    is up; the collector is killed with SIGKILL mid-stream and started again
    collector.start()
    sink = sink_for(collector, token, spool, batch_size=500)
    stop = asyncio.Event()

    class Live:
        name = "live"

        async def run(self, out: Emitter) -> None:
            for i in range(20):
                await out.emit(events(6000 + i * 1000, 1000))
                await asyncio.sleep(0.02)
            await stop.wait()

    running = asyncio.create_task(Pipeline([Live()], [], [sink], batch_size=1000).run(stop))
    assert await eventually(lambda: sink.sent >= 3000, within=60)
    collector.kill()
    assert await eventually(lambda: sink.failures > 0, within=30)
    collector.start()
    assert await eventually(lambda: sink.spool.depth == 0 and sink.sent >= 26000, within=120)
    stop.set()
    await running

    ids = stored_ids(collector.db_url)
    assert len(ids) == 26000
    assert len(set(ids)) == 26000
    assert Spool(spool, 1 << 30).depth == 0


async def test_an_event_the_collector_refuses_is_dropped_alone(
    collector: CollectorProcess, tmp_path: Path
) -> None:
    collector.start()
    spool = Spool(tmp_path / "spool.db", 1 << 30)
    good = events(0, 3)
    spool.put(good[:1])
    # a line the collector cannot accept (a port out of range), between two good ones
    with spool._lock:
        spool._db.execute("INSERT INTO spool (data) VALUES (?)",
                          (b'{"ts":"2026-11-23T00:00:00Z","src_port":99999}',))
        spool.depth += 1
    spool.put(good[1:])
    spool.close()
    sink = sink_for(collector, collector.token(), tmp_path / "spool.db")
    sink.start()
    assert await eventually(lambda: sink.spool.depth == 0, within=30)
    await sink.close()
    assert sink.rejected == 1
    assert sorted(stored_ids(collector.db_url)) == sorted(e.id for e in good)


def test_spool_is_bounded_and_drops_the_oldest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_bytes=200_000)
    for i in range(20):
        spool.put(events(i * 100, 100))
    assert spool.bytes <= 200_000
    assert spool.dropped > 0
    assert spool.depth == 2000 - spool.dropped
    oldest_kept = spool.peek(1)[0][1]
    assert make_id("s1", spool.dropped).encode() in oldest_kept
    again = Spool(tmp_path / "spool.db", max_bytes=200_000)
    assert (again.depth, again.bytes) == (spool.depth, spool.bytes)


async def test_collector_keeps_what_the_sensor_says_and_flags_a_skewed_clock(
    collector: CollectorProcess, tmp_path: Path
) -> None:
    from portolan import __version__

    collector.start()
    token = collector.token()
    sink = sink_for(collector, token, tmp_path / "spool.db")
    await Pipeline([Batches([events(0, 10)])], [], [sink]).run()
    client = httpx.AsyncClient(base_url=collector.url)
    (sensor,) = (await client.get("/api/v1/sensors")).json()["sensors"]
    assert sensor["name"] == "s1"
    assert sensor["version"] == __version__
    assert sensor["spool_depth"] is not None
    assert abs(sensor["clock_offset_seconds"]) < 30
    # a sensor whose clock is ten minutes slow: its events are flagged, ts kept as sent
    late = events(100, 3, sensor="slow")
    body = b"".join(e_json + b"\n" for e_json in (encode(e) for e in late))
    sent_at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat()
    r = await client.post("/api/v1/ingest", content=body, headers={
        "Authorization": f"Bearer {token}", "X-Portolan-Sensor": "slow",
        "X-Portolan-Sent-At": sent_at, "X-Portolan-Version": "<b>bad</b>"})
    assert r.status_code == 200, r.text
    store = Store(collector.db_url)
    flagged = store.events(EventFilter(sensor="slow"))
    store.close()
    assert len(flagged) == 3
    assert all(590 < e.attrs["clock_skew_s"] < 700 for e in flagged)
    assert {e.ts for e in flagged} == {e.ts for e in late}
    answer = (await client.get("/api/v1/sensors")).json()["sensors"]
    await client.aclose()
    slow = {s["name"]: s for s in answer}
    assert slow["slow"]["version"] is None  # not a version: not kept
    assert 590 < slow["slow"]["clock_offset_seconds"] < 700
