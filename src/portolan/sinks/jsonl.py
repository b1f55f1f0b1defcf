"""JSON lines: one event per line, to standard output or a file (``--json``), in
Portolan's schema or another shape (:mod:`portolan.sinks.shapes`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from portolan.event import Event, encode_lines

Shape = Callable[[Event], dict[str, Any] | None]
"""An event as another tool's record (None: nothing to write for this event)."""

_json = msgspec.json.Encoder()


class JsonLinesSink:
    """Writes each batch as JSON lines and flushes, so a reader sees events as they come."""

    durable = True

    def __init__(self, out: BinaryIO | None = None, *, path: Path | None = None,
                 name: str = "jsonl", shape: Shape | None = None) -> None:
        self.name = name
        self.shape = shape
        self.closed_by_reader = False
        self._own = path is not None
        if path is not None:
            self.out: BinaryIO = path.open("ab")
        else:
            self.out = out if out is not None else sys.stdout.buffer

    def render(self, events: list[Event]) -> bytes:
        """The batch as JSON lines, in the sink's shape."""
        shape = self.shape
        if shape is None:
            return encode_lines(events)
        docs = [doc for doc in map(shape, events) if doc is not None]
        return b"".join(_json.encode(doc) + b"\n" for doc in docs)

    async def write(self, events: list[Event]) -> None:
        data = self.render(events)
        if data:
            await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        if self.closed_by_reader:
            return
        try:
            self.out.write(data)
            self.out.flush()
        except BrokenPipeError:
            # the reader went away (`portolan parse ... | head`): drop the rest quietly
            self.closed_by_reader = True

    async def close(self) -> None:
        if self._own:
            self.out.close()
