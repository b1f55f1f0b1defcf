"""The forwarder: a sensor's events go to its collector, through a spool on disk.

Durable: a batch counts as written once it is in the spool (a SQLite file in the data
directory), so the sources' checkpoints advance and nothing is held in memory while the
collector is away. A sender task beside the pipeline sends the oldest spooled events in
gzip-compressed batches to the collector's ``POST /api/v1/ingest`` and deletes them once the
collector has answered 2xx. Unreachable collector, time-out or 5xx: wait (exponential
back-off, capped) and send again, oldest first. The collector stores idempotently on event
id, so an event sent twice (a crash between the answer and the delete) is stored once:
every event is stored exactly once, across restarts and ``kill -9`` of either side.

The spool is bounded (``spool_max_mb``); past the bound the oldest events are dropped, and
counted. A 400 that names a line drops that one event (logged), never the batch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from portolan import __version__
from portolan.config import SECTIONS, Section
from portolan.event import Event, encode
from portolan.runtime import Runtime
from portolan.sinks.base import SINKS, SinkSpec

log = logging.getLogger(__name__)


class ForwardSection(Section):
    """Send this sensor's events to a collector (another Portolan's ingest API)."""

    url: str = ""
    """The collector's base URL (``https://collector.example:8080``); empty: do not forward.
    Events go to ``URL/api/v1/ingest``."""
    token: str = ""
    """An ``ingest`` token made on the collector with ``portolan token create --scope ingest``."""
    ca_file: str = ""
    """CA certificate file to check the collector's certificate; empty: the system's CAs."""
    verify: bool = True
    """Check the collector's TLS certificate (turn off only for tests)."""
    batch_size: int = 5000
    """Most events per request."""
    timeout: float = 30.0
    """Seconds to wait for the collector's answer."""
    spool_file: str = ""
    """The spool (SQLite); empty: ``spool.db`` in the data directory."""
    spool_max_mb: int = 1024
    """Largest spool on disk, in MiB; past it the oldest events are dropped (and counted)."""
    retry_max_seconds: float = 60.0
    """Longest wait between two tries while the collector is unavailable."""


SECTIONS.add("forward", ForwardSection)


class Spool:
    """Events waiting for the collector, oldest first, in a SQLite file. Thread-safe."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS spool "
                         "(seq INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL)")
        row = self._db.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM spool")
        self.depth, self.bytes = row.fetchone()
        self.dropped = 0

    def put(self, events: list[Event]) -> None:
        """Append a batch (one transaction); drop the oldest past the size bound."""
        rows = [(encode(e),) for e in events]
        size = sum(len(r[0]) for r in rows)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO spool (data) VALUES (?)", rows)
            self._db.execute("COMMIT")
            self.depth += len(rows)
            self.bytes += size
            if self.bytes > self.max_bytes:
                self._trim()

    def _trim(self) -> None:
        excess = self.bytes - int(self.max_bytes * 0.9)
        cur = self._db.execute("SELECT seq, length(data) FROM spool ORDER BY seq")
        upto, freed, count = 0, 0, 0
        for seq, length in cur:
            upto, freed, count = seq, freed + length, count + 1
            if freed >= excess:
                break
        cur.close()
        self._db.execute("DELETE FROM spool WHERE seq <= ?", (upto,))
        self.depth -= count
        self.bytes -= freed
        self.dropped += count
        log.warning("forward spool over %d MiB: dropped the %d oldest events",
                    self.max_bytes // 2**20, count)

    def peek(self, limit: int) -> list[tuple[int, bytes]]:
        """The oldest ``limit`` spooled events as (seq, JSON)."""
        with self._lock:
            return self._db.execute(
                "SELECT seq, data FROM spool ORDER BY seq LIMIT ?", (limit,)).fetchall()

    def ack(self, seqs: list[int]) -> None:
        """Delete what the collector has."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            freed = 0
            for start in range(0, len(seqs), 900):
                chunk = seqs[start : start + 900]
                marks = ",".join("?" * len(chunk))
                freed += self._db.execute(
                    f"SELECT coalesce(sum(length(data)), 0) FROM spool WHERE seq IN ({marks})",
                    chunk).fetchone()[0]
                deleted = self._db.execute(f"DELETE FROM spool WHERE seq IN ({marks})", chunk)
                self.depth -= deleted.rowcount
            self._db.execute("COMMIT")
            self.bytes -= freed

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Rejected(Exception):
    """The collector refused the request for what it contains (4xx)."""

    def __init__(self, status: int, detail: dict[str, Any]) -> None:
        super().__init__(f"{status}: {detail.get('detail') or detail}")
        self.status = status
        self.detail = detail


