"""Traffic per AS in the store, on SQLite, PostgreSQL and MariaDB: the write hook, replays,
and the query the API and the dashboard use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from portolan.event import Event, make_id
from portolan.formats.base import ParseContext
from portolan.formats.pcap import read_file
from portolan.sinks.asn_traffic import query
from portolan.store import Store

T0 = dt.datetime(2026, 11, 23, 5, 10, tzinfo=dt.UTC)


def flow(i: int, dst: str, *, asn: int | None, org: str | None = None, net: str | None = None,
         hours: float = 0, direction: str = "outbound", size: int = 1000) -> Event:
    remote = {"dst_ip": dst, "src_ip": "192.168.1.2"}
    if direction == "inbound":
        remote = {"src_ip": dst, "dst_ip": "192.168.1.2"}
    return Event(id=make_id("asn-test", i), ts=T0 + dt.timedelta(hours=hours), sensor="s1",
                 source="capture:eth0", service="tcp", action="flow",
                 direction=direction, proto="tcp",  # type: ignore[arg-type]
                 bytes_in=size, bytes_out=size // 10, packets=10, asn=asn, as_org=org,
                 network=net, **remote)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


def _query(store: Store, **kw: object) -> list[dict[str, object]]:
    with store.connect() as conn:
        return query(conn, **kw)  # type: ignore[arg-type]


def test_totals_per_as(store: Store) -> None:
    events = [
        flow(1, "8.8.8.8", asn=15169, org="GOOGLE", net="8.8.8.0/24"),
        flow(2, "8.8.4.4", asn=15169, org="GOOGLE", net="8.8.4.0/24", size=3000),
        flow(3, "1.1.1.1", asn=13335, org="CLOUDFLARENET", net="1.1.1.0/24", size=500),
        flow(4, "192.168.1.1", asn=None),  # private: apart
        flow(5, "45.33.32.156", asn=None),  # public, no ASN known
        flow(6, "9.9.9.9", asn=19281, org="QUAD9", direction="inbound", size=7000),
        Event(id=make_id("asn-test", 7), ts=T0, sensor="s1", source="x", service="http",
              action="request", dst_ip="8.8.8.8", asn=15169),  # not a flow: not counted
    ]
    assert store.write(events).stored == 7
    rows = _query(store)
    assert [(r["asn"], r["as_org"], r["bytes"]) for r in rows] == [
        (15169, "GOOGLE", 4400), (0, "unknown", 1100), (13335, "CLOUDFLARENET", 550)]
    google = rows[0]
    assert (google["bytes_in"], google["bytes_out"], google["bytes"]) == (4000, 400, 4400)
    assert (google["packets"], google["flows"]) == (20, 2)
    with_private = _query(store, include_private=True)
    assert (0, "private") in [(r["asn"], r["as_org"]) for r in with_private]
    inbound = _query(store, direction="inbound")
    assert [(r["asn"], r["bytes_in"]) for r in inbound] == [(19281, 7000)]
    nets = _query(store, by="network")
    assert [(r["network"], r["bytes"]) for r in nets if r["asn"] == 15169] == [
        ("8.8.4.0/24", 3300), ("8.8.8.0/24", 1100)]
    assert _query(store, limit=1) == rows[:1]


def test_replay_counts_nothing_twice(store: Store) -> None:
    events = [flow(i, "8.8.8.8", asn=15169, org="GOOGLE") for i in range(5)]
    store.write(events)
    store.write(events)
    store.write([*events[:2], flow(99, "8.8.8.8", asn=15169, org="GOOGLE")])
    [row] = _query(store)
    assert row["flows"] == 6 and row["bytes_in"] == 6000


def test_time_range_in_whole_hours(store: Store) -> None:
    store.write([flow(1, "8.8.8.8", asn=15169, hours=0),
                 flow(2, "8.8.8.8", asn=15169, hours=2),
                 flow(3, "8.8.8.8", asn=15169, hours=5)])
    assert _query(store, since=T0 + dt.timedelta(hours=1, minutes=55))[0]["flows"] == 2
    assert _query(store, until=T0 + dt.timedelta(hours=1))[0]["flows"] == 1
    assert _query(store, since=T0 + dt.timedelta(hours=1),
                  until=T0 + dt.timedelta(hours=3))[0]["flows"] == 1
    assert _query(store, sensor="other") == []


def test_a_purge_forgets_the_hours_before(store: Store) -> None:
    store.write([flow(1, "8.8.8.8", asn=15169, hours=0),  # 05:10, in the hour 05:00-06:00
                 flow(2, "8.8.8.8", asn=15169, hours=2),
                 flow(3, "8.8.8.8", asn=15169, hours=5)])
    store.purge(T0 + dt.timedelta(hours=1, minutes=50))  # 06:00-07:00 holds the time: kept
    assert _query(store)[0]["flows"] == 2
    store.purge(T0 + dt.timedelta(hours=3))  # 08:10: 07:00-08:00 ended before it
    assert _query(store)[0]["flows"] == 1


def test_a_real_capture_fills_the_table(sqlite_url: str, shared_data: Path) -> None:
    store = Store(sqlite_url)
    store.migrate()
    path = shared_data / "pcap" / "zeek_wikipedia.pcap"
    events = [e for b in read_file(path, ParseContext(sensor="s")) for e in b]
    store.write(events)
    flows = [e for e in events if e.action == "flow" and e.direction == "outbound"]
    rows = _query(store, include_private=True)
    assert sum(int(r["flows"]) for r in rows) == len(flows)  # type: ignore[call-overload]
    assert sum(int(r["bytes"]) for r in rows) == sum(  # type: ignore[call-overload]
        (e.bytes_in or 0) + (e.bytes_out or 0) for e in flows)
    store.close()
