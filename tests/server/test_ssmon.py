"""The old spyserver monitor's API, served for real by uvicorn and asked over HTTP."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from portolan.config import validate
from portolan.enrich.privacy import Privacy, PrivacySection
from portolan.event import Event, make_id
from portolan.formats.base import ParseContext
from portolan.formats.spyserver import SpyserverParser
from portolan.runtime import Runtime
from portolan.server.base import MOUNTS

T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)
PLACES = {
    "203.0.113.5": ("US", "United States", "Chicago", 41.8781, -87.6298),
    "198.51.100.7": ("DE", "Germany", "Berlin", 52.52, 13.405),
}
#: (instance, ip, port, client, seconds connected or None while still connected)
SESSIONS = [
    ("hf", "203.0.113.5", 1000, "SDR# 1700.0.0.1 on Windows", 5),
    ("hf", "198.51.100.7", 2000, "SDR++", None),
    ("one", "203.0.113.5", 1001, "SDR# 1716.0.0.2 on Linux", 20),
    ("one", "192.0.2.9", 3000, "SpyClient for Python v1.0", 1),
]


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app on a real loopback port, the way the server mounts it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def runtime(tmp_path: Path, db_url: str) -> Runtime:
    config = validate({"data_dir": str(tmp_path / "data"), "privacy": {"mode": "hash"}})
    return Runtime(config=config, db_url=db_url)


def app_for(rt: Runtime) -> Starlette:
    return Starlette(routes=[Mount("/ssmon", app=MOUNTS.get("/ssmon").make(rt))])


def spyserver_events() -> list[Event]:
    """The sessions above, through the real parser, then placed as enrichment would."""
    out: list[Event] = []
    for instance in ("hf", "one"):
        clock = {"t": T0}
        ctx = ParseContext(sensor="s1", source=f"spyserver:{instance}",
                           options={"instance": instance}, now=lambda c=clock: c["t"])
        parser = SpyserverParser(ctx)
        mine = [s for s in SESSIONS if s[0] == instance]
        for _, ip, port, name, _ in mine:
            out += parser.parse(f"Accepted client {ip}:{port} running {name}") or []
        for _, ip, port, _, seconds in sorted(mine, key=lambda s: s[4] or 0):
            if seconds is not None:
                clock["t"] = T0 + dt.timedelta(seconds=seconds)
                out += parser.parse(f"Client disconnected: {ip}:{port}") or []
    for index, event in enumerate(out):
        event.id = make_id("test", index)
        place = PLACES.get(event.src_ip or "")
        if place:
            event.country, event.country_name, event.city, event.lat, event.lon = place
    return out


def get(base: str, path: str) -> Any:
    response = httpx.get(f"{base}/ssmon/api/v1/{path}", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response


def test_every_endpoint_on_real_sessions(tmp_path: Path, db_url: str) -> None:
    rt = runtime(tmp_path, db_url)
    rt.store().write(spyserver_events())
    privacy = Privacy.from_settings(rt.config.get(PrivacySection), rt.data_dir)
    h = privacy.hash_ip
    names = {ip: p[1] for ip, p in PLACES.items()}
    cities = {ip: p[2] for ip, p in PLACES.items()}

    def counted(values: list[str]) -> list[list[Any]]:
        c = collections.Counter(values)
        return [[k, n] for k, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]

    with serve(app_for(rt)) as base:
        bodies = {p: get(base, p) for p in ("GetConnectionCounts", "GetConnectionStats",
                                            "active", "country", "city", "location")}
    rt.close()
    for path, response in bodies.items():
        for ip in {s[1] for s in SESSIONS}:
            assert ip not in response.text, f"{path} shows a raw address"
    counts = bodies["GetConnectionCounts"].json()
    assert counts["TOTAL"] == len(SESSIONS)
    assert counts["server_instance"] == counted([s[0] for s in SESSIONS])
    assert counts["country"] == counted([names.get(s[1], "Unknown") for s in SESSIONS])
    assert counts["city"] == counted([cities.get(s[1], "Unknown") for s in SESSIONS])
    assert sorted(map(tuple, counts["ip"])) == sorted(
        (h(ip), n) for ip, n in collections.Counter(s[1] for s in SESSIONS).items())
    active = [s for s in SESSIONS if s[4] is None]
    assert counts["ACTIVE"] == bodies["active"].json()
    assert counts["ACTIVE"]["TOTAL"] == len(active)
    (entry,) = counts["ACTIVE"]["SERVER"][active[0][0]]
    session = json.loads(entry)
    assert session == {
        "ip": h(active[0][1]), "port": str(active[0][2]), "server_instance": active[0][0],
        "sdr_version": "SDR++", "os": None, "start": "2026-11-23 05:00:00.000000",
        "end": None, "lat": PLACES[active[0][1]][3], "lon": PLACES[active[0][1]][4],
        "country": names[active[0][1]], "city": cities[active[0][1]],
    }
    stats = bodies["GetConnectionStats"].json()
    ended = [s for s in SESSIONS if s[4] is not None]
    longest = max(ended, key=lambda s: s[4] or 0)
    assert stats["longest"][:5] == [h(longest[1]), str(longest[2]), longest[0], "1716.0.0.2",
                                    "Linux"]
    assert stats["longest"][7] == longest[4]
    assert stats["avg"] == pytest.approx(statistics.mean(s[4] or 0 for s in ended))
    assert stats["sum"] == pytest.approx(sum(s[4] or 0 for s in ended))
    assert stats["ip"] == [h("203.0.113.5"), 2]
    assert stats["country"] == counts["country"][0] and stats["city"] == counts["city"][0]
    assert bodies["country"].json() == counts["country"]
    assert bodies["city"].json() == counts["city"]
    located = collections.Counter(s[1] for s in SESSIONS if s[1] in PLACES)
    assert sorted(bodies["location"].json(), key=lambda x: x["city"]) == sorted(
        ({"count": n, "city": cities[ip], "country": names[ip], "lat": PLACES[ip][3],
          "lon": PLACES[ip][4]} for ip, n in located.items()), key=lambda x: x["city"])


def test_an_empty_database_answers(tmp_path: Path, sqlite_url: str) -> None:
    rt = runtime(tmp_path, sqlite_url)
    with serve(app_for(rt)) as base:
        assert get(base, "GetConnectionCounts").json() == {
            "server_instance": [], "country": [], "city": [], "ip": [], "TOTAL": 0,
            "ACTIVE": {"TOTAL": 0, "SERVER": {}}}
        assert get(base, "GetConnectionStats").json() == {
            "longest": None, "ip": None, "country": None, "city": None, "avg": None, "sum": 0.0}
        for path in ("country", "city", "location"):
            assert get(base, path).json() == []
        assert get(base, "active").json() == {"TOTAL": 0, "SERVER": {}}
    rt.close()


def test_hashes_are_stable_across_restarts(tmp_path: Path, sqlite_url: str) -> None:
    seen = []
    for _ in range(2):
        rt = runtime(tmp_path, sqlite_url)
        if not seen:
            rt.store().write(spyserver_events())
        with serve(app_for(rt)) as base:
            seen.append(get(base, "GetConnectionCounts").json()["ip"])
        rt.close()
    assert seen[0] == seen[1] and len(seen[0]) == len({s[1] for s in SESSIONS})
    # and they are keyed: another secret gives other hashes
    other = Privacy("hash", b"another secret").hash_ip("203.0.113.5")
    assert other not in {h for h, _ in seen[0]}
