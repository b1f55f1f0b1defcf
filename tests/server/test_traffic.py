"""``GET /traffic/asn`` served by uvicorn on 127.0.0.1, over a real SQLite store filled
through the store's writer."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from portolan import config as config_mod
from portolan.event import Event, make_id
from portolan.runtime import Runtime
from portolan.server.base import MOUNTS

NOW = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)


def _flow(i: int, dst: str, asn: int | None, size: int, hours_ago: float) -> Event:
    import portolan.sinks.asn_traffic  # noqa: F401  (registers the write hook)

    return Event(id=make_id("srv", i), ts=NOW - dt.timedelta(hours=hours_ago), sensor="s",
                 source="capture:eth0", service="tcp", action="flow", direction="outbound",
                 src_ip="192.168.1.2", dst_ip=dst, bytes_in=size, bytes_out=0, packets=2,
                 asn=asn, as_org="GOOGLE" if asn == 15169 else None)


@pytest.fixture
def client(tmp_path: Path, sqlite_url: str) -> Iterator[httpx.Client]:
    rt = Runtime(config=config_mod.validate({"data_dir": str(tmp_path)}), db_url=sqlite_url,
                 now=lambda: NOW)
    rt.store().write([_flow(1, "8.8.8.8", 15169, 100, 1), _flow(2, "8.8.8.8", 15169, 50, 30),
                      _flow(3, "10.0.0.9", None, 999, 1)])
    spec = MOUNTS.get("/traffic")
    app = Starlette(routes=[Mount(spec.path, app=spec.make(rt))])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        yield client
    server.should_exit = True
    thread.join(10)
    sock.close()
    rt.close()


def test_totals(client: httpx.Client) -> None:
    body = client.get("/traffic/asn").json()
    assert body["direction"] == "outbound" and body["by"] == "asn"
    assert [(r["asn"], r["as_org"], r["bytes"], r["flows"]) for r in body["rows"]] == [
        (15169, "GOOGLE", 150, 2)]


def test_range_and_private(client: httpx.Client) -> None:
    rows = client.get("/traffic/asn", params={"since": "24h"}).json()["rows"]
    assert [(r["asn"], r["bytes"]) for r in rows] == [(15169, 100)]
    rows = client.get("/traffic/asn", params={"private": "true"}).json()["rows"]
    assert [(r["as_org"], r["bytes"]) for r in rows] == [("private", 999), ("GOOGLE", 150)]


@pytest.mark.parametrize(("params", "message"), [
    ({"direction": "up"}, "direction: 'up'; allowed: outbound, inbound, any"),
    ({"since": "yesterday-ish"}, "since: 'yesterday-ish' is not a time"),
    ({"limit": "0"}, "limit: must be between 1 and 1000"),
    ({"by": "country"}, "by: 'country'; allowed: asn, network"),
])
def test_bad_parameters(client: httpx.Client, params: dict[str, str], message: str) -> None:
    response = client.get("/traffic/asn", params=params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
