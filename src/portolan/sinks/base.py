"""What a sink is.

A *durable* sink (the store, the forwarder's disk spool) is awaited for every batch, and
sources' checkpoints are only called once every durable sink has the batch: back-pressure
reaches the sources instead of memory growing. Any other sink (metrics, alerts, a JSON
lines file) gets the batch through its own bounded queue; when it cannot keep up, batches
for it are dropped and counted, and the rest of the pipeline does not notice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from portolan.event import Event
from portolan.plugins import Registry

if TYPE_CHECKING:
    from portolan.runtime import Runtime


class Sink(Protocol):
    """Receives batches of events."""

    name: str
    durable: bool

    async def write(self, events: list[Event]) -> None:
        """Take one batch. A durable sink returns only once the batch is safe."""
        ...

    async def close(self) -> None:
        """Flush and release; called once, after the last batch."""
        ...


# A sink may also have ``start()``, called when the pipeline starts (the forwarder sends
# what an earlier run left in its spool).
#
# A durable sink may also have ``prepare(events) -> object`` and ``async
# write_prepared(events, parts)``: the pipeline then calls ``prepare`` on each batch as soon
# as it is enriched, while the previous batch is still being written, and hands the
# results (one per batch, several when batches are written together) to
# ``write_prepared`` instead of calling ``write``. ``prepare`` runs in the event loop's
# thread and must not touch anything that ``write_prepared`` may be changing.


@dataclass(frozen=True)
class SinkSpec:
    """A kind of sink as registered: built from the config, or absent (``None``)."""

    name: str
    summary: str
    make: Callable[[Runtime], Sink | None]
    live: bool = False
    """Feeds only what a server in this process shows live (the stream, ``/metrics``):
    left out of one-shot commands such as ``portolan ingest``, where no server runs."""


#: Every known kind of sink.
SINKS: Registry[SinkSpec] = Registry("sink")
