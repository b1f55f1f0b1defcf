"""The store sink: batches into the database, held and retried while it is unavailable.

Durable: the pipeline waits for it, so back-pressure reaches the sources while the
database is down, and nothing that was accepted is lost. A batch that the database
refuses for what it contains (not for being unreachable) is split, and only the events
that cannot be stored are skipped and counted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from portolan.event import Event
from portolan.pipeline import PipelineStats
from portolan.runtime import SERVICES, Runtime, ServiceSpec
from portolan.sinks.base import SINKS, SinkSpec
from portolan.store import Prepared, Store, WriteResult, is_transient

log = logging.getLogger(__name__)


class StoreSink:
    """Writes batches through :meth:`Store.write` in a worker thread."""

    name = "store"
    durable = True

    def __init__(self, store: Store, stats: PipelineStats, *, retry_max: float = 30.0,
                 give_up: asyncio.Event | None = None) -> None:
        self.store = store
        self.stats = stats
        self.retry_max = retry_max
        self.give_up = give_up or asyncio.Event()
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0
        self.retries = 0
        stats.extra.setdefault("stored", 0)
        stats.extra.setdefault("duplicates", 0)
        stats.extra.setdefault("rejected", 0)

    async def write(self, events: list[Event]) -> None:
        self._count(await self._held(lambda: self._write_or_split(events), len(events)))

    def prepare(self, events: list[Event]) -> Prepared:
        """The part of writing that needs no database, done by the pipeline while the
        previous batch is being written."""
        return self.store.prepare(events)

    async def write_prepared(self, events: list[Event], parts: list[Prepared]) -> None:
        """Write batches made ready by :meth:`prepare` (``events`` are all of theirs)."""
        try:
            result = await self._held(lambda: self.store.write_prepared(parts), len(events))
        except Exception as exc:
            if is_transient(exc):
                raise
            # refused for what it holds: the plain path splits it, skipping only the bad
            result = await self._held(lambda: self._write_or_split(events), len(events))
        self._count(result)

    async def _held(self, attempt: Callable[[], WriteResult], count: int) -> WriteResult:
        """``attempt()`` in a worker thread, retried with back-off while the database is
        unavailable (the events are held meanwhile)."""
        delay = 0.25
        warned = False
        while True:
            try:
                result = await asyncio.to_thread(attempt)
                break
            except Exception as exc:
                if not is_transient(exc) or self.give_up.is_set():
                    raise
                self.retries += 1
                if not warned:
                    log.warning("store %s unavailable (%s); holding %d events and retrying",
                                self.store.where, str(exc).splitlines()[0], count)
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
        if warned:
            log.warning("store %s is back", self.store.where)
        return result

    def _write_or_split(self, events: Sequence[Event]) -> WriteResult:
        try:
            return self.store.write(events)
        except Exception as exc:
            if is_transient(exc) or len(events) == 1:
                if len(events) == 1 and not is_transient(exc):
                    log.warning("event %s rejected by the store: %s", events[0].id,
                                str(exc).splitlines()[0])
                    self.rejected += 1
                    self.stats.extra["rejected"] += 1
                    return WriteResult()
                raise
        half = len(events) // 2
        a = self._write_or_split(events[:half])
        b = self._write_or_split(events[half:])
        return WriteResult(a.stored + b.stored, a.duplicates + b.duplicates)

    def _count(self, result: WriteResult) -> None:
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.stats.extra["stored"] += result.stored
        self.stats.extra["duplicates"] += result.duplicates

    async def close(self) -> None:
        return None


def _make(runtime: Runtime) -> StoreSink | None:
    if not runtime.config.store.enabled and runtime.db_url is None:
        return None
    return StoreSink(runtime.store(), runtime.stats,
                     retry_max=runtime.config.store.retry_max_seconds)


SINKS.add("store", SinkSpec("store", "events into the SQL store", _make))


async def retention(store: Store, days: int, *, every: float = 3600.0) -> None:
    """Delete events older than ``days``, now and then every ``every`` seconds."""
    while True:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        try:
            deleted = await asyncio.to_thread(store.purge, cutoff)
            if deleted:
                log.info("retention: %d events older than %d days deleted", deleted, days)
        except Exception as exc:
            log.warning("retention: purge failed: %s", exc)
        await asyncio.sleep(every)


def _retention(runtime: Runtime) -> Coroutine[Any, Any, None] | None:
    days = runtime.config.store.retention_days
    if days <= 0 or not runtime.config.store.enabled:
        return None
    return retention(runtime.store(), days)


SERVICES.add("retention", ServiceSpec(
    "retention", "deletes events older than [store] retention_days, hourly", _retention))
