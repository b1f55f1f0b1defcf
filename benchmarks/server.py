"""Server benchmark: the dashboard's queries on a big SQLite store, and ingest throughput.

    python benchmarks/server.py --events 1000000            # fill, query, ingest
    python benchmarks/server.py --events 10000000 --db /var/tmp/big.db --keep

1. Fills a SQLite store with N events spread over a week (through ``Store.write``, so the
   rollups are built the way they are in production), unless ``--keep`` finds them there.
2. Starts ``portolan serve`` on it (one process) and times the dashboard's queries over
   HTTP from this process: counts by country and by ASN over the week, the week's time
   series per hour, the newest events. Prints p50/p95 of ``--repeat`` runs each, beside
   the same question asked the way one would without rollups: plain SQL over the events
   table (``sqlite3``, GROUP BY with the indexes the store has), median of 3 runs.
3. Ingest: posts ``--ingest`` events (a thousand per second of event time, as live
   sensors would send them) as JSON lines in batches of ``--batch`` to a fresh
   ``portolan serve`` from a loopback client, and counts what was stored per second
   (median of ``--runs``), beside writing the same events with ``Store.write`` in-process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from portolan.event import Event, encode_lines, make_id
from portolan.store import Store

WEEK = 7 * 86400
END = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
START = END - dt.timedelta(seconds=WEEK)
COUNTRIES = [("CN", "China"), ("US", "United States"), ("RU", "Russia"), ("BR", "Brazil"),
             ("IN", "India"), ("DE", "Germany"), ("NL", "Netherlands"), ("VN", "Vietnam"),
             ("KR", "South Korea"), ("FR", "France"), ("GB", "United Kingdom"), ("ID", "Indonesia"),
             ("TW", "Taiwan"), ("SG", "Singapore"), ("HK", "Hong Kong"), ("IR", "Iran"),
             ("TR", "Turkey"), ("UA", "Ukraine"), ("JP", "Japan"), ("PL", "Poland")]
USERS = ["root", "admin", "user", "test", "ubuntu", "oracle", "postgres", "git", "pi", "guest"]


class Generator:
    """Attack-like traffic: 50,000 addresses, a few hundred networks, heavy-tailed activity."""

    def __init__(self, seed: int = 1) -> None:
        rnd = random.Random(seed)
        self.rnd = rnd
        self.hosts = []
        for _ in range(50000):
            c = min(int(rnd.paretovariate(1.2)) - 1, len(COUNTRIES) - 1)
            asn = 4000 + c * 100 + min(int(rnd.paretovariate(1.0)), 99)
            octets = ((1, 224), (0, 256), (0, 256), (1, 255))
            ip = ".".join(str(rnd.randrange(lo, hi)) for lo, hi in octets)
            self.hosts.append((ip, COUNTRIES[c][0], COUNTRIES[c][1], asn, f"Network {asn}"))

    def events(self, start: int, n: int, total: int, span: float = WEEK) -> list[Event]:
        """Events ``start`` to ``start + n`` of ``total`` spread evenly over ``span``
        seconds that end at END."""
        rnd = self.rnd
        out = []
        step = span / total
        first = END - dt.timedelta(seconds=span)
        for i in range(start, start + n):
            ip, cc, cname, asn, org = self.hosts[min(int(rnd.paretovariate(0.9)) - 1, 49999)]
            ts = first + dt.timedelta(seconds=i * step + rnd.random() * step)
            roll = rnd.random()
            if roll < 0.6:
                kw = {"service": "ssh", "action": rnd.choice(["auth_failure", "invalid_user",
                                                               "connect"]),
                      "dst_port": 22, "user": rnd.choice(USERS)}
            elif roll < 0.85:
                kw = {"service": "http", "action": "request", "dst_port": 80,
                      "attrs": {"host": rnd.choice(["example.org", "203.0.113.1"]),
                                "path": rnd.choice(["/", "/.env", "/wp-login.php"])}}
            elif roll < 0.95:
                kw = {"service": "tcp", "action": "probe", "dst_port": rnd.randrange(1, 65536)}
            else:
                kw = {"service": "spyserver", "action": "connect", "dst_port": 5555,
                      "attrs": {"instance": "hf"}}
            out.append(Event(id=make_id("bench", i), ts=ts, sensor=f"s{i % 3}", source="bench",
                             src_ip=ip, src_port=1024 + i % 60000, country=cc,
                             country_name=cname, asn=asn, as_org=org, **kw))  # type: ignore[arg-type]
        return out


def fill(url: str, n: int, keep: bool) -> None:
    store = Store(url)
    store.migrate()
    have = store.count() if keep else 0
    if have >= n:
        print(f"store already holds {have:,} events")
        store.close()
        return
    gen = Generator()
    batch = 50000
    started = time.perf_counter()
    for start in range(0, n, batch):
        store.write(gen.events(start, min(batch, n - start), n))
        if start and start % 1_000_000 == 0:
            rate = start / (time.perf_counter() - started)
            print(f"  {start:,} events stored ({rate:,.0f}/s, generation included)", flush=True)
    took = time.perf_counter() - started
    print(f"filled {n:,} events in {took:.0f} s ({n / took:,.0f}/s, generation included)")
    store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PORTOLAN_DATA_DIR": data_dir}
    proc = subprocess.Popen([sys.executable, "-m", "portolan", "-q", "serve", "--db", url,
                             "--listen", f"127.0.0.1:{port}"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/api/v1/health").status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


QUERIES = [
    ("counts by country, week", "/api/v1/counts/country",
     {"since": START.isoformat(), "limit": 20},
     "SELECT country, count(*) n FROM events WHERE ts >= ? GROUP BY country ORDER BY n DESC "
     "LIMIT 20"),
    ("counts by country, unaligned", "/api/v1/counts/country",
     {"since": (START + dt.timedelta(seconds=4321.5)).isoformat(), "limit": 20},
     "SELECT country, count(*) n FROM events WHERE ts >= ? GROUP BY country ORDER BY n DESC "
     "LIMIT 20"),
    ("counts by ASN, week", "/api/v1/counts/asn", {"since": START.isoformat(), "limit": 20},
     "SELECT asn, count(*) n FROM events WHERE ts >= ? GROUP BY asn ORDER BY n DESC LIMIT 20"),
    ("time series, week by hour", "/api/v1/series",
     {"since": START.isoformat(), "until": END.isoformat(), "step": 3600},
     "SELECT ts - ts % 3600000000 b, count(*) FROM events WHERE ts >= ? GROUP BY b"),
    ("newest 50 events", "/api/v1/events", {"limit": 50},
     "SELECT * FROM events WHERE ts >= ? ORDER BY ts DESC, id DESC LIMIT 50"),
]


def queries(path: Path, url: str, repeat: int) -> None:
    proc, base = start_server(url, str(path.parent))
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            print(f"\n{'query':28} {'p50 ms':>8} {'p95 ms':>8} {'plain SQL ms':>13} {'ratio':>7}")
            for name, route, params, sql in QUERIES:
                client.get(route, params=params).raise_for_status()  # warm up
                times = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    client.get(route, params=params).raise_for_status()
                    times.append((time.perf_counter() - t) * 1000)
                base_ms = plain_sql(path, sql)
                p50 = statistics.median(times)
                print(f"{name:28} {p50:8.1f} {pct(times, 95):8.1f} {base_ms:13.1f} "
                      f"{base_ms / p50:6.1f}x", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)


def plain_sql(path: Path, sql: str) -> float:
    conn = sqlite3.connect(path)
    since = (START - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        conn.execute(sql, (since,)).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    conn.close()
    return statistics.median(times)


def ingest(n: int, batch: int, runs: int) -> None:
    gen = Generator(seed=2)
    # as sensors send them: recent events, a thousand a second
    events = gen.events(0, n, n, span=n / 1000)
    bodies = [encode_lines(events[i:i + batch]) for i in range(0, n, batch)]
    http_rates, direct_rates, cpu_rates = [], [], []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/ingest.db"
            store = Store(url)
            store.migrate()
            from portolan.server.tokens import Tokens

            secret, _ = Tokens(store).create("ingest", "bench")
            proc, base = start_server(url, tmp)
            try:
                with httpx.Client(base_url=base, timeout=120,
                                  headers={"Authorization": f"Bearer {secret}"}) as client:
                    t = time.perf_counter()
                    cpu = cpu_seconds(proc.pid)
                    stored = 0
                    for body in bodies:
                        r = client.post("/api/v1/ingest", content=body)
                        r.raise_for_status()
                        stored += r.json()["stored"]
                    took = time.perf_counter() - t
                    cpu = cpu_seconds(proc.pid) - cpu
            finally:
                proc.terminate()
                proc.wait(30)
            assert stored == n == store.count(), (stored, n)
            http_rates.append(n / took)
            cpu_rates.append(n / cpu)
            store.close()
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{tmp}/direct.db")
            store.migrate()
            t = time.perf_counter()
            for i in range(0, n, batch):
                store.write(events[i:i + batch])
            direct_rates.append(n / (time.perf_counter() - t))
            store.close()
        print(f"  run {run + 1}: HTTP ingest {http_rates[-1]:,.0f} events/s "
              f"({cpu_rates[-1]:,.0f} per CPU-second of the server), "
              f"Store.write {direct_rates[-1]:,.0f} events/s", flush=True)
    h, d = statistics.median(http_rates), statistics.median(direct_rates)
    c = statistics.median(cpu_rates)
    print(f"ingest over HTTP (one server process, loopback client, {batch:,}-event batches): "
          f"{h:,.0f} events/s stored, {c:,.0f} per server CPU-second (median of {runs}); "
          f"Store.write in-process {d:,.0f}/s; ratio HTTP/direct {h / d:.2f}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="reuse the events already in --db")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--ingest", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-queries", action="store_true")
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        url = f"sqlite:///{path}"
        if not args.skip_queries:
            fill(url, args.events, args.keep)
            size = path.stat().st_size / 1e9
            print(f"store: {args.events:,} events, {size:.1f} GB")
            queries(path, url, args.repeat)
        if not args.skip_ingest:
            print()
            ingest(args.ingest, args.batch, args.runs)


if __name__ == "__main__":
    main()
