"""Events/s written through the pipeline into SQLite and PostgreSQL (and MariaDB on request).

Each run pushes N events from a source through the real Pipeline (batching, enrichment
stage with no enrichers, the store sink in its worker thread) into a fresh database, and
is compared, in the same run, with the floor a user would otherwise write by hand: raw
``executemany`` of 1,000-row batches into SQLite, and ``COPY`` of 1,000-row batches into
PostgreSQL, with the same columns.

    .venv/bin/python benchmarks/store.py                 # 1,000,000 events, 5 runs each
    .venv/bin/python benchmarks/store.py -n 200000 -r 3 --backends sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from portolan.event import Event, make_id
from portolan.pipeline import Pipeline, PipelineStats
from portolan.sinks.store import StoreSink
from portolan.store import Store
from portolan.store.writer import _COLUMNS, event_columns

T0 = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def make_events(n: int, seed: int) -> list[Event]:
    """Realistic-looking events: sshd failures from a skewed set of addresses."""
    users = ["root", "admin", "ubuntu", "test", "oracle", "git", "postgres", "user"]
    out = []
    for i in range(n):
        ip = f"198.51.{(i * 7) % 200}.{(i * 13) % 250}" if i % 10 else "203.0.113.7"
        out.append(Event(
            id=make_id("bench", seed, i), ts=T0 + dt.timedelta(milliseconds=i), sensor="bench",
            source="auth.log", service="ssh", action="auth_failure", proto="tcp", src_ip=ip,
            src_port=1024 + i % 60000, dst_port=22, user=users[i % len(users)],
            country="NL", asn=1136, as_org="KPN",
        ))
    return out


class ListSource:
    name = "bench"

    def __init__(self, events: list[Event], chunk: int = 1000) -> None:
        self.events = events
        self.chunk = chunk

    async def run(self, out: object) -> None:
        emit = out.emit  # type: ignore[attr-defined]
        for start in range(0, len(self.events), self.chunk):
            await emit(self.events[start : start + self.chunk])


def pipeline_run(url: str, events: list[Event]) -> float:
    store = Store(url)
    store.migrate()
    stats = PipelineStats()
    sink = StoreSink(store, stats)
    pipe = Pipeline([ListSource(events)], [], [sink], stats=stats)
    started = time.perf_counter()
    asyncio.run(pipe.run())
    elapsed = time.perf_counter() - started
    assert stats.extra["stored"] == len(events), stats
    store.close()
    return len(events) / elapsed


def sqlite_floor(path: Path, events: list[Event]) -> float:
    """Raw sqlite3 executemany of 1,000-row batches into the same table (schema made by the
    store), rows converted beforehand: the near-limit for Python + SQLite."""
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.close()
    rows = list(event_columns(events).rows())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    marks = ",".join("?" * len(_COLUMNS))
    started = time.perf_counter()
    for start in range(0, len(rows), 1000):
        with conn:
            conn.executemany(f"INSERT INTO events VALUES ({marks})", rows[start : start + 1000])
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def pg_floor(url: str, events: list[Event]) -> float:
    """psycopg COPY of 1,000-row batches into the same table, rows converted beforehand."""
    import psycopg

    store = Store(url)
    store.migrate()
    store.close()
    rows = list(event_columns(events).rows())
    cols = ",".join(f'"{c}"' for c in _COLUMNS)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for start in range(0, len(rows), 1000):
            with conn.transaction(), conn.cursor() as cur, \
                    cur.copy(f"COPY events ({cols}) FROM STDIN") as copy:
                for row in rows[start : start + 1000]:
                    copy.write_row(row)
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


def pg_database() -> tuple[str, str]:
    import psycopg

    name = f"portolan_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def pg_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", "--events", type=int, default=1_000_000)
    ap.add_argument("-r", "--runs", type=int, default=5)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    backends = args.backends.split(",")
    print(f"building {args.events:,} events...", file=sys.stderr)
    for backend in backends:
        ours, floor = [], []
        for run in range(args.runs):
            events = make_events(args.events, run)
            with tempfile.TemporaryDirectory() as tmp:
                if backend == "sqlite":
                    ours.append(pipeline_run(f"sqlite:///{tmp}/a.db", events))
                    floor.append(sqlite_floor(Path(tmp) / "b.db", events))
                elif backend == "postgresql":
                    name, url = pg_database()
                    try:
                        ours.append(pipeline_run(url, events))
                    finally:
                        pg_drop(name)
                    name, url = pg_database()
                    try:
                        floor.append(pg_floor(url, events))
                    finally:
                        pg_drop(name)
                else:
                    raise SystemExit(f"unknown backend {backend}")
            print(f"  {backend} run {run + 1}: pipeline {ours[-1]:,.0f}/s, "
                  f"raw {floor[-1]:,.0f}/s", file=sys.stderr)
        mo, mf = statistics.median(ours), statistics.median(floor)
        what = "executemany" if backend == "sqlite" else "COPY"
        print(f"{backend}: portolan pipeline {mo:,.0f} events/s (median of {args.runs}); "
              f"raw {what} {mf:,.0f} rows/s; ratio {mo / mf:.2f}")


if __name__ == "__main__":
    main()
