"""The read API against a real server and a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from portolan.event import Payload
from portolan.server.tokens import Tokens

from .conftest import Running, ev, make_runtime, start_server


@pytest.fixture
def filled(server: Running) -> Running:
    store = server.runtime.store()
    store.write([ev(i) for i in range(250)])
    store.write([ev(1000 + i, src_ip="198.51.100.9", user=u, dst_port=p, payload=Payload(pl),
                    action=a, session="s-198.51.100.9")
                 for i, (u, p, pl, a) in enumerate([
                     ("admin", 22, b"SSH-2.0-Go\r\n", "connect"),
                     ("oracle", 2222, b"\x16\x03\x01\x00\xa5\x01", "auth_failure"),
                     ("admin", 80, b"GET / HTTP/1.1\r\n", "auth_success"),
                 ])])
    return server


def test_events_page_through_everything_newest_first(filled: Running) -> None:
    seen: list[str] = []
    times: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 40, "service": "ssh"}
        if cursor:
            params["cursor"] = cursor
        body = filled.get("/api/v1/events", params=params).json()
        seen += [e["id"] for e in body["events"]]
        times += [e["ts"] for e in body["events"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 253
    assert times == sorted(times, reverse=True)
    assert pages == 7


def test_event_filters(filled: Running) -> None:
    body = filled.get("/api/v1/events", params={"ip": "198.51.100.9", "user": "admin"}).json()
    assert {e["dst_port"] for e in body["events"]} == {22, 80}
    body = filled.get("/api/v1/events", params={
        "country": "nl", "since": "2026-11-23T05:01:00Z", "until": "2026-11-23T05:02:00Z",
        "limit": 1000}).json()
    assert len(body["events"]) == 30
    assert {e["country"] for e in body["events"]} == {"NL"}
    body = filled.get("/api/v1/events", params={"ip": "203.0.113.0/24", "asn": 64501}).json()
    assert body["events"] and all(e["asn"] == 64501 for e in body["events"])


@pytest.mark.parametrize(("params", "names"), [
    ({"since": "yesterday-ish"}, "since"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"direction": "sideways"}, "direction"),
    ({"country": "NLD"}, "country"),
    ({"asn": "-1"}, "asn"),
    ({"cursor": "nonsense"}, "cursor"),
    ({"ip": "10.0.0.0/7"}, "ip"),
])
def test_bad_parameters_are_400_naming_them(server: Running, params: dict[str, str],
                                            names: str) -> None:
    r = server.get("/api/v1/events", params=params)
    assert r.status_code == 400
    assert r.json()["error"].startswith(names + ":")


def test_counts_top_other_total(filled: Running) -> None:
    body = filled.get("/api/v1/counts/ip", params={"limit": 2}).json()
    assert body["total"] == 253
    assert [i["count"] for i in body["items"]] == [36, 36]
    assert body["other"] == 253 - 72
    body = filled.get("/api/v1/counts/country").json()
    assert {i["key"]: i["count"] for i in body["items"]} == {"NL": 125 + 1, "DE": 125 + 2}
    body = filled.get("/api/v1/counts/asn", params={"since": "2026-11-23T05:00:00.5Z"}).json()
    assert body["total"] == 252
    assert all(isinstance(i["key"], int) for i in body["items"])
    r = filled.get("/api/v1/counts/password")
    assert r.status_code == 404 and "allowed" in r.json()["error"]


def test_series(filled: Running) -> None:
    body = filled.get("/api/v1/series", params={
        "since": "2026-11-23T04:58:00Z", "until": "2026-11-23T05:05:00Z", "step": 60}).json()
    counts = [p["count"] for p in body["points"]]
    assert body["step"] == 60 and len(counts) == 7
    assert counts == [0, 0, 60, 60, 60, 60, 10]  # events 0..249, one a second from 05:00
    assert body["total"] == 250
    r = filled.get("/api/v1/series", params={"step": 7})
    assert r.status_code == 400 and r.json()["error"].startswith("step:")


def test_story_of_an_address(filled: Running) -> None:
    body = filled.get("/api/v1/ips/198.51.100.9").json()
    assert body["address"]["events"] == 3
    assert body["address"]["successes"] == 1 and body["address"]["failures"] == 1
    assert {u["key"]: u["count"] for u in body["users"]} == {"admin": 2, "oracle": 1}
    assert {p["key"] for p in body["ports"]} == {22, 80, 2222}
    assert {k["key"] for k in body["payload_kinds"]} == {"ssh", "tls", "http"}
    assert body["links"]["shodan"] == "https://www.shodan.io/host/198.51.100.9"
    assert len(body["recent"]) == 3
    assert filled.get("/api/v1/ips/192.0.2.200").status_code == 404


def test_watch_list(filled: Running) -> None:
    note = 'brute force </script><img src=x onerror=alert(1)> "\x1b[2J'
    r = filled.client.put("/api/v1/ips/198.51.100.9", json={"starred": True, "note": note})
    assert r.status_code == 200
    assert r.json() == {"ip": "198.51.100.9", "starred": True, "note": note}
    assert "\\u001b" in r.text  # control characters travel escaped
    listed = filled.get("/api/v1/ips", params={"starred": "true"}).json()["ips"]
    assert [a["ip"] for a in listed] == ["198.51.100.9"]
    r = filled.client.put("/api/v1/ips/198.51.100.9", json={"note": ""})
    assert r.json()["note"] is None and r.json()["starred"] is True
    assert filled.client.delete("/api/v1/ips/198.51.100.9").json()["starred"] is False
    assert filled.get("/api/v1/ips", params={"starred": "true"}).json()["ips"] == []
    assert filled.client.put("/api/v1/ips/192.0.2.77", json={"starred": True}).status_code == 404
    r = filled.client.put("/api/v1/ips/198.51.100.9", json={"starred": "yes"})
    assert r.status_code == 400
    r = filled.client.put("/api/v1/ips/198.51.100.9", json={"color": "red"})
    assert r.status_code == 400


def test_sensors_and_sessions(filled: Running) -> None:
    sensors = filled.get("/api/v1/sensors").json()["sensors"]
    assert [s["name"] for s in sensors] == ["s1"]
    assert sensors[0]["events"] == 253
    assert sensors[0]["lag_seconds"] > 0
    sessions = filled.get("/api/v1/sessions").json()["sessions"]
    assert [s["session"] for s in sessions] == ["s-198.51.100.9"]
    active = filled.get("/api/v1/sessions/active").json()["sessions"]
    assert [s["src_ip"] for s in active] == ["198.51.100.9"]


def test_info_and_asn_traffic(server: Running) -> None:
    info = server.get("/api/v1/info").json()
    assert info["privacy"] == "full" and "country" in info["counts"]
    r = server.get("/api/v1/asn-traffic")
    assert r.status_code in (200, 404)


@pytest.fixture(params=["hash", "truncate"])
def private(request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str
            ) -> Iterator[Running]:
    rt = make_runtime(tmp_path, sqlite_url, privacy={"mode": request.param})
    rt.store().write([ev(i, session=f"203.0.113.{i % 7}:{40000 + i}") for i in range(50)])
    yield from start_server(rt)


def test_privacy_applies_to_every_response(private: Running) -> None:
    texts = [private.get(p).text for p in (
        "/api/v1/events", "/api/v1/counts/ip", "/api/v1/sessions", "/api/v1/ips",
        "/metrics", "/api/v1/sessions/active")]
    for text in texts:
        assert "203.0.113.1" not in text and "203.0.113.4\"" not in text
    mode = private.get("/api/v1/info").json()["privacy"]
    shown = private.get("/api/v1/counts/ip").json()["items"][0]["key"]
    # no oracle: asking for a real address or searching for one finds nothing
    r = private.get("/api/v1/events", params={"q": "203.0.113"})
    assert r.status_code == 400 and r.json()["error"].startswith("q:")
    r = private.get("/api/v1/events", params={"ip": "203.0.113.1"})
    assert r.status_code == 400 if mode == "truncate" else r.json()["events"] == []
    assert private.get("/api/v1/ips/203.0.113.1").status_code in (400, 404)
    if mode == "truncate":
        r = private.get("/api/v1/events", params={"ip": "203.0.113.0/24", "limit": 1000})
        assert len(r.json()["events"]) == 50
        body = private.get("/api/v1/counts/ip").json()
        assert body["items"] == [{"key": "203.0.113.0/24", "label": None, "count": 50}]
        assert private.get("/api/v1/ips/203.0.113.1").status_code == 400
        return
    assert len(shown) == 16
    story = private.get(f"/api/v1/ips/{shown}").json()
    assert story["address"]["ip"] == shown and story["links"] == {}
    assert story["address"]["events"] > 0
    events = private.get("/api/v1/events", params={"ip": shown}).json()["events"]
    assert events and {e["src_ip"] for e in events} == {shown}


@pytest.fixture
def locked(tmp_path: Path, sqlite_url: str) -> Iterator[Running]:
    rt = make_runtime(tmp_path, sqlite_url, server={"read_token_required": True,
                                                    "cors_origins": ["https://dash.example"]})
    yield from start_server(rt)


def test_tokens_guard_reads_when_required(locked: Running) -> None:
    tokens = Tokens(locked.runtime.store())
    read, _ = tokens.create("read", "reader")
    ingest, _ = tokens.create("ingest", "sensor-1")
    r = locked.get("/api/v1/events")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert locked.get("/metrics").status_code == 401
    auth = {"Authorization": f"Bearer {read}"}
    assert locked.get("/api/v1/events", headers=auth).status_code == 200
    assert locked.get("/metrics", headers=auth).status_code == 200
    r = locked.get("/api/v1/events", headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 403 and "read" in r.json()["error"]
    r = locked.client.put("/api/v1/ips/1.2.3.4", json={"starred": True}, headers=auth)
    assert r.status_code == 403
    assert locked.get("/api/v1/events", headers={"Authorization": "Bearer ptk_nope"}
                      ).status_code == 401
    assert locked.get("/api/v1/health").status_code == 200
    r = locked.get("/api/v1/events", headers={"Authorization": "Basic eDp5"})
    assert r.status_code == 401


def test_cors(locked: Running, server: Running) -> None:
    origin = {"Origin": "https://dash.example"}
    r = locked.get("/api/v1/health", headers=origin)
    assert r.headers["access-control-allow-origin"] == "https://dash.example"
    r = locked.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = server.get("/api/v1/health", headers=origin)
    assert "access-control-allow-origin" not in r.headers


def test_hostile_fields_come_back_escaped_and_bounded(server: Running) -> None:
    hostile = "root\x1b]0;pwned\x07\r\n\"'<script>alert(1)</script>\u202e" + "A" * 900
    server.runtime.store().write([ev(1, user=hostile, attrs={"path": "/\x00\x1b[31m" * 50})])
    r = server.get("/api/v1/events")
    assert "\x1b" not in r.text and "\x00" not in r.text and "\x07" not in r.text
    assert "\\u001b" in r.text
    event = r.json()["events"][0]
    assert event["user"] == hostile and len(event["user"]) <= 1024
    counts = server.get("/api/v1/counts/user").json()
    assert len(counts["items"][0]["key"]) <= 200
    assert json.loads(r.text)  # whole body is valid JSON
