"""The pipeline: batching, back-pressure, isolation of failures, checkpoints, drain."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gc
import sys

import pytest

from portolan.event import Event, make_id
from portolan.pipeline import GC_THRESHOLD, SWITCH_INTERVAL, Pipeline, PipelineStats
from portolan.sources.base import Emitter
from tests.waiting import eventually

T0 = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def events(n: int, start: int = 0) -> list[Event]:
    return [Event(id=make_id(i), ts=T0, service="t", action="x") for i in range(start, start + n)]


class ListSource:
    def __init__(self, batches: list[list[Event]], name: str = "list",
                 checkpoints: list[int] | None = None) -> None:
        self.name = name
        self.batches = batches
        self.checkpoints = checkpoints
        self.handed_over = 0

    async def run(self, out: Emitter) -> None:
        for index, batch in enumerate(self.batches):
            cp = None
            if self.checkpoints is not None:
                cp = functools.partial(self.checkpoints.append, index)
            await out.emit(batch, cp)
            self.handed_over += len(batch)


class EndlessSource:
    """Hands over events as fast as the pipeline takes them, until cancelled."""

    name = "endless"

    def __init__(self) -> None:
        self.handed_over = 0

    async def run(self, out: Emitter) -> None:
        n = 0
        while True:
            batch = events(10, n)
            n += 10
            await out.emit(batch)
            self.handed_over += len(batch)


class MemorySink:
    durable = True

    def __init__(self, name: str = "memory", delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.batches: list[list[Event]] = []
        self.closed = False

    @property
    def count(self) -> int:
        return sum(len(b) for b in self.batches)

    async def write(self, batch: list[Event]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.batches.append(batch)

    async def close(self) -> None:
        self.closed = True


class FailingSink(MemorySink):
    async def write(self, batch: list[Event]) -> None:
        raise RuntimeError("boom")


class BlockedSink(MemorySink):
    """A side sink that never finishes a write (a hung notification channel)."""

    durable = False

    async def write(self, batch: list[Event]) -> None:
        await asyncio.Event().wait()


class Stamp:
    name = "stamp"

    def enrich(self, batch: list[Event]) -> None:
        for e in batch:
            e.country = "NL"


class Broken:
    name = "broken"

    def enrich(self, batch: list[Event]) -> None:
        raise ValueError("bad data")


async def test_everything_arrives_in_batches() -> None:
    sink = MemorySink()
    src = ListSource([events(300, i * 300) for i in range(10)])
    stats = await Pipeline([src], [Stamp()], [sink], batch_size=1000, write_max=0).run()
    assert sink.count == 3000
    assert max(len(b) for b in sink.batches) <= 1300
    assert all(e.country == "NL" for b in sink.batches for e in b)
    assert stats.received == stats.written == 3000
    assert sink.closed


async def test_batches_waiting_for_a_busy_store_are_written_together() -> None:
    marks: list[int] = []
    release = asyncio.Event()
    sink = MemorySink()
    original = sink.write

    async def write(batch: list[Event]) -> None:
        await release.wait()  # the store is busy until every batch is made
        await original(batch)

    sink.write = write  # type: ignore[method-assign]
    src = ListSource([events(100, i * 100) for i in range(12)], checkpoints=marks)
    pipe = Pipeline([src], [], [sink], batch_size=100, batch_delay=0.01, write_max=450)
    task = asyncio.create_task(pipe.run())
    assert await eventually(lambda: pipe._write_queue.full())
    release.set()
    stats = await task
    assert sink.count == stats.written == 1200
    assert marks == list(range(12))
    # batches that waited went together, a group growing by whole batches until it
    # holds write_max events or more
    assert 100 < max(len(b) for b in sink.batches) < 450 + 100
    assert len(sink.batches) < 12
    assert sorted(e.id for b in sink.batches for e in b) == sorted(make_id(i) for i in range(1200))


async def test_checkpoints_after_durable_write_in_order() -> None:
    marks: list[int] = []
    sink = MemorySink()
    src = ListSource([events(5, i * 5) for i in range(20)], checkpoints=marks)

    original = sink.write

    async def write(batch: list[Event]) -> None:
        # when a batch is written, no checkpoint of a later batch may have run yet
        written_before = sink.count
        await original(batch)
        assert len(marks) * 5 <= written_before + len(batch)

    sink.write = write  # type: ignore[method-assign]
    await Pipeline([src], [], [sink], batch_size=12).run()
    assert marks == list(range(20))


# intake queue (4 items of 10) + the batch being built + the batches waiting for the
# writer (2, or write_max // batch_size) + what is being written (one batch, or a group
# of up to write_max + batch_size - 1): a constant, however long the run
@pytest.mark.parametrize(("write_max", "bound"), [(0, 4 * 10 + 20 + 2 * 20 + 20),
                                                  (100, 4 * 10 + 20 + 5 * 20 + 119)])
async def test_back_pressure_bounds_what_is_in_flight(write_max: int, bound: int) -> None:
    sink = MemorySink(delay=0.01)
    src = EndlessSource()
    pipe = Pipeline([src], [], [sink], batch_size=20, queue_size=4, write_max=write_max)
    stop = asyncio.Event()
    task = asyncio.create_task(pipe.run(stop))
    for _ in range(1000):
        await asyncio.sleep(0)
        if sink.count >= 200:
            break
        assert src.handed_over - sink.count <= bound
    stop.set()
    await task
    assert sink.count == src.handed_over  # drain: all that was handed over is written


async def test_stop_drains_every_handed_over_event() -> None:
    sink = MemorySink(delay=0.005)
    src = EndlessSource()
    stop = asyncio.Event()
    task = asyncio.create_task(Pipeline([src], [], [sink], batch_size=50).run(stop))
    assert await eventually(lambda: sink.count >= 100)
    stop.set()
    await task
    assert src.handed_over > 0
    assert sink.count == src.handed_over
    ids = [e.id for b in sink.batches for e in b]
    assert len(ids) == len(set(ids))


async def test_failing_enricher_and_sink_are_isolated() -> None:
    good = MemorySink("good")
    bad = FailingSink("bad")
    stats = PipelineStats()
    src = ListSource([events(10, i * 10) for i in range(5)])
    await Pipeline([src], [Broken(), Stamp()], [bad, good], batch_size=10, stats=stats).run()
    assert good.count == 50
    assert all(e.country == "NL" for b in good.batches for e in b)
    assert stats.failures["enricher broken"] == 5
    assert stats.failures["sink bad"] == 50


async def test_hung_side_sink_does_not_block_and_drops_are_counted() -> None:
    durable = MemorySink("store")
    hung = BlockedSink("alerts")
    stats = PipelineStats()
    src = ListSource([events(10, i * 10) for i in range(100)])
    pipe = Pipeline([src], [], [durable, hung], batch_size=10, side_queue_size=2, stats=stats,
                    write_max=0)
    run = asyncio.create_task(pipe.run())
    assert await eventually(lambda: durable.count == 1000)
    assert stats.dropped["alerts"] >= 1000 - 3 * 10
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_a_crashing_source_does_not_stop_the_others() -> None:
    class Crashing:
        name = "crashing"

        async def run(self, out: Emitter) -> None:
            await out.emit(events(3, 1000))
            raise OSError("disk gone")

    sink = MemorySink()
    stats = PipelineStats()
    await Pipeline([Crashing(), ListSource([events(7)])], [], [sink], stats=stats).run()
    assert sink.count == 10
    assert stats.failures["source crashing"] == 1


async def test_partial_batch_is_flushed_after_the_delay() -> None:
    sink = MemorySink()
    stop = asyncio.Event()

    class Trickle:
        name = "trickle"

        async def run(self, out: Emitter) -> None:
            await out.emit(events(3))
            await stop.wait()

    task = asyncio.create_task(Pipeline([Trickle()], [], [sink], batch_size=1000,
                                        batch_delay=0.05).run(stop))
    assert await eventually(lambda: sink.count == 3)  # long before 1000 events came
    stop.set()
    await task


class PreparingSink(MemorySink):
    """A durable sink that prepares batches ahead (as the store does)."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__("preparing")
        self.fail_on = fail_on
        self.prepared: list[int] = []
        self.written_parts: list[list[int]] = []
        self.plain_writes = 0
        self.release = asyncio.Event()
        self.release.set()

    def prepare(self, batch: list[Event]) -> int:
        if self.fail_on is not None and len(self.prepared) == self.fail_on:
            self.prepared.append(-1)
            raise ValueError("cannot prepare")
        self.prepared.append(len(batch))
        return len(batch)

    async def write_prepared(self, batch: list[Event], parts: list[int]) -> None:
        await self.release.wait()
        assert sum(parts) == len(batch)
        self.written_parts.append(parts)
        self.batches.append(batch)

    async def write(self, batch: list[Event]) -> None:
        self.plain_writes += 1
        await super().write(batch)


