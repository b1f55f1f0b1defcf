"""The dashboard on a large store, in a real headless Chromium.

1. First paint of the overview: a SQLite store of N events over the last 7 days (written
   through the store, so rollups are kept as in production), ``portolan serve`` on
   127.0.0.1, and a fresh browser context per run (cold cache). Prints the first
   contentful paint and the time until every panel of the overview has its data (counters,
   map, chart, top lists, feed), median of several runs. Compared, in the same run, with
   what a user would otherwise do for the same numbers: the ``sqlite3`` command line
   counting the last day's events by country, ASN, address, user, service and port with
   GROUP BY, distinct addresses, the series and the newest events (no page drawn).
2. The live stream at R events/s: events are posted to the ingest API in batches of R/10
   every 100 ms while the overview is open; the page measures how late a 50 ms timer fires
   (the main thread's responsiveness) and the long tasks (over 50 ms) the browser reports.

    .venv/bin/python benchmarks/dashboard.py                    # 1,000,000 events, 5 runs
    .venv/bin/python benchmarks/dashboard.py -n 10000000 -r 3   # the issue's size (slow)
    .venv/bin/python benchmarks/dashboard.py -n 200000 --rate 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from portolan.event import Event, encode_lines, make_id
from portolan.server.tokens import Tokens
from portolan.store import (
    Store,
    rollups,  # noqa: F401  (keeps rollups as events are written)
)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
COUNTRIES = [("CN", "China", 39.9, 116.4, 4134, "Chinanet"),
             ("US", "United States", 39.0, -77.5, 14618, "Amazon.com"),
             ("RU", "Russia", 55.8, 37.6, 12389, "Rostelecom"),
             ("NL", "Netherlands", 52.4, 4.9, 49981, "WorldStream"),
             ("DE", "Germany", 50.1, 8.7, 24940, "Hetzner Online"),
             ("BR", "Brazil", -23.5, -46.6, 28573, "Claro"),
             ("IN", "India", 19.1, 72.9, 9829, "BSNL"),
             ("VN", "Vietnam", 21.0, 105.9, 45899, "VNPT"),
             ("KR", "South Korea", 37.6, 127.0, 4766, "Korea Telecom"),
             ("SG", "Singapore", 1.35, 103.8, 16509, "Amazon.com")]
USERS = ["root", "admin", "ubuntu", "test", "oracle", "git", "postgres", "user", "pi", "ftp"]


def events(start: int, n: int, total: int, t0: dt.datetime, span: float,
           rnd: random.Random) -> list[Event]:
    """Events start..start+n of total, spread evenly over span seconds from t0."""
    out = []
    for i in range(start, start + n):
        c, name, lat, lon, asn, org = COUNTRIES[min(int(rnd.expovariate(0.5)), 9)]
        host = rnd.randrange(5000)
        ssh = rnd.random() < 0.7
        out.append(Event(
            id=make_id("bench-dash", i), ts=t0 + dt.timedelta(seconds=span * i / total),
            sensor=f"edge-{i % 3}", source="auth.log" if ssh else "access.log",
            service="ssh" if ssh else "http", action="auth_failure" if ssh else "request",
            proto="tcp", src_ip=f"198.{18 + host // 65536 % 2}.{host // 256 % 256}.{host % 256}",
            src_port=1024 + i % 60000, dst_port=22 if ssh else 80,
            user=rnd.choice(USERS) if ssh else None, country=c, country_name=name,
            city=name, lat=lat + (host % 7) * 0.3, lon=lon + (host % 5) * 0.3, asn=asn,
            as_org=org,
            attrs={} if ssh else {"method": "GET", "path": "/", "status": 404}))
    return out


def fill(path: Path, n: int) -> float:
    """Write n events over the last 7 days; returns events/s."""
    store = Store(f"sqlite:///{path}")
    store.migrate()
    rnd = random.Random(1)
    now = dt.datetime.now(dt.UTC)
    t0 = now - dt.timedelta(days=7)
    span = 7 * 86400 - 120
    started = time.perf_counter()
    chunk = 5000
    for start in range(0, n, chunk):
        store.write(events(start, min(chunk, n - start), n, t0, span, rnd))
        if start and start % 500_000 == 0:
            print(f"  {start:,} events written", file=sys.stderr)
    elapsed = time.perf_counter() - started
    store.close()
    return n / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sqlite_cli(path: Path) -> float:
    """Seconds for the sqlite3 command line to answer what the overview shows, over the
    last day: the six top-10 lists, the number of distinct addresses, the total, events per
    15 minutes, and the newest 1,000 events."""
    since = int((time.time() - 86400) * 1_000_000)
    where = f"WHERE ts >= {since}"
    sql = "".join(
        f"SELECT {col}, count(*) AS n FROM events {where} GROUP BY {col} "
        "ORDER BY n DESC LIMIT 10;\n"
        for col in ("country", "asn", "src_ip", "user", "service", "dst_port"))
    sql += f"SELECT count(*), count(DISTINCT src_ip) FROM events {where};\n"
    sql += f"SELECT ts / 900000000, count(*) FROM events {where} GROUP BY 1;\n"
    sql += f"SELECT * FROM events {where} ORDER BY ts DESC LIMIT 1000;\n"
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(path)], input=sql.encode(), check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


PROBE = """() => {
  window.__lags = []; window.__long = [];
  let last = performance.now();
  setInterval(() => {
    const t = performance.now(); window.__lags.push(t - last - 50); last = t;
  }, 50);
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) window.__long.push(e.duration);
  }).observe({ type: "longtask", buffered: false });
}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="events in the store")
    ap.add_argument("-r", "--runs", type=int, default=5, help="page loads (median)")
    ap.add_argument("--rate", type=int, default=1000, help="live events per second")
    ap.add_argument("--seconds", type=int, default=20, help="how long the live test runs")
    ap.add_argument("--db", type=Path, help="keep the store in this SQLite file, and reuse it "
                    "when it exists (filling 10,000,000 events takes long)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "big.db"
        if db.exists():
            print(f"store: reusing {db} ({db.stat().st_size / 1e6:,.0f} MB); its events are "
                  "older than when it was filled")
        else:
            print(f"filling a SQLite store with {args.n:,} events over 7 days...",
                  file=sys.stderr)
            rate = fill(db, args.n)
            print(f"store: {args.n:,} events written at {rate:,.0f} events/s "
                  f"({db.stat().st_size / 1e6:,.0f} MB)")
        token, _ = Tokens(Store(f"sqlite:///{db}")).create("ingest", "bench")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        exe = Path(sys.executable).with_name("portolan")
        server = subprocess.Popen(
            [str(exe), "-q", "serve", "--db", f"sqlite:///{db}", "--listen", f"127.0.0.1:{port}"],
            env={"PATH": "/usr/bin:/bin", "PORTOLAN_DATA_DIR": tmp, "HOME": tmp})
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/api/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                paint, ready = [], []
                for _ in range(args.runs):
                    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
                    page = ctx.new_page()
                    page.goto(url + "/")
                    page.wait_for_selector("main[data-ready='1']", timeout=120_000)
                    ready.append(page.evaluate("() => performance.now()") / 1000)
                    fcp = page.evaluate(
                        "() => performance.getEntriesByName('first-contentful-paint')[0]"
                        "?.startTime ?? null")
                    paint.append((fcp or 0) / 1000)
                    ctx.close()
                cli = statistics.median(sqlite_cli(db) for _ in range(args.runs))
                print(f"overview, {args.n:,} events: first contentful paint "
                      f"{statistics.median(paint):.2f} s, every panel with its data "
                      f"{statistics.median(ready):.2f} s (median of {args.runs})")
                print(f"sqlite3 CLI, the same numbers as text (top lists, distinct addresses, "
                      f"series, newest events): {cli:.2f} s; ratio (sqlite3 / dashboard fully "
                      f"drawn): {cli / statistics.median(ready):.2f}x")
                live(browser, url, token, args.rate, args.seconds)
                browser.close()
        finally:
            server.terminate()
            server.wait(15)


def live(browser: object, url: str, token: str, rate: int, seconds: int) -> None:
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    page = ctx.new_page()
    page.goto(url + "/")
    page.wait_for_selector("main[data-ready='1']", timeout=120_000)
    page.wait_for_selector(".status.live")
    page.evaluate(PROBE)
    sent = [0]
    stop = threading.Event()
    per_tick = max(1, rate // 10)

    def post() -> None:
        n = 0
        with httpx.Client(base_url=url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            next_tick = time.monotonic()
            while not stop.is_set():
                now = dt.datetime.now(dt.UTC)
                batch = [Event(id=make_id("live", n + k), ts=now, sensor="live",
                               source="auth.log", service="ssh", action="auth_failure",
                               src_ip=f"198.18.{(n + k) // 256 % 256}.{(n + k) % 256}",
                               dst_port=22, user="root", country="NL", lat=52.4, lon=4.9)
                         for k in range(per_tick)]
                client.post("/api/v1/ingest", content=encode_lines(batch)).raise_for_status()
                n += per_tick
                sent[0] = n
                next_tick += 0.1
                time.sleep(max(0.0, next_tick - time.monotonic()))

    thread = threading.Thread(target=post, daemon=True)
    started = time.monotonic()
    thread.start()
    time.sleep(seconds)  # the load runs for a fixed time; nothing to poll for
    stop.set()
    thread.join(30)
    elapsed = time.monotonic() - started
    time.sleep(1.5)  # the last half-second batch reaches the page
    got = int(page.evaluate("() => document.documentElement.dataset.liveReceived || '0'"))
    lags = sorted(max(0.0, x) for x in page.evaluate("() => window.__lags"))
    longs = page.evaluate("() => window.__long")
    rows = page.locator("#feed tbody tr").count()
    p99 = lags[int(len(lags) * 0.99) - 1] if lags else 0.0
    print(f"live stream: {sent[0]:,} events ingested in {elapsed:.1f} s "
          f"({sent[0] / elapsed:,.0f}/s); the page received {got:,}; feed shows {rows} rows")
    print(f"page responsiveness under that load: 50 ms timer late by median "
          f"{statistics.median(lags):.0f} ms, p99 {p99:.0f} ms, worst {lags[-1]:.0f} ms; "
          f"{len(longs)} long tasks, longest {max(longs, default=0):.0f} ms")
    ctx.close()


if __name__ == "__main__":
    main()
