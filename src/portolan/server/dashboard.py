"""The web dashboard, served at ``/`` by the one server.

The dashboard is a single-page app built from ``web/`` (``npm ci && npm run build``, which
``scripts/bootstrap`` runs) into the ``static`` folder beside this module. Every file it
needs comes from here: scripts, styles and the world's country shapes; nothing is loaded
from another site. Paths that are not files (``/map``, ``/ip/203.0.113.5``) get the page
itself, which routes them in the browser.

Every response carries a Content-Security-Policy that allows scripts, styles, fonts and
connections from this server only (images also from the tile server, when
``[server] tile_url`` names one): even if attacker text ever reached the page as markup,
the browser would neither run it nor let it call out.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from portolan.runtime import Runtime
from portolan.server.base import MOUNTS, MountSpec
from portolan.server.settings import ServerSection

#: Where ``npm run build`` puts the dashboard.
STATIC: Final = Path(__file__).with_name("static")

_NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8">
<title>Portolan: dashboard not built</title>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem">
<h1>The dashboard is not built</h1>
<p>The API is running (<a href="/api/v1/info">/api/v1/info</a>). To build the dashboard,
run <code>scripts/bootstrap</code> in the source tree (it needs node and npm), or install
a release of Portolan, which has it built in.</p></body></html>
"""


def tile_source(tile_url: str) -> str | None:
    """The CSP source that allows a tile URL template's host, or None when there is none
    (``https://{s}.tile.example/{z}/{x}/{y}.png`` gives ``https://*.tile.example``)."""
    if not tile_url:
        return None
    parts = urlsplit(re.sub(r"\{s\}\.", "sub.", tile_url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname
    if host.startswith("sub.") and "{s}." in tile_url:
        host = "*." + host[4:]
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def policy(tile_url: str) -> str:
    """The Content-Security-Policy of every dashboard response."""
    tiles = tile_source(tile_url)
    img = "'self' data:" + (f" {tiles}" if tiles else "")
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",
        f"img-src {img}", "font-src 'self'", "connect-src 'self'", "object-src 'none'",
        "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'",
    ])


class Dashboard:
    """ASGI app: the built files, with the page itself for every other path."""

    def __init__(self, root: Path, tile_url: str = "") -> None:
        self.root = root.resolve()
        self.headers = {
            "Content-Security-Policy": policy(tile_url),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }

    def _file(self, path: str) -> Path | None:
        if not path or "\x00" in path:
            return None
        candidate = (self.root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response("method not allowed", 405, {"Allow": "GET, HEAD"})
        path = request.url.path
        index = self.root / "index.html"
        found = self._file(path)
        if found is not None and found != index:
            # built assets have a content hash in their name: cache them for good
            cache = ("public, max-age=31536000, immutable" if "/assets/" in path
                     else "no-cache")
            headers = {**self.headers, "Cache-Control": cache, "Vary": "Accept-Encoding"}
            packed = found.with_name(found.name + ".gz")
            if "gzip" in request.headers.get("accept-encoding", "") and packed.is_file():
                # compressed once at build time, not for every browser
                media = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
                return FileResponse(packed, media_type=media,
                                    headers={**headers, "Content-Encoding": "gzip"})
            return FileResponse(found, headers=headers)
        if path.startswith(("/api/", "/assets/")) or path == "/metrics":
            return Response("not found", 404, self.headers, media_type="text/plain")
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, 503, self.headers)
        return FileResponse(index, headers={**self.headers, "Cache-Control": "no-cache"},
                            media_type="text/html; charset=utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.concurrency import run_in_threadpool

        if scope["type"] != "http":
            return
        response = await run_in_threadpool(self.respond, Request(scope))
        await response(scope, receive, send)


def make(runtime: Runtime) -> ASGIApp:
    """The dashboard app for a runtime."""
    return Dashboard(STATIC, runtime.config.get(ServerSection).tile_url)


MOUNTS.add("dashboard", MountSpec(
    "/", "the web dashboard: map, charts, live feed, sessions, addresses", make))