async def test_durable_sinks_get_batches_prepared_ahead_one_part_per_batch() -> None:
    sink = PreparingSink()
    sink.release.clear()  # busy: batches wait, and are written together
    src = ListSource([events(100, i * 100) for i in range(12)])
    pipe = Pipeline([src], [], [sink], batch_size=100, batch_delay=0.01, write_max=450)
    task = asyncio.create_task(pipe.run())
    assert await eventually(lambda: pipe._write_queue.full())
    sink.release.set()
    stats = await task
    assert stats.written == sink.count == 1200
    assert sink.plain_writes == 0
    assert sum(sink.prepared) == 1200
    assert any(len(parts) > 1 for parts in sink.written_parts)  # several batches, one write
    assert [n for parts in sink.written_parts for n in parts] == sink.prepared


async def test_a_batch_that_cannot_be_prepared_is_written_plainly() -> None:
    sink = PreparingSink(fail_on=1)
    src = ListSource([events(100, i * 100) for i in range(3)])
    stats = await Pipeline([src], [], [sink], batch_size=100, batch_delay=0.01,
                           write_max=0).run()
    assert sink.count == stats.written == 300
    assert sink.plain_writes == 1
    assert stats.failures["sink preparing prepare"] == 1


async def test_the_switch_interval_is_short_while_running_and_restored_after() -> None:
    seen: list[float] = []

    class Look:
        name = "look"

        async def run(self, out: Emitter) -> None:
            seen.append(sys.getswitchinterval())
            await out.emit(events(1))

    before = sys.getswitchinterval()
    await Pipeline([Look()], [], [MemorySink()]).run()
    assert seen == [min(before, SWITCH_INTERVAL)] and seen[0] < 0.005
    assert sys.getswitchinterval() == before


async def test_the_collector_runs_less_often_while_running_and_as_before_after() -> None:
    """What exists when a pipeline starts is frozen (never collected while it runs), and
    the youngest generation is collected after GC_THRESHOLD allocations, not 700."""
    seen: list[tuple[int, int]] = []

    class Look:
        name = "look"

        async def run(self, out: Emitter) -> None:
            seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
            await out.emit(events(1))

    before = gc.get_threshold()
    await Pipeline([Look()], [], [MemorySink()]).run()
    assert seen[0][0] == GC_THRESHOLD != before[0]
    assert seen[0][1] > 1000  # the modules, functions and classes loaded so far
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
