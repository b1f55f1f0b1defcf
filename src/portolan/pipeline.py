"""The pipeline: sources -> batches -> enrichers -> sinks.

asyncio throughout. Sources hand events to a bounded intake queue (a full queue makes
them wait: back-pressure, never unbounded memory). A batcher gathers events into batches
of ``batch_size`` (or whatever arrived within ``batch_delay``), runs the enrichers over
each (and lets the durable sinks that can prepare it for writing, see ``sinks.base``),
and passes it to the writer, which awaits every durable sink, then calls the sources'
checkpoints, then offers the batch to the other sinks through their own queues. One batch
is enriched and prepared while the previous one is written. When the durable sinks fall
behind, the batches waiting for them are written together (up to ``write_max`` events,
one transaction): a busy store catches up in fewer, larger transactions, while a quiet
one still gets each batch as soon as it is made.

A failing enricher or sink is isolated: counted in :class:`PipelineStats`, logged once
per kind of failure, and the pipeline goes on. Stopping drains: sources are cancelled,
and every event a source has handed over is written before :meth:`Pipeline.run` returns.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from portolan.enrich.base import Enricher
from portolan.event import Event
from portolan.sinks.base import Sink
from portolan.sources.base import Checkpoint, Source

log = logging.getLogger(__name__)

_END: Any = object()
#: The longest a thread waits for the GIL while a pipeline runs, in seconds.
SWITCH_INTERVAL = 0.001
#: Allocations between two collections of the youngest generation while events flow
#: (Python's default: 700). Events are not tracked by the collector (see
#: :class:`~portolan.event.Event`); what it still sees of a batch are short-lived tuples and
#: lists, which a higher threshold lets die before a collection looks at them.
GC_THRESHOLD = 100_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    """While events flow (a pipeline, ``portolan parse``): the garbage collector leaves
    aside what exists already (modules, the config, the GeoIP tables) and runs less often.
    Parsing and preparing batches make a great many short-lived objects that reference
    counting frees, and every collection would look at them and at the batches on their
    way to the store: with Python's defaults, collections take most of the time of
    preparing a batch for the store."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@dataclass
class PipelineStats:
    """Counters of one pipeline, read by the metrics endpoint and the summaries."""

    received: int = 0
    """Events handed over by sources."""
    batches: int = 0
    """Batches written to the durable sinks."""
    written: int = 0
    """Events that went through the durable sinks."""
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    """Failures by stage or sink name."""
    dropped: collections.Counter[str] = field(default_factory=collections.Counter)
    """Events not delivered to a non-durable sink that could not keep up, by sink name."""
    write_seconds: float = 0.0
    """Time spent in durable sinks, in total."""
    last_write_seconds: float = 0.0
    """Time the last batch took in the durable sinks."""
    queue_depth: int = 0
    """Batches waiting in the intake queue when last looked at."""
    extra: dict[str, int] = field(default_factory=dict)
    """Counters that sinks add (``stored``, ``duplicates``...)."""


