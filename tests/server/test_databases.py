"""The API over each database: ingest, then the dashboard's questions, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portolan.event import encode_lines
from portolan.server.tokens import Tokens

from .conftest import Running, ev, make_runtime, start_server


@pytest.fixture
def any_db(tmp_path: Path, db_url: str) -> Iterator[Running]:
    yield from start_server(make_runtime(tmp_path, db_url))


def test_ingest_then_read(any_db: Running) -> None:
    secret, _ = Tokens(any_db.runtime.store()).create("ingest")
    events = [ev(i, attrs={"host": f"h{i % 2}.example"}, service="http" if i % 3 else "ssh")
              for i in range(90)]
    auth = {"Authorization": f"Bearer {secret}"}
    for _ in range(2):
        r = any_db.client.post("/api/v1/ingest", content=encode_lines(events), headers=auth)
        assert r.status_code == 200
    assert r.json() == {"received": 90, "stored": 0, "duplicates": 90}
    since = {"since": "2026-11-23T05:00:00.5Z", "until": "2026-11-23T05:01:29.5Z"}
    hosts = any_db.get("/api/v1/counts/host", params=since).json()
    assert {i["key"]: i["count"] for i in hosts["items"]} == {"h0.example": 44,
                                                              "h1.example": 45}
    ssh = any_db.get("/api/v1/counts/ip", params={"service": "ssh"}).json()
    assert ssh["total"] == 30
    series = any_db.get("/api/v1/series", params={**since, "step": 60, "user": "root"}).json()
    assert [p["count"] for p in series["points"]] == [60, 30]
    story = any_db.get("/api/v1/ips/203.0.113.2").json()
    assert story["address"]["events"] == sum(1 for e in events if e.src_ip == "203.0.113.2")
    page = any_db.get("/api/v1/events", params={"limit": 50}).json()
    rest = any_db.get("/api/v1/events", params={"limit": 50, "cursor": page["next"]}).json()
    assert len(page["events"]) + len(rest["events"]) == 90 and rest["next"] is None
