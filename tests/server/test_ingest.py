"""Ingest from remote sensors: formats, tokens, idempotence, clear errors, limits."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from portolan.event import encode, encode_lines
from portolan.server.tokens import Tokens

from .conftest import Running, ev, make_runtime, start_server


@pytest.fixture
def small(tmp_path: Path, sqlite_url: str) -> Iterator[Running]:
    rt = make_runtime(tmp_path, sqlite_url, server={
        "max_body_bytes": 200_000, "max_decoded_bytes": 400_000, "max_events": 100})
    yield from start_server(rt)


def token(server: Running, scope: str = "ingest") -> dict[str, str]:
    secret, _ = Tokens(server.runtime.store()).create(scope, f"t-{scope}")
    return {"Authorization": f"Bearer {secret}"}


def test_json_lines_then_a_retry_stores_once(server: Running) -> None:
    auth = token(server)
    body = encode_lines(ev(i, sensor="edge-1") for i in range(100))
    r = server.client.post("/api/v1/ingest", content=body, headers=auth)
    assert r.status_code == 200
    assert r.json() == {"received": 100, "stored": 100, "duplicates": 0}
    r = server.client.post("/api/v1/ingest", content=body, headers=auth)
    assert r.json() == {"received": 100, "stored": 0, "duplicates": 100}
    assert server.runtime.store().count() == 100
    stored = server.runtime.store().events(limit=1)[0]
    assert stored.received is not None and stored.sensor == "edge-1"
    counts = server.get("/api/v1/counts/sensor").json()
    assert counts["items"] == [{"key": "edge-1", "label": None, "count": 100}]


def test_array_and_gzip(server: Running) -> None:
    auth = token(server, "admin")
    array = b"[" + b",".join(encode(ev(i)) for i in range(10)) + b"]"
    r = server.client.post("/api/v1/ingest", content=array,
                           headers={**auth, "Content-Type": "application/json"})
    assert r.json()["stored"] == 10
    packed = gzip.compress(encode_lines(ev(i) for i in range(10, 30)))
    r = server.client.post("/api/v1/ingest", content=packed,
                           headers={**auth, "Content-Encoding": "gzip"})
    assert r.json()["stored"] == 20
    assert server.runtime.store().count() == 30


def test_a_bad_line_is_named_and_nothing_is_stored(server: Running) -> None:
    auth = token(server)
    lines = encode_lines(ev(i) for i in range(5)).splitlines()
    bad = json.loads(lines[2])
    bad["src_port"] = 70000
    lines[2] = json.dumps(bad).encode()
    r = server.client.post("/api/v1/ingest", content=b"\n".join(lines), headers=auth)
    assert r.status_code == 400
    problem = r.json()
    assert problem["line"] == 3 and "src_port" in problem["error"]
    assert problem["text"].startswith('{"id"')
    assert server.runtime.store().count() == 0
    r = server.client.post("/api/v1/ingest", content=b'[{"ts": 5}]', headers=auth)
    assert r.status_code == 400 and r.json()["line"] == 1
    r = server.client.post("/api/v1/ingest", content=b"\xff\xfe not json", headers=auth)
    assert r.status_code == 400 and r.json()["line"] == 1


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Bearer ptk_unknown"}, 401),
    ("read", 403),
])
def test_ingest_needs_an_ingest_token(server: Running, headers: object, status: int) -> None:
    if isinstance(headers, str):
        headers = token(server, headers)
    r = server.client.post("/api/v1/ingest", content=encode(ev(1)),
                           headers=headers)  # type: ignore[arg-type]
    assert r.status_code == status
    assert server.runtime.store().count() == 0


def test_limits(small: Running) -> None:
    auth = token(small)
    big = b"x" * 200_001
    assert small.client.post("/api/v1/ingest", content=big, headers=auth).status_code == 413
    bomb = gzip.compress(b" " * 5_000_000)
    r = small.client.post("/api/v1/ingest", content=bomb,
                          headers={**auth, "Content-Encoding": "gzip"})
    assert r.status_code == 413
    r = small.client.post("/api/v1/ingest", content=b"abc",
                          headers={**auth, "Content-Encoding": "br"})
    assert r.status_code == 415 and "gzip" in r.json()["error"]
    r = small.client.post("/api/v1/ingest", content=gzip.compress(b"{}")[:-6],
                          headers={**auth, "Content-Encoding": "gzip"})
    assert r.status_code == 400
    many = encode_lines(ev(i) for i in range(101))
    r = small.client.post("/api/v1/ingest", content=many, headers=auth)
    assert r.status_code == 400 and "100" in r.json()["error"]
    assert small.runtime.store().count() == 0


def test_metrics_count_ingest_requests(server: Running) -> None:
    auth = token(server)
    server.client.post("/api/v1/ingest", content=encode(ev(1)), headers=auth)
    server.client.post("/api/v1/ingest", content=b"nope", headers=auth)
    text = server.get("/metrics").text
    assert 'portolan_ingest_requests_total{status="200"} 1.0' in text
    assert 'portolan_ingest_requests_total{status="400"} 1.0' in text
    assert "portolan_ingest_events_total 1.0" in text
