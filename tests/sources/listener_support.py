"""What the listener tests share (imported by them; not a conftest, so that other tests
of this folder are not touched): a listener on an ephemeral loopback port, on asyncio and
on uvloop, and a collector that stands in for the pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from portolan.event import Event
from portolan.sources.base import SourceContext
from portolan.sources.listener import ListenerOptions, ListenerSource

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


#: Runs a test on asyncio's event loop and on uvloop's (``loop`` is ``asyncio``/``uvloop``).
both_loops = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


def run(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end on the named event loop."""
    factory: LoopFactory = asyncio.new_event_loop
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            coro.close()
            pytest.skip("uvloop is not installed")
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


class Collector:
    """Receives what the source emits, as the pipeline would."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def connect(self, port: int, host: str = "127.0.0.1", local: str | None = None
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
        """A client connection (closed when the listener stops) and its own port."""
        reader, writer = await asyncio.open_connection(
            host, port, local_addr=(local, 0) if local else None)
        self.writers.append(writer)
        return reader, writer, writer.get_extra_info("sockname")[1]

    async def emit(self, events: list[Event], checkpoint: Any = None) -> None:
        self.events.extend(events)

    def of(self, action: str, **match: Any) -> list[Event]:
        return [e for e in self.events if e.action == action
                and all(getattr(e, k) == v for k, v in match.items())]

    async def until(self, check: Callable[[], Any], within: float = 10.0) -> Any:
        """Wait until ``check()`` is truthy (polling), or fail after ``within``."""
        deadline = time.monotonic() + within
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within} s; events: "
                                     f"{[(e.action, e.src_port) for e in self.events]}")
            await asyncio.sleep(0.01)

    async def session(self, src_port: int, action: str = "disconnect",
                      within: float = 10.0) -> Event:
        found: list[Event] = await self.until(
            lambda: self.of(action, src_port=src_port), within)
        return found[0]


@asynccontextmanager
async def listening(tmp_path: Path, *, bind: str = "127.0.0.1", sensor: str = "test",
                    **options: Any) -> AsyncIterator[tuple[ListenerSource, Collector, int]]:
    """A listener source running on an ephemeral port of ``bind``."""
    options.setdefault("ports", [0])
    opts = ListenerOptions(type="listener", bind=[bind], **options)
    source = ListenerSource(opts, SourceContext(sensor=sensor, data_dir=tmp_path))
    collector = Collector()
    task = asyncio.create_task(source.run(collector))
    try:
        yield source, collector, source.addresses()[0][2]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for writer in collector.writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in collector.writers),
                             return_exceptions=True)
