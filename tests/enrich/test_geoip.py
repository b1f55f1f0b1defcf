"""The GeoIP stage: databases in order, built-in data, cache, reloads, metrics, config."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from portolan.config import ConfigError, validate
from portolan.enrich.builtin import load_countries
from portolan.enrich.geoip import AgeCollector, GeoEnricher, GeoIP, GeoipSection
from portolan.enrich.mmdb import MmdbFile
from portolan.event import Event
from portolan.metrics import build_registry
from portolan.runtime import Runtime

T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)


def ev(ip: str | None, **kw: object) -> Event:
    return Event(ts=T0, src_ip=ip, service="ssh", action="auth_failure", **kw)  # type: ignore[arg-type]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def offline(mmdb_dir: Path, *names: str, tmp_path: Path, **kw: object) -> GeoIP:
    settings = GeoipSection(databases=[str(mmdb_dir / n) for n in names], builtin=False)
    return GeoIP.from_settings(settings, tmp_path, **kw)  # type: ignore[arg-type]


def test_place_from_city_db_and_as_from_asn_db(mmdb_dir: Path, tmp_path: Path) -> None:
    geo = offline(mmdb_dir, "GeoIP2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb",
                  tmp_path=tmp_path)
    events = [ev("81.2.69.142"), ev("1.128.0.7")]
    GeoEnricher(geo).enrich(events)
    london, telstra = events
    assert (london.country, london.city, london.asn) == ("GB", "London", None)
    assert london.lat is not None and london.lon is not None
    assert london.geo_db is not None and london.geo_db.startswith("GeoIP2-City-Test@")
    assert london.attrs.get("geo_region") == "England"
    assert (telstra.asn, telstra.as_org, telstra.network) == (1221, "Telstra Pty Ltd",
                                                              "1.128.0.0/11")
    assert telstra.geo_db is not None and "GeoLite2-ASN-Test@" in telstra.geo_db


def test_first_database_wins(mmdb_dir: Path, tmp_path: Path) -> None:
    country_first = offline(mmdb_dir, "GeoLite2-Country-Test.mmdb", "GeoIP2-City-Test.mmdb",
                            tmp_path=tmp_path)
    answer = country_first.lookup("81.2.69.142")
    # the country comes from the first; the city of the second refines it (same country)
    assert answer[0] == "GB"
    assert answer[2] == "London"
    assert answer[8] is not None
    assert answer[8].index("GeoLite2-Country-Test") < answer[8].index("GeoIP2-City-Test")


def test_outbound_events_are_placed_by_destination(mmdb_dir: Path, tmp_path: Path) -> None:
    geo = offline(mmdb_dir, "GeoIP2-City-Test.mmdb", tmp_path=tmp_path)
    out = ev("192.168.1.10", dst_ip="81.2.69.142", direction="outbound")
    GeoEnricher(geo).enrich([out])
    assert out.city == "London"
    assert "geo" not in out.attrs


def test_special_and_invalid_addresses(mmdb_dir: Path, tmp_path: Path) -> None:
    geo = offline(mmdb_dir, "GeoIP2-City-Test.mmdb", tmp_path=tmp_path)
    counters: dict[str, int] = {}
    enricher = GeoEnricher(geo, counters=counters)
    events = [ev("10.0.0.1"), ev("not-an-ip"), ev("not-an-ip"), ev("100.64.3.3"), ev(None),
              ev("2001:db8::7"), ev("::1")]
    before = geo.stats.lookups
    enricher.enrich(events)
    assert [e.attrs.get("geo") for e in events] == [
        "private", "invalid", "invalid", "cgnat", None, "documentation", "loopback"]
    assert events[1].src_ip == "not-an-ip"  # kept as written
    assert all(e.country is None and e.geo_db is None for e in events)
    assert counters["geoip_invalid"] == 2
    assert geo.stats.invalid == 2
    assert geo.stats.lookups - before == 5  # one per distinct address


def test_cache_answers_repeats(mmdb_dir: Path, tmp_path: Path) -> None:
    geo = offline(mmdb_dir, "GeoIP2-City-Test.mmdb", tmp_path=tmp_path)
    enricher = GeoEnricher(geo, cache_size=2)
    enricher.enrich([ev("81.2.69.142") for _ in range(100)])
    assert geo.stats.lookups == 1
    enricher.enrich([ev("81.2.69.142")])  # next batch: from the LRU
    assert geo.stats.lookups == 1
    # a batch answers its cached addresses first, then looks the others up together
    enricher.enrich([ev("81.2.69.160"), ev("81.2.69.161"), ev("81.2.69.142"),
                     ev("81.2.69.162"), ev("81.2.69.163")])
    assert geo.stats.lookups == 5
    assert len(enricher.cache) <= 4  # bounded: at most twice the size
    enricher.enrich([ev("81.2.69.142")])
    assert geo.stats.lookups == 6  # 81.2.69.142 was forgotten, looked up again


def test_events_enriched_by_a_sensor_are_left_alone(mmdb_dir: Path, tmp_path: Path) -> None:
    geo = offline(mmdb_dir, "GeoIP2-City-Test.mmdb", tmp_path=tmp_path)
    done = ev("81.2.69.142", country="FR", geo_db="sensor-db@2026-01-01")
    GeoEnricher(geo).enrich([done])
    assert (done.country, done.geo_db) == ("FR", "sensor-db@2026-01-01")


def test_replaced_database_is_used_without_restart(mmdb_dir: Path, tmp_path: Path) -> None:
    live = tmp_path / "live.mmdb"
    shutil.copy(mmdb_dir / "GeoLite2-Country-Test.mmdb", live)
    clock = Clock()
    geo = GeoIP([MmdbFile(live)], reload_seconds=30, clock=clock)
    enricher = GeoEnricher(geo)
    first = ev("81.2.69.142")
    enricher.enrich([first])
    assert (first.country, first.city) == ("GB", None)
    staged = tmp_path / "staged.mmdb"
    shutil.copy(mmdb_dir / "GeoIP2-City-Test.mmdb", staged)
    os.replace(staged, live)
    clock.now += 10  # not yet time to look at the file
    early = ev("81.2.69.142")
    enricher.enrich([early])
    assert early.city is None
    clock.now += 30
    late = ev("81.2.69.142")
    enricher.enrich([late])
    assert late.city == "London"


def test_imported_database_appears_without_restart(mmdb_dir: Path, tmp_path: Path) -> None:
    clock = Clock()
    geo = GeoIP.from_settings(GeoipSection(builtin=False, reload_seconds=5), tmp_path,
                              clock=clock)
    enricher = GeoEnricher(geo)
    before = ev("1.128.0.1")
    enricher.enrich([before])
    assert before.asn is None
    (tmp_path / "geoip").mkdir()
    (tmp_path / "geoip" / ".import-half-copied.mmdb").write_bytes(b"\x00" * 100)
    shutil.copy(mmdb_dir / "GeoLite2-ASN-Test.mmdb", tmp_path / "geoip" / "asn.mmdb")
    clock.now += 6
    after = ev("1.128.0.1")
    enricher.enrich([after])
    assert after.asn == 1221
    assert [d.name for d in geo.databases()] == ["asn"]  # the half-copied file is ignored


def test_broken_configured_database_falls_back(mmdb_dir: Path, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "GeoLite2-City.mmdb"
    bad.write_bytes(b"PK\x03\x04 a zip, not a database")
    settings = GeoipSection(databases=[str(bad), str(mmdb_dir / "GeoIP2-City-Test.mmdb")],
                            builtin=False)
    geo = GeoIP.from_settings(settings, tmp_path)
    assert len(geo.stats.errors) == 1
    assert str(bad) in geo.stats.errors[0]
    assert str(bad) in caplog.text
    assert geo.lookup("81.2.69.142")[2] == "London"


def test_country_only_answer_gets_the_centre(mmdb_dir: Path, builtin_root: Path) -> None:
    countries = load_countries(builtin_root)
    assert countries["GB"].name == "United Kingdom"
    geo = GeoIP([MmdbFile(mmdb_dir / "GeoLite2-Country-Test.mmdb")], countries=countries,
                countries_label="centroid@world-countries")
    answer = geo.lookup("81.2.69.142")
    country, _, city, lat, lon, *_, geo_db, extra = answer
    assert (country, city) == ("GB", None)
    assert (lat, lon) == (countries["GB"].lat, countries["GB"].lon)
    assert extra == {"geo": "centroid"}
    assert geo_db is not None and "centroid@world-countries" in geo_db


def test_builtin_data_answers_with_no_configuration(builtin_root: Path,
                                                    tmp_path: Path) -> None:
    geo = GeoIP.from_settings(GeoipSection(builtin_dir=str(builtin_root)), tmp_path)
    assert geo.stats.errors == []
    for ip in ("8.8.8.8", "2001:4860:4860::8888"):
        country, name, _, lat, lon, asn, org, network, geo_db, _ = geo.lookup(ip)
        assert country is not None and len(country) == 2 and name
        assert lat is not None and lon is not None
        assert asn == 15169 and org is not None and "Google" in org
        assert network is not None and "/" in network
        assert geo_db is not None and "dbip-city-lite@" in geo_db
        assert "ip-location-db-asn@" in geo_db
    roles = {d.name: d.role for d in geo.databases()}
    assert roles["ip-location-db-asn"] == "asn"
    assert roles["dbip-city-lite (IPv4)"] == "place"


def test_runtime_builds_the_enricher(mmdb_dir: Path, tmp_path: Path) -> None:
    config = validate({"data_dir": str(tmp_path), "geoip": {
        "databases": [str(mmdb_dir / "GeoIP2-City-Test.mmdb")], "builtin": False}})
    runtime = Runtime(config=config)
    enrichers = runtime.enrichers()
    geoip = [e for e in enrichers if e.name == "geoip"]
    assert len(geoip) == 1
    event = ev("bogus")
    geoip[0].enrich([event, ev("81.2.69.142")])
    assert runtime.stats.extra["geoip_invalid"] == 1
    off = Runtime(config=validate({"data_dir": str(tmp_path), "geoip": {"enabled": False}}))
    assert not [e for e in off.enrichers() if e.name == "geoip"]


def test_database_age_metric(mmdb_dir: Path, tmp_path: Path) -> None:
    geo = offline(mmdb_dir, "GeoIP2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb",
                  tmp_path=tmp_path)
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    registry = CollectorRegistry()
    registry.register(AgeCollector(geo, lambda: now))
    build = MmdbFile(mmdb_dir / "GeoLite2-ASN-Test.mmdb").build
    value = registry.get_sample_value("portolan_geoip_database_age_seconds",
                                      {"database": "GeoLite2-ASN-Test"})
    assert value == pytest.approx((now - build).total_seconds())
    assert registry.get_sample_value("portolan_geoip_database_age_seconds",
                                     {"database": "GeoIP2-City-Test"}) is not None


def test_age_metric_is_registered_for_the_server(mmdb_dir: Path, tmp_path: Path) -> None:
    config = validate({"data_dir": str(tmp_path), "geoip": {
        "databases": [str(mmdb_dir / "GeoLite2-ASN-Test.mmdb")], "builtin": False}})
    registry = build_registry(Runtime(config=config))
    value = registry.get_sample_value("portolan_geoip_database_age_seconds",
                                      {"database": "GeoLite2-ASN-Test"})
    assert value is not None and value > 0


def test_online_provider_needs_a_key() -> None:
    with pytest.raises(ConfigError, match="online_key"):
        validate({"geoip": {"online": "ipgeolocation"}})
    with pytest.raises(ConfigError, match=r"geoip\.online"):
        validate({"geoip": {"online": "somewhere-else"}})
    validate({"geoip": {"online": "ipgeolocation", "online_key": "k"}})


def assert_enriched_as_looked_up(geo: GeoIP, events: list[Event],
                                 attrs_before: dict[str, object] | None = None) -> None:
    """Each event carries what a lookup of its remote address answers (and the attrs it
    had before, if any)."""
    for e in events:
        ip = e.dst_ip if e.direction == "outbound" else e.src_ip
        if ip is None:
            assert e.geo_db is None and e.attrs == (attrs_before or {})
            continue
        expected = geo.lookup(ip)
        got = (e.country, e.country_name, e.city, e.lat, e.lon, e.asn, e.as_org, e.network,
               e.geo_db)
        assert got == expected[:9], ip
        assert e.attrs == {**(attrs_before or {}), **(expected[9] or {})}, ip


def random_v4(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}."
            f"{rng.getrandbits(8)}" for _ in range(n)]


@pytest.fixture(scope="module")
def builtin_geo(tmp_path_factory: pytest.TempPathFactory) -> GeoIP:
    from portolan.enrich.builtin import find_dir

    root = find_dir()
    if root is None:
        pytest.skip("built-in GeoIP data absent: run scripts/bootstrap (needs npm)")
    return GeoIP.from_settings(GeoipSection(builtin_dir=str(root)),
                               tmp_path_factory.mktemp("data"))


def test_batches_are_enriched_as_one_address_at_a_time(builtin_geo: GeoIP) -> None:
    geo = builtin_geo
    rng = random.Random(5)
    ips: list[str | None] = [f"{rng.randrange(1, 224)}.{rng.getrandbits(8)}."
                             f"{rng.getrandbits(8)}.{rng.getrandbits(8)}" for _ in range(3000)]
    ips += ["10.1.2.3", "192.168.0.1", "bogus", "bogus", "2001:4860:4860::8888", "::1",
            " 8.8.8.8", None, "8.8.8.8", "8.8.8.8"]
    rng.shuffle(ips)
    counters: dict[str, int] = {}
    enricher = GeoEnricher(geo, counters=counters)
    events = [ev(ip) if i % 7 else ev("192.168.7.7", dst_ip=ip, direction="outbound")
              for i, ip in enumerate(ips)]
    events.append(ev("8.8.4.4", geo_db="sensor@2026-11-01"))
    for start in range(0, len(events), 1000):
        enricher.enrich(events[start:start + 1000])
    assert events[-1].country is None  # enriched by its sensor: left alone
    assert_enriched_as_looked_up(geo, events[:-1])
    assert counters["geoip_invalid"] == 2
    assert sum(e.asn is not None for e in events) > 2000


def test_new_addresses_are_written_field_by_field(builtin_geo: GeoIP) -> None:
    """Distinct addresses, none cached: the answers of the batch are written from its
    columns; with addresses that are not IPv4, and events that have attrs already."""
    rng = random.Random(6)
    ips = [*random_v4(rng, 1500), "10.9.9.9", "224.0.0.1", "bogus", "::1", "8.8.8.8",
           "2001:4860:4860::8888", "::ffff:8.8.4.4", "1.2.3.4 ", "1.2.3"]
    rng.shuffle(ips)
    counters: dict[str, int] = {}
    enricher = GeoEnricher(builtin_geo, counters=counters)
    events = [ev(ip, attrs={"method": "GET"}) for ip in ips]
    enricher.enrich(events)
    assert_enriched_as_looked_up(builtin_geo, events, {"method": "GET"})
    assert counters["geoip_invalid"] == 2
    assert sum("geo_region" in e.attrs for e in events) > 1000
    assert enricher.cache.misses == len(ips)


def test_attrs_of_events_are_their_own(builtin_geo: GeoIP) -> None:
    """The attrs written are copies: changing an event's attrs changes no other event's
    or later answer."""
    ips = [f"8.8.{i}.8" for i in range(200)]
    enricher = GeoEnricher(builtin_geo)
    first = [ev(ip) for ip in ips]
    enricher.enrich(first)
    assert_enriched_as_looked_up(builtin_geo, first)
    region = first[0].attrs["geo_region"]
    same = [e for e in first if e.attrs == {"geo_region": region}]
    assert len(same) > 100  # placed in the same region: the same answer's attrs
    same[0].attrs["geo_region"] = "changed"
    same[1].attrs.clear()
    assert all(e.attrs == {"geo_region": region} for e in same[2:])
    again = [ev(ip) for ip in reversed(ips)]
    GeoEnricher(builtin_geo).enrich(again)
    assert_enriched_as_looked_up(builtin_geo, again)


def test_addresses_partly_cached_are_written_in_order(builtin_geo: GeoIP) -> None:
    rng = random.Random(7)
    enricher = GeoEnricher(builtin_geo, cache_size=1000)
    older, newer = random_v4(rng, 1000), random_v4(rng, 1000)
    enricher.enrich([ev(ip) for ip in older])
    enricher.enrich([ev(ip) for ip in newer])  # the older ones are in the old generation
    mixed = older[:300] + random_v4(rng, 700)
    rng.shuffle(mixed)
    events = [ev(ip) for ip in mixed]
    before = builtin_geo.stats.lookups
    enricher.enrich(events)
    assert builtin_geo.stats.lookups - before == 700
    assert_enriched_as_looked_up(builtin_geo, events)


def test_a_cache_that_answers_nothing_is_seldom_asked(builtin_geo: GeoIP) -> None:
    rng = random.Random(8)
    counters: dict[str, int] = {}
    enricher = GeoEnricher(builtin_geo, cache_size=1000, counters=counters)
    cache = enricher.cache
    batches = 0
    while not cache.idle:  # new addresses only
        enricher.enrich([ev(ip) for ip in random_v4(rng, 1000)])
        batches += 1
        assert batches < 100
    asked = cache.hits + cache.misses
    events = []
    for _ in range(16):
        batch = [ev(ip) for ip in random_v4(rng, 1000)] + [ev(None), ev("bogus")]
        enricher.enrich(batch)
        events += batch
    assert cache.hits + cache.misses - asked == 2 * 1001  # two batches in 16 asked it
    assert_enriched_as_looked_up(builtin_geo, events)
    assert counters["geoip_invalid"] == 16  # counted whether the cache was asked or not
    # the same addresses again and again: the batches that ask it find them, so it is
    # asked for every batch again
    hot = random_v4(rng, 200)
    for _ in range(400):
        enricher.enrich([ev(rng.choice(hot)) for _ in range(1000)])
        if not cache.idle:
            break
    assert not cache.idle
    events = [ev(rng.choice(hot)) for _ in range(1000)]
    enricher.enrich(events)
    assert_enriched_as_looked_up(builtin_geo, events)


def test_a_replaced_database_is_used_by_batches(mmdb_dir: Path, tmp_path: Path) -> None:
    live = tmp_path / "live.mmdb"
    shutil.copy(mmdb_dir / "GeoLite2-Country-Test.mmdb", live)
    clock = Clock()
    geo = GeoIP([MmdbFile(live)], reload_seconds=30, clock=clock)
    enricher = GeoEnricher(geo)
    many = [f"81.2.69.{i}" for i in range(100, 200)]
    first = [ev(ip) for ip in many]
    enricher.enrich(first)
    assert geo._batch is not None  # looked up together
    assert {(e.country, e.city) for e in first if e.country} == {("GB", None)}
    staged = tmp_path / "staged.mmdb"
    shutil.copy(mmdb_dir / "GeoIP2-City-Test.mmdb", staged)
    os.replace(staged, live)
    clock.now += 31
    late = [ev(ip) for ip in reversed(many)]
    enricher.enrich(late)
    assert "London" in {e.city for e in late}
    assert all(e.geo_db is None or e.geo_db.startswith("live@") for e in late)
