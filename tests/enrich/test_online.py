"""The online provider against a real HTTP server on 127.0.0.1 that answers like
ipgeolocation.io's ``/ipgeo``."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from portolan.enrich.geoip import GeoEnricher, GeoIP, GeoipSection, Result
from portolan.enrich.online import OnlineProvider, parse_ipgeolocation
from portolan.event import Event

KEY = "secret-api-key-123"
OFFLINE: Result = ("GB", "United Kingdom", "London", 51.5, -0.09, 20712, "Andrews & Arnold",
                   "81.2.64.0/18", "offline-db@2026-11-01", {"geo_region": "England"})


class FakeApi:
    """What the fake server answers, and what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, Any]] = {}
        self.requests: list[tuple[float, dict[str, str]]] = []
        self.release = threading.Event()
        self.release.set()


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    state = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urllib.parse.urlparse(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            state.requests.append((time.monotonic(), query))
            state.release.wait(10)
            status, body = state.answers.get(query.get("ip", ""), (404, {"message": "no"}))
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (time-out test)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def answer(city: str, lat: str = "10.5", lon: str = "20.25") -> dict[str, Any]:
    return {"ip": "x", "country_code2": "FR", "country_name": "France", "city": city,
            "state_prov": "Île-de-France", "latitude": lat, "longitude": lon,
            "isp": "Some ISP"}


def test_answer_is_used_once_known(api: tuple[FakeApi, str]) -> None:
    state, url = api
    state.answers["81.2.69.142"] = (200, answer("Paris"))
    provider = OnlineProvider(KEY, url, rate=100, timeout=2,
                              today=lambda: dt.date(2026, 11, 23))
    try:
        assert provider.overlay("81.2.69.142", OFFLINE) is OFFLINE  # not known yet: offline
        until(lambda: provider.known("81.2.69.142"))
        merged = provider.overlay("81.2.69.142", OFFLINE)
        country, name, city, lat, lon, asn, org, network, geo_db, extra = merged
        assert (country, name, city, lat, lon) == ("FR", "France", "Paris", 10.5, 20.25)
        assert (asn, org, network) == (20712, "Andrews & Arnold", "81.2.64.0/18")
        assert geo_db == "offline-db@2026-11-01+ipgeolocation.io@2026-11-23"
        assert extra == {"geo_region": "Île-de-France"}
        assert len(state.requests) == 1
        assert state.requests[0][1] == {"apiKey": KEY, "ip": "81.2.69.142"}
    finally:
        provider.close()


def test_failure_leaves_the_offline_answer(api: tuple[FakeApi, str],
                                           caplog: pytest.LogCaptureFixture) -> None:
    state, url = api
    state.answers["8.8.8.8"] = (500, {"message": "internal"})
    provider = OnlineProvider(KEY, url, rate=100, timeout=2)
    try:
        provider.overlay("8.8.8.8", OFFLINE)
        until(lambda: provider.failures == 1)
        until(lambda: not provider._pending)
        assert provider.overlay("8.8.8.8", OFFLINE) is OFFLINE
        # a wrongly queued retry would be asked before this next address (one queue)
        state.answers["1.1.1.1"] = (200, answer("Sydney"))
        provider.overlay("1.1.1.1", OFFLINE)
        until(lambda: provider.known("1.1.1.1"))
        assert [q["ip"] for _, q in state.requests] == ["8.8.8.8", "1.1.1.1"]
        assert "HTTP 500" in caplog.text
        assert KEY not in caplog.text
    finally:
        provider.close()


def test_slow_provider_never_blocks(api: tuple[FakeApi, str]) -> None:
    state, url = api
    state.release.clear()  # the server holds every answer
    state.answers["9.9.9.9"] = (200, answer("Zurich"))
    provider = OnlineProvider(KEY, url, rate=100, timeout=0.3)
    try:
        for _ in range(50):  # the pipeline keeps going while the request hangs
            assert provider.overlay("9.9.9.9", OFFLINE) is OFFLINE
        until(lambda: len(state.requests) == 1)
        until(lambda: provider.failures == 1)
        assert provider.overlay("9.9.9.9", OFFLINE) is OFFLINE
    finally:
        state.release.set()
        provider.close()


def test_requests_are_rate_limited(api: tuple[FakeApi, str]) -> None:
    state, url = api
    ips = ["1.1.1.1", "1.0.0.1", "8.8.4.4"]
    for ip in ips:
        state.answers[ip] = (200, answer("X"))
    provider = OnlineProvider(KEY, url, rate=5, timeout=2)  # one request per 0.2 s
    try:
        for ip in ips:
            provider.overlay(ip, OFFLINE)
        until(lambda: all(provider.known(ip) for ip in ips))
        times = [t for t, _ in state.requests]
        assert len(times) == 3
        # 0.2 s apart as sent; the server's clock sees them with some scheduling jitter,
        # so the check leaves room for it (unlimited, the three would take milliseconds)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.1
        assert times[-1] - times[0] >= 0.3
    finally:
        provider.close()


def test_enricher_uses_the_provider(api: tuple[FakeApi, str], shared_data: Path,
                                    tmp_path: Path) -> None:
    state, url = api
    state.answers["81.2.69.142"] = (200, answer("Lyon", "45.76", "4.83"))
    city_db = shared_data / "geoip" / "GeoIP2-City-Test.mmdb"
    geo = GeoIP.from_settings(GeoipSection(databases=[str(city_db)], builtin=False), tmp_path)
    provider = OnlineProvider(KEY, url, rate=100, timeout=2)
    enricher = GeoEnricher(geo, online=provider)
    ts = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    try:
        first = Event(ts=ts, src_ip="81.2.69.142")
        private = Event(ts=ts, src_ip="10.0.0.1")
        enricher.enrich([first, private])
        assert first.city == "London"  # offline, at once
        until(lambda: provider.known("81.2.69.142"))
        later = Event(ts=ts, src_ip="81.2.69.142")
        enricher.enrich([later])
        assert (later.city, later.lat, later.lon) == ("Lyon", 45.76, 4.83)
        assert later.geo_db is not None and "ipgeolocation.io@" in later.geo_db
        assert [q["ip"] for _, q in state.requests] == ["81.2.69.142"]  # never the private
    finally:
        enricher.close()


def test_parse_refuses_what_is_not_a_place() -> None:
    day = dt.date(2026, 11, 23)
    assert parse_ipgeolocation({"message": "Invalid API key"}, day) is None
    assert parse_ipgeolocation(["x"], day) is None
    hit = parse_ipgeolocation({"country_code2": "de", "latitude": "999", "longitude": "1",
                               "city": "B" * 5000}, day)
    assert hit is not None
    assert (hit.country, hit.lat, hit.lon) == ("DE", None, None)
    assert hit.city is not None and len(hit.city) == 256


def test_provider_fills_in_when_offline_knows_nothing(api: tuple[FakeApi, str]) -> None:
    state, url = api
    state.answers["5.6.7.8"] = (200, answer("Nice", "43.7", "7.26"))
    provider = OnlineProvider(KEY, url, rate=100, timeout=2,
                              today=lambda: dt.date(2026, 11, 23))
    enricher = GeoEnricher(GeoIP([]), online=provider)
    ts = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    try:
        first = Event(ts=ts, src_ip="5.6.7.8")
        enricher.enrich([first])
        assert first.country is None and first.geo_db is None
        until(lambda: provider.known("5.6.7.8"))
        later = Event(ts=ts, src_ip="5.6.7.8")
        enricher.enrich([later])
        assert (later.city, later.geo_db) == ("Nice", "ipgeolocation.io@2026-11-23")
    finally:
        enricher.close()
