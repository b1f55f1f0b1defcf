"""The dashboard mount: the built files at ``/``, the page for every other path, a strict
Content-Security-Policy, and a clear page when the dashboard is not built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from portolan.server.dashboard import STATIC, Dashboard, policy, tile_source

from .conftest import Running, make_runtime, start_server

built = pytest.mark.skipif(not (STATIC / "index.html").is_file(),
                           reason="the dashboard is not built (scripts/bootstrap needs npm)")


@pytest.fixture
def tiled(tmp_path: Path, sqlite_url: str) -> Iterator[Running]:
    """A server whose map has a tile server configured."""
    yield from start_server(make_runtime(
        tmp_path, sqlite_url, server={"tile_url": "https://{s}.tiles.example:8443/{z}/{x}/{y}.png"}))


@pytest.mark.parametrize(("url", "source"), [
    ("", None),
    ("https://tile.example/{z}/{x}/{y}.png", "https://tile.example"),
    ("https://{s}.tile.example/{z}/{x}/{y}.png", "https://*.tile.example"),
    ("http://127.0.0.1:8081/tiles/{z}/{x}/{y}.png", "http://127.0.0.1:8081"),
    ("javascript:alert(1)//{z}", None),
    ("/relative/{z}/{x}/{y}.png", None),
])
def test_tile_source(url: str, source: str | None) -> None:
    assert tile_source(url) == source


def test_policy_allows_only_this_server_and_the_tile_host() -> None:
    plain = dict(p.split(" ", 1) for p in policy("").split("; "))
    assert plain["script-src"] == "'self'"
    assert plain["connect-src"] == "'self'"
    assert plain["img-src"] == "'self' data:"
    tiled = dict(p.split(" ", 1) for p in policy("https://t.example/{z}/{x}/{y}.png").split("; "))
    assert tiled["img-src"] == "'self' data: https://t.example"
    assert tiled["script-src"] == "'self'"


@built
def test_page_assets_and_fallback(server: Running) -> None:
    index = (STATIC / "index.html").read_text()
    root = server.get("/")
    assert root.status_code == 200
    assert root.text == index
    assert root.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in root.headers["content-security-policy"]
    assert root.headers["x-content-type-options"] == "nosniff"
    # the dashboard's own paths get the page, which routes them
    for path in ("/map", "/ip/203.0.113.5", "/sessions?service=ssh"):
        r = server.get(path)
        assert (r.status_code, r.text) == (200, index), path
    # built assets, with their hashed names cached for good, compressed on request
    script = next((STATIC / "assets").glob("*.js"))
    r = server.get(f"/assets/{script.name}", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert "immutable" in r.headers["cache-control"]
    assert r.content == script.read_bytes()  # httpx decompressed it
    # a missing asset is a 404, not the page (a stale page must not run HTML as a script)
    assert server.get("/assets/gone-123.js").status_code == 404
    # the API is not shadowed by the page
    info = server.get("/api/v1/info")
    assert info.headers["content-type"] == "application/json"
    assert server.get("/api/v1/no-such-route").status_code == 404


@built
def test_no_file_outside_the_build_is_served(server: Running) -> None:
    secret = Path(STATIC).parent / "dashboard.py"
    for path in ("/../dashboard.py", "/..%2fdashboard.py", "/assets/..%2f..%2fdashboard.py",
                 "/%2e%2e/dashboard.py"):
        r = httpx.get(server.url + path)
        assert secret.read_text()[:200] not in r.text, path
    assert server.client.post("/", content=b"x").status_code == 405


@built
def test_tile_host_is_allowed_for_images_only(tiled: Running) -> None:
    r = tiled.get("/")
    csp = dict(p.split(" ", 1) for p in r.headers["content-security-policy"].split("; "))
    assert csp["img-src"] == "'self' data: https://*.tiles.example:8443"
    assert csp["connect-src"] == "'self'"
    assert tiled.get("/api/v1/info").json()["tile_url"].startswith("https://{s}.tiles")


def _get(app: Dashboard, path: str) -> tuple[int, str, dict[str, str]]:
    r = app.respond(Request({"type": "http", "method": "GET", "path": path, "headers": [],
                             "query_string": b""}))
    body = bytes(r.body).decode() if hasattr(r, "body") else ""
    return r.status_code, body, dict(r.headers)


def test_not_built_says_how_to_build_it(tmp_path: Path) -> None:
    app = Dashboard(tmp_path / "empty")
    status, body, headers = _get(app, "/")
    assert status == 503
    assert "scripts/bootstrap" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    assert _get(app, "/map")[0] == 503
