"""The live stream over real HTTP: filters, resuming with Last-Event-ID, privacy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portolan.event import encode_lines
from portolan.server.tokens import Tokens

from .conftest import Running, ev, make_runtime, start_server


def messages(response: httpx.Response) -> Iterator[dict[str, str]]:
    """SSE messages as dicts of their fields (comments and retry lines skipped)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def post(server: Running, events: list[object]) -> None:
    secret, _ = Tokens(server.runtime.store()).create("ingest")
    r = server.client.post("/api/v1/ingest", content=encode_lines(events),  # type: ignore[arg-type]
                           headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200


def take(server: Running, n: int, headers: dict[str, str] | None = None,
         params: dict[str, str] | None = None, then: object = None) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    with httpx.Client(base_url=server.url, timeout=10) as c, \
            c.stream("GET", "/api/v1/stream", headers=headers, params=params) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        if callable(then):
            then()
        for message in messages(r):
            got.append(message)
            if len(got) == n:
                break
    return got


def test_filters_and_resume(server: Running) -> None:
    events = [ev(i, service="http" if i % 2 else "ssh") for i in range(6)]
    got = take(server, 3, params={"service": "http"}, then=lambda: post(server, events))
    ids = [json.loads(m["data"])["id"] for m in got]
    assert ids == [events[1].id, events[3].id, events[5].id]
    boot, _, seq = got[0]["id"].partition("-")
    assert len(boot) == 8 and seq.isdigit()
    again = take(server, 2, headers={"Last-Event-ID": got[0]["id"]}, params={"service": "http"})
    assert [json.loads(m["data"])["id"] for m in again] == ids[1:]
    reset = take(server, 1, headers={"Last-Event-ID": "feedbeef-3"})
    assert reset[0]["event"] == "reset"


def test_bad_filter_is_400(server: Running) -> None:
    r = server.get("/api/v1/stream", params={"country": "Narnia"})
    assert r.status_code == 400


@pytest.fixture
def hashed(tmp_path: Path, sqlite_url: str) -> Iterator[Running]:
    yield from start_server(make_runtime(tmp_path, sqlite_url, privacy={"mode": "hash"}))


def test_stream_applies_privacy(hashed: Running) -> None:
    got = take(hashed, 1, then=lambda: post(hashed, [ev(1, session="203.0.113.1:4000")]))
    event = json.loads(got[0]["data"])
    assert "203.0.113.1" not in got[0]["data"]
    assert len(event["src_ip"]) == 16
