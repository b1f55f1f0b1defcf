"""The one HTTP server: the API under ``/api/v1``, ``/metrics``, and every app that other
parts registered in :data:`~portolan.server.base.MOUNTS` (the dashboard, compatibility
APIs), on one port.

:func:`build_app` makes the Starlette app for a runtime; :func:`serve` runs it with
uvicorn until a stop event is set (``portolan serve``, and the ``server`` service of
``portolan run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from portolan.config import ConfigError
from portolan.runtime import SERVICES, Runtime, ServiceSpec
from portolan.server import api, ingest, stream
from portolan.server.base import MOUNTS
from portolan.server.context import ServerState, json_response, problem
from portolan.server.settings import ServerSection

log = logging.getLogger(__name__)


def build_app(runtime: Runtime) -> Starlette:
    """The server's ASGI app for ``runtime``."""
    from prometheus_client import generate_latest

    from portolan.metrics import build_registry
    from portolan.server.openapi import document
    from portolan.server.prometheus import ServerCollector

    st = ServerState.build(runtime)
    registry = build_registry(runtime)
    registry.register(ServerCollector(st))
    doc = json_response(document()).body

    def openapi(request: Request) -> Response:
        return Response(doc, media_type="application/json")

    def metrics(request: Request) -> Response:
        denied = st.deny(request, "read")
        if denied is not None:
            return denied
        try:
            body = generate_latest(registry)
        except Exception as exc:
            from portolan.store import StoreError

            if isinstance(exc, StoreError):
                return problem(503, f"the store is unavailable: {exc}")
            raise
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    routes: list[BaseRoute] = [
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
        Mount("/api/v1", routes=[*api.ROUTES, *ingest.ROUTES, *stream.ROUTES]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    # longest paths first, so that "/" (the dashboard, which answers every path) comes last
    for _, spec in sorted(MOUNTS.items(), key=lambda kv: -len(kv[1].path.rstrip("/"))):
        mounted = spec.make(runtime)
        if mounted is not None:
            routes.append(Mount(spec.path.rstrip("/"), app=mounted))
    middleware = []
    if st.settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(
            CORSMiddleware, allow_origins=st.settings.cors_origins,
            allow_methods=["GET", "PUT", "DELETE", "POST"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding",
                           "Last-Event-ID"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        st.hub.close()

    async def not_found(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 404)
        return problem(code, "no such path" if code == 404 else "method not allowed here")

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_found})
    app.state.portolan = st
    return app


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port); :class:`ConfigError` otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"server.listen: {text!r} is not HOST:PORT "
                          "(127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080)")
    return host, int(port)


def bind(listen: str) -> socket.socket:
    """The listening socket (bound before the server starts, so errors are immediate)."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it small responses wait for the delayed ACK (~40 ms each)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"server.listen: cannot listen on {listen}: {exc.strerror}") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock


async def serve(runtime: Runtime, stop: asyncio.Event | None = None,
                sock: socket.socket | None = None) -> None:
    """Run the server until ``stop`` is set (or the task is cancelled)."""
    import uvicorn

    settings = runtime.config.get(ServerSection)
    sock = sock or bind(settings.listen)
    app = build_app(runtime)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3, proxy_headers=False)

    class Server(uvicorn.Server):
        """Leaves signals to the caller (the stop event), whose handlers stay in place."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    server = Server(config)
    host, port = sock.getsockname()[:2]
    log.info("serving on http://%s/ (API /api/v1, metrics /metrics)",
             f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    waiter: Any = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        await asyncio.wait([t for t in (task, waiter) if t is not None],
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        app.state.portolan.hub.close()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        if waiter is not None:
            waiter.cancel()
        sock.close()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


def _service(runtime: Runtime) -> Any:
    settings = runtime.config.get(ServerSection)
    if not settings.enabled:
        return None
    sock = bind(settings.listen)
    return serve(runtime, sock=sock)


SERVICES.add("server", ServiceSpec(
    "server", "the HTTP server: REST API, ingest, live stream, /metrics", _service))
