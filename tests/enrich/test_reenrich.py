"""Re-enrichment of stored events, for real on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from portolan.enrich.geoip import GeoIP, GeoipSection
from portolan.enrich.reenrich import reenrich
from portolan.event import Event, make_id
from portolan.store import EventFilter, Store, schema

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def ev(i: int, ip: str, **kw: object) -> Event:
    base: dict[str, object] = {
        "id": make_id("re", i), "ts": T0 + dt.timedelta(hours=i), "sensor": "s",
        "source": "x", "service": "ssh", "action": "auth_failure", "src_ip": ip}
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


def test_reenrich_updates_events_sessions_and_addresses(
        store: Store, mmdb_dir: Path, tmp_path: Path) -> None:
    store.write([
        ev(0, "81.2.69.142"),  # before --since: stays as it is
        ev(1, "81.2.69.142", attrs={"path": "/x", "geo": "centroid"}, country="FR",
           geo_db="old@2025-01-01"),
        ev(2, "1.128.0.5", session="sess-1", action="connect"),
        ev(3, "10.1.1.1", dst_ip="81.2.69.142", direction="outbound"),
        ev(4, "garbage"),
    ])
    settings = GeoipSection(builtin=False, databases=[
        str(mmdb_dir / "GeoIP2-City-Test.mmdb"), str(mmdb_dir / "GeoLite2-ASN-Test.mmdb")])
    geo = GeoIP.from_settings(settings, tmp_path)
    result = reenrich(store.engine, geo.lookup, since=T0 + dt.timedelta(minutes=30),
                      chunk=2)
    assert (result.scanned, result.updated) == (4, 4)
    found = {e.id: e for e in store.events(EventFilter(), limit=10)}
    untouched, london, telstra, outbound, bad = (found[make_id("re", i)] for i in range(5))
    assert untouched.city is None and untouched.geo_db is None
    assert (london.country, london.city) == ("GB", "London")
    assert london.attrs["path"] == "/x"
    assert "geo" not in london.attrs  # the old label went with the old answer
    assert london.geo_db is not None and london.geo_db.startswith("GeoIP2-City-Test@")
    assert (telstra.asn, telstra.network) == (1221, "1.128.0.0/11")
    assert outbound.city == "London"
    assert bad.attrs == {"geo": "invalid"}
    with store.connect() as conn:
        session = conn.execute(sa.select(schema.sessions).where(
            schema.sessions.c.id == "sess-1")).one()
        row = conn.execute(sa.select(schema.ips).where(
            schema.ips.c.ip == "1.128.0.5")).one()
    assert session.asn == 1221
    assert (row.asn, row.as_org) == (1221, "Telstra Pty Ltd")
    again = reenrich(store.engine, geo.lookup, since=T0 + dt.timedelta(minutes=30))
    assert (again.scanned, again.updated) == (4, 0)  # nothing changed since


def test_until_bounds_the_range(store: Store, mmdb_dir: Path, tmp_path: Path) -> None:
    store.write([ev(i, "81.2.69.142") for i in range(4)])
    settings = GeoipSection(builtin=False, databases=[str(mmdb_dir / "GeoIP2-City-Test.mmdb")])
    geo = GeoIP.from_settings(settings, tmp_path)
    result = reenrich(store.engine, geo.lookup, since=T0, until=T0 + dt.timedelta(hours=2))
    assert result.updated == 2
    with store.connect() as conn:
        cities = conn.execute(sa.select(schema.events.c.city).order_by(schema.events.c.ts))
        assert [c for (c,) in cities] == ["London", "London", None, None]
    assert json.dumps(result.__dict__)  # plain numbers, printable as they are
