"""``POST /api/v1/ingest``: batches of events from remote sensors.

The body is JSON lines (one event per line) or a JSON array of events, optionally
gzip-compressed (``Content-Encoding: gzip``). The sender needs a bearer token of scope
``ingest``. Every event is validated before any is stored: a bad one makes the whole
request a 400 that names the line (or array item, from 1), the field, and shows the start
of the line, so a sensor can log it and drop that event. Storing is idempotent on the
event id, so a sensor that retries after a time-out never stores an event twice.

The server sets ``received`` on every event, fills in place and network for events that
arrive without them (when enrichers are configured), stores the batch in one transaction,
then publishes it to the live stream.
"""

from __future__ import annotations

import re
import threading
import zlib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from portolan.event import Event, EventError, decode_lines, decode_many
from portolan.server.context import ServerState, json_response, problem
from portolan.server.shapes import IngestResult
from portolan.store import StoreError, WriteResult

_LINE = re.compile(r"^line (\d+): ")
_ITEM = re.compile(r"^\[(\d+)\]")
_sqlite_lock = threading.Lock()


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (before reading it all) one longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip, refusing more than ``limit`` bytes of output (no zip bombs)."""
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(data, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise TooLarge
    if not d.eof:
        raise ValueError("the gzip data is cut short")
    return out


def parse(body: bytes, max_events: int) -> list[Event]:
    """Events from JSON lines or a JSON array; :class:`EventError` names the bad one."""
    head = body.lstrip()[:1]
    if head == b"[":
        found = decode_many(body)
    else:
        found = []
        for e in decode_lines(body):
            found.append(e)
            if len(found) > max_events:
                break
    if len(found) > max_events:
        raise EventError(f"more than {max_events} events in one request; send smaller batches")
    return found


def _offending(body: bytes, message: str) -> dict[str, Any]:
    m = _LINE.match(message)
    if m:
        number = int(m[1])
        lines = body.splitlines()
        text = lines[number - 1] if 0 < number <= len(lines) else b""
        return {"line": number, "text": text[:200].decode("utf-8", "replace")}
    m = _ITEM.match(message)
    if m:
        return {"line": int(m[1]) + 1}
    return {}


def _store(st: ServerState, events: list[Event]) -> WriteResult:
    now = st.runtime.now()
    for e in events:
        e.received = now
    missing = [e for e in events if e.geo_db is None and e.country is None]
    if missing:
        for enricher in st.enrichers:
            try:
                enricher.enrich(missing)
            except Exception:  # an enricher failing must not lose the batch
                st.counters.enrich_failures += 1
    if st.store.dialect == "sqlite":
        # one writer at a time: SQLite would make the others wait on its file lock anyway
        with _sqlite_lock:
            return st.store.write(events)
    return st.store.write(events)


async def ingest(request: Request) -> Response:
    """Store a batch of events sent by a remote sensor."""
    st: ServerState = request.app.state.portolan
    denied = st.deny(request, "ingest")
    if denied is not None:
        return _count(st, denied)
    settings = st.settings
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding not in ("identity", "gzip"):
        return _count(st, problem(415, f"content-encoding: {encoding[:40]!r} is not "
                                       "accepted; allowed: gzip, identity"))
    try:
        body = await read_body(request, settings.max_body_bytes)
        if encoding == "gzip":
            body = await run_in_threadpool(gunzip, body, settings.max_decoded_bytes)
        elif len(body) > settings.max_decoded_bytes:
            raise TooLarge
    except TooLarge:
        return _count(st, problem(413, f"body: larger than {settings.max_body_bytes} bytes "
                                       f"sent or {settings.max_decoded_bytes} decompressed"))
    except (zlib.error, ValueError) as exc:
        return _count(st, problem(400, f"body: not valid gzip: {exc}"))
    try:
        events = await run_in_threadpool(parse, body, settings.max_events)
    except EventError as exc:
        return _count(st, problem(400, str(exc), **_offending(body, str(exc))))
    if not events:
        return _count(st, json_response(IngestResult(received=0, stored=0, duplicates=0)))
    try:
        result = await run_in_threadpool(_store, st, events)
    except StoreError as exc:
        return _count(st, problem(503, f"the store is unavailable: {exc}"))
    except Exception as exc:
        from portolan.store import is_transient

        if is_transient(exc):
            return _count(st, problem(503, "the store is unavailable; retry later"))
        raise
    st.counters.ingest_events += len(events)
    st.counters.ingest_stored += result.stored
    st.hub.publish(events)
    return _count(st, json_response(IngestResult(
        received=len(events), stored=result.stored, duplicates=result.duplicates)))


def _count(st: ServerState, response: Response) -> Response:
    codes = st.counters.ingest_requests
    codes[response.status_code] = codes.get(response.status_code, 0) + 1
    return response


ROUTES = [Route("/ingest", ingest, methods=["POST"])]
