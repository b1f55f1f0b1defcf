"""JSON lines: one event per line, to standard output or a file (``--json``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import BinaryIO

from portolan.event import Event, encode_lines


class JsonLinesSink:
    """Writes each batch as JSON lines and flushes, so a reader sees events as they come."""

    durable = True

    def __init__(self, out: BinaryIO | None = None, *, path: Path | None = None,
                 name: str = "jsonl") -> None:
        self.name = name
        self.closed_by_reader = False
        self._own = path is not None
        if path is not None:
            self.out: BinaryIO = path.open("ab")
        else:
            self.out = out if out is not None else sys.stdout.buffer

    async def write(self, events: list[Event]) -> None:
        data = encode_lines(events)
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
