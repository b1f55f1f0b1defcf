"""How long one refresh of ``portolan top`` takes, against GoAccess on the same web log.

GoAccess is the terminal dashboard a user would otherwise open on a web server's log; it
reads the whole log to build its panels. ``portolan top`` asks the store a few questions on
every refresh (counters, the events-per-second series, the open sessions and one table),
answered from the rollups. This script stores the lines of a combined-format log (K copies,
so the store holds K times its lines) in a fresh SQLite store, then times, in the same
run, a refresh of the addresses table over the whole store ("all" window), the same
counts written by hand as GROUP BY queries over the events table (what one would run
without rollups), and ``goaccess`` building its report from the same lines.

    .venv/bin/python benchmarks/top.py [LOG] [--copies K] [--repeat N]

Prints each median and the ratios. Needs ``goaccess`` (Debian package of that name) for
the last comparison; without it, that one is left out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from portolan.event import Event, make_id
from portolan.store import Store
from portolan.tui import tables
from portolan.tui.app import Snapshot, TopApp
from portolan.tui.feeds import StoreFeed

SHARED_DATA = Path(os.environ.get("PORTOLAN_SHARED_DATA",
                                 Path(__file__).resolve().parents[1].parent / "shared" / "data"))
DEFAULT_LOG = SHARED_DATA / "web" / "nginx_logs_first4MB.log"
LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)[^"]*" (\d{3}) ')


def parse(lines: list[str], copy: int, shift: dt.timedelta) -> list[Event]:
    out = []
    for n, line in enumerate(lines):
        m = LINE.match(line)
        if m is None:
            continue
        ts = dt.datetime.strptime(m[2], "%d/%b/%Y:%H:%M:%S %z").astimezone(dt.UTC) + shift
        out.append(Event(id=make_id("bench", copy, n), ts=ts, service="http",
                         action="request", src_ip=m[1], dst_port=80,
                         attrs={"method": m[3], "path": m[4], "status": int(m[5]),
                                "host": "www.example.test"}))
    return out


def median_time(run: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def by_hand(path: Path) -> None:
    """The refresh's counts as plain GROUP BY queries over the events table."""
    with sqlite3.connect(path) as db:
        db.execute("SELECT action, count(*) FROM events GROUP BY action").fetchall()
        db.execute("SELECT country, count(*) FROM events GROUP BY country").fetchall()
        db.execute("SELECT src_ip, count(*) n FROM events GROUP BY src_ip "
                   "ORDER BY n DESC LIMIT 200").fetchall()
        db.execute("SELECT ts - ts % 60000000, count(*) FROM events WHERE ts >= ? "
                   "GROUP BY 1", (0,)).fetchall()
        db.execute("SELECT * FROM sessions WHERE end_ts IS NULL AND start_ts IS NOT NULL "
                   "LIMIT 1000").fetchall()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", nargs="?", type=Path, default=DEFAULT_LOG)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    lines = args.log.read_text(encoding="utf-8", errors="replace").splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "portolan.db"
        store = Store(f"sqlite:///{db}")
        store.migrate()
        start = time.perf_counter()
        stored = 0
        for copy in range(args.copies):
            events = parse(lines, copy, dt.timedelta(days=copy))
            for i in range(0, len(events), 5000):
                stored += store.write(events[i:i + 5000]).stored
        print(f"stored {stored} events ({args.copies} copies of {len(lines)} lines) in "
              f"{time.perf_counter() - start:.1f}s")

        app = TopApp(StoreFeed(store), folder, metrics=None, window="all")
        spec = tables.BY_NAME["ips"]

        def refresh() -> None:
            now = dt.datetime.now(dt.UTC)
            snap = Snapshot(when=now, table=spec.name)
            app._fill(snap, spec, None, now, frozenset())  # window: all
            assert snap.events == stored, (snap.events, stored)

        refresh()
        portolan = median_time(refresh, args.repeat)
        print(f"portolan top, one refresh (ips table, window all): {portolan * 1000:.1f} ms")
        by_hand(db)
        hand = median_time(lambda: by_hand(db), args.repeat)
        print(f"the same counts by hand (GROUP BY over events):  {hand * 1000:.1f} ms "
              f"(ratio {hand / portolan:.1f}x)")

        goaccess = shutil.which("goaccess")
        if goaccess is None:
            print("goaccess not installed: comparison left out")
        else:
            log = folder / "access.log"
            log.write_text("\n".join(lines * args.copies) + "\n", encoding="utf-8")
            cmd = [goaccess, str(log), "--log-format=COMBINED", "--no-global-config",
                   "-o", str(folder / "report.json")]

            cpu: list[float] = []

            def run_goaccess() -> None:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

            ga = median_time(run_goaccess, max(3, args.repeat // 2))
            ga_cpu = statistics.median(cpu)
            # GoAccess's wall time includes about a second of waiting at exit; its CPU
            # time is the fairer figure.
            print(f"goaccess building its report from the log:       {ga_cpu * 1000:.1f} ms "
                  f"CPU, {ga * 1000:.1f} ms wall (ratio {ga_cpu / portolan:.1f}x on CPU)")
        store.close()


if __name__ == "__main__":
    main()
