"""``GET /api/v1/stream``: Server-Sent Events of new events, with the filters of
``/api/v1/events``, resumable with ``Last-Event-ID`` (see :mod:`portolan.server.hub`).

Messages: ``data:`` is one event as JSON (addresses as the privacy mode says), ``id:`` is
its place in the stream; ``event: reset`` (no id) says the client missed events that are
no longer available and should reload; a comment line every 15 seconds of quiet keeps
proxies from closing the connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from portolan.event import encode
from portolan.server.api import BadRequest, event_filter
from portolan.server.context import ServerState, problem
from portolan.server.hub import matches, sse
from portolan.store import EventFilter, QueryError


async def stream(request: Request) -> Response:
    """New events as they are stored."""
    st: ServerState = request.app.state.portolan
    denied = st.deny(request, "read")
    if denied is not None:
        return denied
    try:
        f = event_filter(request, st)
    except (BadRequest, QueryError) as exc:
        return problem(400, str(exc))
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    after, missed = st.hub.start_after(last[:64] if last else None)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_messages(st, f, after, missed), media_type="text/event-stream",
                             headers=headers)


async def _messages(st: ServerState, f: EventFilter, after: int, missed: bool
                    ) -> AsyncIterator[bytes]:
    hub = st.hub
    st.counters.stream_clients += 1
    try:
        yield b"retry: 3000\n\n"
        if missed:
            yield sse(None, b"{}", "reset")
        async for batch in hub.follow(after):
            if batch is None:
                yield b": keepalive\n\n"
                continue
            out = [sse(f"{hub.boot}-{seq}", encode(st.shown(e)))
                   for seq, e in batch if matches(f, e)]
            if out:
                yield b"".join(out)
    finally:
        st.counters.stream_clients -= 1


ROUTES = [Route("/stream", stream, methods=["GET"])]