class Pipeline:
    """Wires sources, enrichers and sinks; see the module docstring."""

    def __init__(
        self,
        sources: Sequence[Source],
        enrichers: Sequence[Enricher] = (),
        sinks: Sequence[Sink] = (),
        *,
        batch_size: int = 5000,
        batch_delay: float = 0.25,
        queue_size: int = 64,
        write_max: int = 50_000,
        side_queue_size: int = 64,
        stats: PipelineStats | None = None,
    ) -> None:
        self.sources = list(sources)
        self.enrichers = list(enrichers)
        self.durable = [s for s in sinks if s.durable]
        self.side = [s for s in sinks if not s.durable]
        self.batch_size = batch_size
        self.batch_delay = batch_delay
        self.write_max = write_max
        self.stats = stats or PipelineStats()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._write_queue: asyncio.Queue[Any] = asyncio.Queue(max(2, write_max // batch_size))
        self._side_queues: dict[str, asyncio.Queue[Any]] = {
            s.name: asyncio.Queue(side_queue_size) for s in self.side
        }
        self._logged: set[str] = set()

    # -- intake ------------------------------------------------------------------------

    async def emit(self, events: list[Event], checkpoint: Checkpoint | None = None) -> None:
        """The :class:`~portolan.sources.base.Emitter` that sources are given."""
        if not events and checkpoint is None:
            return
        await self._queue.put((events, checkpoint))
        self.stats.received += len(events)

    # -- running -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> PipelineStats:
        """Run until every source is exhausted or ``stop`` is set; then drain and close."""
        # The store works in a thread, mostly in the database's own code without the GIL;
        # each time it needs the GIL back it waits until the event loop's thread lets go,
        # at most the switch interval (5 ms by default): shorter, so that it does not sit
        # idle behind a busy parser.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, SWITCH_INTERVAL))
        try:
            with fewer_collections():
                return await self._run(stop)
        finally:
            sys.setswitchinterval(switch)

    async def _run(self, stop: asyncio.Event | None) -> PipelineStats:
        for sink in [*self.durable, *self.side]:
            start = getattr(sink, "start", None)
            if start is not None:  # optional: sinks with work left from an earlier run
                start()
        batcher = asyncio.create_task(self._batcher(), name="pipeline-batcher")
        writer = asyncio.create_task(self._writer(), name="pipeline-writer")
        side = [
            asyncio.create_task(self._side_writer(s), name=f"sink-{s.name}") for s in self.side
        ]
        sources = [
            asyncio.create_task(self._run_source(s), name=f"source-{s.name}")
            for s in self.sources
        ]
        waiters: list[asyncio.Future[Any]] = []
        if sources:
            waiters.append(asyncio.ensure_future(asyncio.wait(sources)))
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            if waiters:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            for task in sources:
                task.cancel()
            await asyncio.gather(*sources, return_exceptions=True)
            await self._queue.put(_END)
            await asyncio.gather(batcher, writer, return_exceptions=True)
            for q in self._side_queues.values():
                await q.put(_END)
            await asyncio.gather(*side, return_exceptions=True)
            for sink in [*self.durable, *self.side]:
                try:
                    await sink.close()
                except Exception as exc:
                    self._failed(f"sink {sink.name} close", exc)
        return self.stats

    async def _run_source(self, source: Source) -> None:
        try:
            await source.run(self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(f"source {source.name}", exc)

    # -- batching and enrichment -------------------------------------------------------

    async def _batcher(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            item = await queue.get()
            if item is _END:
                break
            events: list[Event] = list(item[0])
            checkpoints: list[Checkpoint] = [item[1]] if item[1] is not None else []
            deadline = loop.time() + self.batch_delay
            ended = False
            while len(events) < self.batch_size:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    item = await _get(queue, remaining)
                    if item is None:
                        break
                if item is _END:
                    ended = True
                    break
                events.extend(item[0])
                if item[1] is not None:
                    checkpoints.append(item[1])
            self.stats.queue_depth = queue.qsize()
            self._enrich(events)
            await self._write_queue.put((events, checkpoints, self._prepare(events)))
            if ended:
                break
        await self._write_queue.put(_END)

    def _enrich(self, events: list[Event]) -> None:
        if not events:
            return
        for enricher in self.enrichers:
            try:
                enricher.enrich(events)
            except Exception as exc:
                self._failed(f"enricher {enricher.name}", exc)

    def _prepare(self, events: list[Event]) -> list[list[Any] | None]:
        """For each durable sink that prepares batches ahead (see ``sinks.base``), the
        batch made ready; ``None`` for the others, or where preparing failed (the batch
        then goes through ``write``)."""
        out: list[list[Any] | None] = []
        for sink in self.durable:
            prepare = getattr(sink, "prepare", None)
            if prepare is None or not events:
                out.append(None)
                continue
            try:
                out.append([prepare(events)])
            except Exception as exc:
                self._failed(f"sink {sink.name} prepare", exc)
                out.append(None)
        return out

    # -- writing -----------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            item = await self._write_queue.get()
            if item is _END:
                return
            events, checkpoints, prepared = item
            ended = False
            while len(events) < self.write_max:  # group commit: take what waits too
                try:
                    more = self._write_queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if more is _END:
                    ended = True
                    break
                events = events + more[0]
                checkpoints = checkpoints + more[1]
                prepared = [None if a is None or b is None else a + b
                            for a, b in zip(prepared, more[2], strict=True)]
            if events:
                started = time.perf_counter()
                for sink, parts in zip(self.durable, prepared, strict=True):
                    try:
                        if parts is not None:
                            await sink.write_prepared(events, parts)  # type: ignore[attr-defined]
                        else:
                            await sink.write(events)
                    except Exception as exc:
                        self._failed(f"sink {sink.name}", exc, len(events))
                elapsed = time.perf_counter() - started
                self.stats.last_write_seconds = elapsed
                self.stats.write_seconds += elapsed
                self.stats.batches += 1
                self.stats.written += len(events)
            for checkpoint in checkpoints:
                try:
                    checkpoint()
                except Exception as exc:
                    self._failed("checkpoint", exc)
            if events:
                for name, q in self._side_queues.items():
                    try:
                        q.put_nowait(events)
                    except asyncio.QueueFull:
                        self.stats.dropped[name] += len(events)
            if ended:
                return

    async def _side_writer(self, sink: Sink) -> None:
        q = self._side_queues[sink.name]
        while True:
            events = await q.get()
            if events is _END:
                return
            try:
                await sink.write(events)
            except Exception as exc:
                self._failed(f"sink {sink.name}", exc, len(events))

    def _failed(self, where: str, exc: BaseException, count: int = 1) -> None:
        self.stats.failures[where] += count
        key = f"{where}:{type(exc).__name__}"
        if key not in self._logged:
            self._logged.add(key)
            log.error("%s failed: %s (further failures of this kind are counted only)",
                      where, exc, exc_info=not isinstance(exc, OSError))


async def _get(queue: asyncio.Queue[Any], wait: float) -> Any:
    """``queue.get()`` with a time-out that never loses an item (``None`` on time-out)."""
    getter = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait({getter}, timeout=wait)
    except asyncio.CancelledError:
        getter.cancel()
        raise
    if getter in done:
        return getter.result()
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        return await getter
    return None