class Collector:
    """The collector's ingest API, over HTTP(S)."""

    def __init__(self, settings: ForwardSection, sensor: str) -> None:
        import httpx

        verify: Any = settings.verify
        if settings.verify and settings.ca_file:
            import ssl

            verify = ssl.create_default_context(cafile=settings.ca_file)
        self.url = settings.url.rstrip("/") + "/api/v1/ingest"
        self.sensor = sensor
        self._client = httpx.Client(verify=verify, timeout=settings.timeout)
        self._headers = {
            "Authorization": f"Bearer {settings.token}",
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
            "User-Agent": f"portolan/{__version__}",
            "X-Portolan-Sensor": sensor,
            "X-Portolan-Version": __version__,
        }

    def send(self, lines: list[bytes], spool_depth: int) -> dict[str, Any]:
        """POST one batch; returns the collector's answer. Raises :class:`Rejected` for a
        4xx, ``OSError``/``httpx`` errors or :class:`Unavailable` for what may pass."""
        import httpx

        body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=5)
        headers = dict(self._headers)
        headers["X-Portolan-Spool-Depth"] = str(spool_depth)
        headers["X-Portolan-Sent-At"] = dt.datetime.now(dt.UTC).isoformat()
        try:
            answer = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from None
        if answer.status_code >= 500 or answer.status_code == 429:
            raise Unavailable(f"{answer.status_code} {answer.text[:200]}")
        if answer.status_code >= 400:
            try:
                detail = answer.json()
            except ValueError:
                detail = {"detail": answer.text[:200]}
            raise Rejected(answer.status_code, detail if isinstance(detail, dict) else {})
        result: dict[str, Any] = answer.json()
        return result

    def close(self) -> None:
        self._client.close()


class Unavailable(Exception):
    """The collector cannot take the batch now (down, time-out, 5xx)."""


class ForwardSink:
    """Spools every batch; a sender task delivers the spool to the collector."""

    name = "forward"
    durable = True

    def __init__(self, spool: Spool, collector: Collector, *, batch_size: int = 5000,
                 retry_max: float = 60.0, drain_seconds: float = 10.0) -> None:
        self.spool = spool
        self.collector = collector
        self.batch_size = batch_size
        self.retry_max = retry_max
        self.drain_seconds = drain_seconds
        self.sent = 0
        self.rejected = 0
        self.failures = 0
        self.last_error = ""
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    async def write(self, events: list[Event]) -> None:
        await asyncio.to_thread(self.spool.put, events)
        self._wake.set()
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name="forward-sender")

    def start(self) -> None:
        """Start sending what an earlier run left in the spool."""
        if self._sender is None and self.spool.depth:
            self._sender = asyncio.create_task(self._send_loop(), name="forward-sender")

    async def _send_loop(self) -> None:
        delay = 0.5
        while True:
            sent = await self._send_some()
            if sent is None:  # collector unavailable: back off
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                delay = min(delay * 2, self.retry_max)
                continue
            delay = 0.5
            if sent == 0:
                self._wake.clear()
                await self._wake.wait()

    async def _send_some(self) -> int | None:
        """Send one batch from the spool: its size, 0 when empty, None when unavailable."""
        rows = await asyncio.to_thread(self.spool.peek, self.batch_size)
        if not rows:
            return 0
        lines = [bytes(data) for _, data in rows]
        try:
            await asyncio.to_thread(self.collector.send, lines, self.spool.depth)
        except Unavailable as exc:
            self._failed(str(exc))
            return None
        except Rejected as exc:
            line = exc.detail.get("line")
            if exc.status == 400 and isinstance(line, int) and 0 < line <= len(rows):
                bad_seq = rows[line - 1][0]
                log.warning("collector refused an event, dropped: %s", exc)
                self.rejected += 1
                await asyncio.to_thread(self.spool.ack, [bad_seq])
                return len(rows)
            self._failed(f"collector refused the batch: {exc}")
            return None
        await asyncio.to_thread(self.spool.ack, [seq for seq, _ in rows])
        if self.failures and self.last_error:
            log.warning("collector %s reachable again", self.collector.url)
            self.last_error = ""
        self.sent += len(rows)
        return len(rows)

    def _failed(self, error: str) -> None:
        self.failures += 1
        if error != self.last_error:
            log.warning("collector %s: %s; %d events wait in the spool",
                        self.collector.url, error, self.spool.depth)
            self.last_error = error

    async def close(self) -> None:
        """Try to empty the spool for a little while; what is left waits for the next run."""
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        deadline = time.monotonic() + self.drain_seconds
        while self.spool.depth and time.monotonic() < deadline:
            if not await self._send_some():
                break
        if self.spool.depth:
            log.warning("%d events stay in the spool %s until the collector is back",
                        self.spool.depth, self.spool.path)
        self.collector.close()
        self.spool.close()

    def status(self) -> dict[str, Any]:
        return {"spool_depth": self.spool.depth, "spool_bytes": self.spool.bytes,
                "spool_dropped": self.spool.dropped, "sent": self.sent,
                "rejected": self.rejected, "failures": self.failures}


def _make(runtime: Runtime) -> ForwardSink | None:
    settings = runtime.config.get(ForwardSection)
    if not settings.url:
        return None
    path = Path(settings.spool_file) if settings.spool_file else runtime.data_dir / "spool.db"
    sink = ForwardSink(Spool(path, settings.spool_max_mb * 2**20),
                       Collector(settings, runtime.sensor),
                       batch_size=settings.batch_size, retry_max=settings.retry_max_seconds)
    return sink


SINKS.add("forward", SinkSpec("forward", "events to a collector, through a disk spool", _make))

