"""The app: mounts from other parts, JSON errors, the listen address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route, Router

from portolan.config import ConfigError
from portolan.server.app import bind, parse_listen
from portolan.server.base import MOUNTS, MountSpec

from .conftest import Running, make_runtime, start_server


@pytest.fixture
def mounted(tmp_path: Path, sqlite_url: str) -> Iterator[Running]:
    def make(runtime: object) -> Router:
        def hello(request: object) -> PlainTextResponse:
            return PlainTextResponse(f"hi {type(runtime).__name__}")

        return Router([Route("/hello", hello)])

    MOUNTS.add("/test-mount", MountSpec("/test-mount", "a test", make))
    try:
        yield from start_server(make_runtime(tmp_path, sqlite_url))
    finally:
        MOUNTS.remove("/test-mount")


def test_registered_mounts_are_served(mounted: Running) -> None:
    assert mounted.get("/test-mount/hello").text == "hi Runtime"


def test_unknown_paths_and_methods_are_json(server: Running) -> None:
    r = server.get("/api/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]
    r = server.client.post("/api/v1/events")
    assert r.status_code == 405 and r.json()["error"]


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("[::1]:9000", ("::1", 9000)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "localhost", ":80", "127.0.0.1:99999", "h:x"])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_listen(text)


def test_bind_ipv6_loopback() -> None:
    sock = bind("[::1]:0")
    try:
        assert sock.getsockname()[0] == "::1"
    finally:
        sock.close()


def test_listening_socket_is_tcp_so_responses_are_not_delayed() -> None:
    import socket

    sock = bind("127.0.0.1:0")
    try:
        # asyncio turns Nagle's algorithm off only for sockets created as IPPROTO_TCP
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
