"""A real server on 127.0.0.1 for the server's tests: uvicorn in a thread, a real store."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from portolan.config import validate
from portolan.event import Event, make_id
from portolan.runtime import Runtime

T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)


def ev(i: int, **kw: Any) -> Event:
    """A test event: one per second from T0, seven addresses, two countries."""
    base: dict[str, Any] = {
        "id": make_id("t", i), "ts": T0 + dt.timedelta(seconds=i), "sensor": "s1",
        "source": "auth.log", "service": "ssh", "action": "auth_failure",
        "src_ip": f"203.0.113.{i % 7}", "src_port": 40000 + i, "dst_port": 22,
        "user": "root", "country": "NL" if i % 2 else "DE", "asn": 64500 + i % 3,
    }
    base.update(kw)
    return Event(**base)


@dataclass
class Running:
    """A server that runs: its base URL, its runtime, and a client."""

    url: str
    runtime: Runtime
    client: httpx.Client
    loop: asyncio.AbstractEventLoop

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)


def wait_until(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Poll ``check`` until it returns something true, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
        except (httpx.TransportError, AssertionError, ValueError, KeyError, IndexError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s")
        time.sleep(0.05)


def start_server(runtime: Runtime) -> Iterator[Running]:
    from portolan.server.app import bind, serve

    sock = bind("127.0.0.1:0")
    host, port = sock.getsockname()[:2]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    done: list[BaseException | None] = []

    def run() -> None:
        try:
            loop.run_until_complete(serve(runtime, stop, sock=sock))
            done.append(None)
        except BaseException as exc:  # reported by the fixture
            done.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    client = httpx.Client(base_url=url, timeout=30)
    wait_until(lambda: client.get("/api/v1/health").status_code == 200)
    try:
        yield Running(url, runtime, client, loop)
    finally:
        client.close()
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()
        runtime.close()
        assert done == [None], done


def make_runtime(tmp_path: Path, db_url: str, **sections: Any) -> Runtime:
    raw: dict[str, Any] = {"data_dir": str(tmp_path / "data"), "sensor": "collector"}
    raw.update(sections)
    return Runtime(config=validate(raw), db_url=db_url)


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[Running]:
    """A server on a fresh SQLite store, default settings."""
    yield from start_server(make_runtime(tmp_path, sqlite_url))
