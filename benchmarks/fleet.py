"""Fleet throughput: sensors -> collectors -> PostgreSQL.

1. drain: one sensor's spool of N events (what piles up during an outage) is delivered to
   one collector (``portolan serve``) into PostgreSQL; prints the time it takes.
2. fleet: three sensor processes, each with a spool of N/3 events, deliver at the same time
   to two collector processes on one PostgreSQL; prints events/s stored.

Compared, in the same run, with what the collectors' database alone takes: the same events
written by ``Store.write`` in one process (the ceiling the HTTP hop costs against).

    .venv/bin/python benchmarks/fleet.py                # 1,000,000 events
    .venv/bin/python benchmarks/fleet.py -n 200000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from portolan.event import Event, make_id
from portolan.sinks.forward import Collector, ForwardSection, ForwardSink, Spool
from portolan.store import Store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def events(sensor: str, start: int, n: int) -> list[Event]:
    return [Event(id=make_id(sensor, i), ts=T0 + dt.timedelta(milliseconds=i), sensor=sensor,
                  source="auth.log", service="ssh", action="auth_failure", proto="tcp",
                  src_ip=f"198.51.{i % 200}.{i % 250}", src_port=1024 + i % 60000, dst_port=22,
                  user="root", country="NL", asn=1136) for i in range(start, start + n)]


def fill_spool(path: Path, sensor: str, n: int) -> None:
    spool = Spool(path, 1 << 40)
    for start in range(0, n, 10000):
        spool.put(events(sensor, start, min(10000, n - start)))
    spool.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_collector(db: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "portolan", "-q", "serve", "--db", db,
                             "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("collector did not start")


def drain(spool_path: str, url: str, token: str, sensor: str) -> float:
    """Deliver a spool; returns the seconds it took."""

    async def go() -> float:
        sink = ForwardSink(Spool(Path(spool_path), 1 << 40),
                           Collector(ForwardSection(url=url, token=token, timeout=60), sensor),
                           batch_size=5000, retry_max=0.5)
        started = time.perf_counter()
        sink.start()
        while sink.spool.depth:  # noqa: ASYNC110 - polling the spool is the measurement
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        await sink.close()
        return elapsed

    return asyncio.run(go())


def database() -> tuple[str, str]:
    name = f"portolan_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    Store(url).migrate()
    return name, url


def drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def token(db: str, home: Path) -> str:
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(home)}
    return subprocess.run([sys.executable, "-m", "portolan", "-q", "token", "create",
                           "--scope", "ingest", "--db", db], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def count(db: str) -> int:
    with psycopg.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", "--events", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        # the ceiling: the database alone
        name, db = database()
        try:
            store = Store(db)
            batch = events("direct", 0, n // 4)
            started = time.perf_counter()
            for i in range(0, len(batch), 5000):
                store.write(batch[i : i + 5000])
            direct = len(batch) / (time.perf_counter() - started)
            store.close()
        finally:
            drop(name)
        print(f"database alone (Store.write, one process): {direct:,.0f} events/s")

        # 1. drain one spool of n events through one collector
        print(f"filling a spool of {n:,} events...", file=sys.stderr)
        fill_spool(home / "spool0.db", "s0", n)
        name, db = database()
        try:
            proc, url = start_collector(db, home / "c0")
            seconds = drain(str(home / "spool0.db"), url, token(db, home), "s0")
            proc.terminate()
            proc.wait()
            assert count(db) == n
        finally:
            drop(name)
        print(f"drain: a spool of {n:,} events delivered in {seconds:.1f} s "
              f"({n / seconds:,.0f} events/s); ratio to the database alone "
              f"{n / seconds / direct:.2f}")

        # 2. three sensors, two collectors, one database
        per = n // 3
        for i in range(3):
            fill_spool(home / f"spool{i + 1}.db", f"s{i + 1}", per)
        name, db = database()
        try:
            collectors = [start_collector(db, home / f"c{i}") for i in (1, 2)]
            tok = token(db, home)
            jobs = [(str(home / f"spool{i + 1}.db"), collectors[i % 2][1], tok, f"s{i + 1}")
                    for i in range(3)]
            started = time.perf_counter()
            with multiprocessing.get_context("spawn").Pool(3) as pool:
                pool.starmap(drain, jobs)
            elapsed = time.perf_counter() - started
            for proc, _ in collectors:
                proc.terminate()
                proc.wait()
            assert count(db) == 3 * per
        finally:
            drop(name)
        print(f"fleet: 3 sensors -> 2 collectors -> PostgreSQL: {3 * per / elapsed:,.0f} "
              f"events/s ({3 * per:,} events in {elapsed:.1f} s); ratio to the database "
              f"alone {3 * per / elapsed / direct:.2f}")


if __name__ == "__main__":
    main()
