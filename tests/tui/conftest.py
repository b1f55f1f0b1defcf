"""A real store with real events for the terminal view's tests, and a real server on it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portolan.event import Event, make_id
from portolan.store import Store
from tests.server.conftest import Running, make_runtime, start_server

#: A user name that tries to colour the terminal and to smuggle Rich markup.
EVIL_USER = "\x1b[31m[bold red]pwn[/]"
#: An HTTP host with a control character and markup in it.
EVIL_HOST = "[link=x]evil\x07.test"


def recent_events(now: dt.datetime) -> list[Event]:
    """Events of the last few minutes: SSH failures from three addresses in two countries,
    one success, HTTP requests to two hosts, and one session still open."""
    out: list[Event] = []

    def add(**kw: Any) -> None:
        i = len(out)
        base: dict[str, Any] = {
            "id": make_id("tui", i), "ts": now - dt.timedelta(seconds=200 - i),
            "sensor": "s1", "source": "auth.log", "service": "ssh",
            "action": "auth_failure", "dst_port": 22, "proto": "tcp",
        }
        base.update(kw)
        out.append(Event(**base))

    for i in range(12):
        add(src_ip="203.0.113.5", user="root" if i % 2 else "admin", country="NL",
            country_name="Netherlands", asn=64500, as_org="Example Net")
    for _ in range(5):
        add(src_ip="198.51.100.7", user=EVIL_USER, country="DE", country_name="Germany",
            asn=64501, as_org="Other AS")
    add(src_ip="198.51.100.7", action="auth_success", user="deploy", country="DE",
        country_name="Germany", asn=64501, as_org="Other AS")
    for i in range(6):
        add(src_ip="192.0.2.44", service="http", action="request", dst_port=80,
            source="access.log", country="NL", country_name="Netherlands", asn=64500,
            as_org="Example Net",
            attrs={"method": "GET", "host": "www.example.test" if i < 4 else EVIL_HOST,
                   "path": "/", "status": 200})
    add(src_ip="203.0.113.9", action="connect", session="sess-open", src_port=50123,
        country="NL", asn=64500)
    return out


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def filled_store(sqlite_url: str, now: dt.datetime) -> Iterator[Store]:
    """A migrated SQLite store holding :func:`recent_events` (written through the store)."""
    store = Store(sqlite_url)
    store.migrate()
    store.write(recent_events(now))
    yield store
    store.close()


@pytest.fixture
def api_server(tmp_path: Path, sqlite_url: str, filled_store: Store) -> Iterator[Running]:
    """A real Portolan server (uvicorn on 127.0.0.1) over the filled store."""
    yield from start_server(make_runtime(tmp_path / "server", sqlite_url))
