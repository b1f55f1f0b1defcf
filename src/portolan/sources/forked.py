"""Files read once (``portolan ingest``), parsed in a second process.

Parsing is pure Python: in one process it shares one core (and the GIL) with enrichment
and the store's preparation of rows. Here a child process, forked before any thread
starts, reads and parses the files, one after the other, and hands the events over a pipe
in batches, as MessagePack; the parent decodes them and sends them down its pipeline.
Decoding costs the parent about a third of what parsing would. The child parses exactly
as :func:`~portolan.sources.lines.read_events` does in one process (it runs that
function), so events and their ids are the same.

Back-pressure: the child blocks on the pipe until the parent takes the next batch, and
the parent takes it when its pipeline has room; at most a batch or two are in flight.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import fcntl
import logging
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from portolan.event import Event
from portolan.formats.base import Parser
from portolan.pipeline import fewer_collections
from portolan.sources.base import Emitter
from portolan.sources.lines import LineStats, read_events
from portolan.text import printable

log = logging.getLogger(__name__)

#: The figures of :class:`LineStats` (all but the unmatched lines themselves).
_NUMBERS = tuple(f.name for f in dataclasses.fields(LineStats) if f.name != "unmatched_lines")


class _Sent(Event, omit_defaults=True):
    """An event as the child sends it: the fields still at their defaults (most of them,
    before enrichment) are left out, and the parent's decoder puts them back. Half the
    bytes through the pipe, and less for the parent to decode. (The child's events are
    given this class, which adds nothing to :class:`Event`, just before they are sent.)"""


class _Batch(msgspec.Struct, tag="b", array_like=True):
    events: list[Event]
    progress: int
    """Bytes of input read since the last message."""
    numbers: list[int]
    """The child's :class:`LineStats` figures so far (:data:`_NUMBERS`)."""


class _End(msgspec.Struct, tag="e", array_like=True):
    progress: int
    numbers: list[int]
    unmatched_lines: dict[str, int]
    counters: dict[str, int]
    """What the parsers counted (skipped input...), in the child."""
    error: str | None = None
    """The child's traceback when parsing failed."""


_Message = _Batch | _End


def can_fork() -> bool:
    """Whether parsing may go to a second process here: the system forks, there is a
    second core to run it, and this process has no other thread yet (a thread holding a
    lock at the fork would leave the child stuck on it)."""
    return ("fork" in multiprocessing.get_all_start_methods()
            and (os.cpu_count() or 1) > 1 and threading.active_count() == 1)


class ForkedFilesSource:
    """Files read once from start to end, each with its parser, parsed in a child process
    (see the module docstring). :meth:`start` forks; call it before the process starts
    threads (the store's, the pipeline's)."""

    name = "files"

    def __init__(
        self,
        files: list[tuple[Path, Parser]],
        sensor: str,
        stats: LineStats,
        counters: collections.Counter[str],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.files = files
        self.sensor = sensor
        self.stats = stats
        self.counters = counters
        self.progress = progress
        self._base = LineStats()
        self._process: Any = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id, once started."""
        return None if self._process is None else int(self._process.pid)

    def start(self) -> None:
        """Fork the child; it starts parsing at once."""
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        _widen(send)
        process = context.Process(target=_child, name="portolan-parse", daemon=True,
                                  args=(send, self.files, self.sensor, self.counters))
        process.start()
        send.close()
        self._process, self._conn = process, receive
        self._base.add(self.stats)

    async def run(self, out: Emitter) -> None:
        if self._process is None:
            self.start()
        assert self._conn is not None
        loop = asyncio.get_running_loop()
        decode = msgspec.msgpack.Decoder(_Message).decode
        try:
            while True:
                message = decode(await loop.run_in_executor(None, self._receive))
                self._note(message.progress, message.numbers)
                if isinstance(message, _Batch):
                    await out.emit(message.events)
                    continue
                self.stats.unmatched_lines.update(message.unmatched_lines)
                self.counters.update(message.counters)
                if message.error is not None:  # (its text may quote a line of the file)
                    shown = "\n".join(map(printable, message.error.splitlines()))
                    raise RuntimeError(f"parsing failed in the child process:\n{shown}")
                return
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child (if it still runs) and wait for it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join()

    def _receive(self) -> bytes:
        assert self._conn is not None
        try:
            return self._conn.recv_bytes()
        except EOFError:
            self._process.join()
            raise RuntimeError(f"the parsing process stopped (exit code "
                               f"{self._process.exitcode}) before reading every file"
                               ) from None

    def _note(self, progress: int, numbers: list[int]) -> None:
        for name, value in zip(_NUMBERS, numbers, strict=True):
            setattr(self.stats, name, getattr(self._base, name) + value)
        if progress and self.progress is not None:
            self.progress(progress)


#: Bytes a pipe holds (Linux; the default, 64 KiB, is a fifth of a batch): the child then
#: writes a batch in one go while the parent is busy, instead of waiting for it to read.
PIPE_BYTES = 1 << 20
#: Lines the child parses into one message: fewer, larger messages cost the parent less
#: (each is a wait in a thread and a wake-up of the event loop).
CHUNK = 8000


def _widen(conn: Connection) -> None:
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:  # over /proc/sys/fs/pipe-max-size: the default size will do
            pass


def _child(conn: Connection, files: list[tuple[Path, Parser]], sensor: str,
           counters: collections.Counter[str]) -> None:
    """The child: every file through :func:`read_events`, batches to ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    encode = msgspec.msgpack.Encoder().encode
    stats = LineStats()
    before = collections.Counter(counters)
    read = 0

    def progress(n: int) -> None:
        nonlocal read
        read += n

    def numbers() -> list[int]:
        return [getattr(stats, name) for name in _NUMBERS]

    error = None
    try:
        with fewer_collections():
            for path, parser in files:
                for batch in read_events(path, parser, sensor, stats, progress=progress,
                                         chunk=CHUNK):
                    for event in batch:
                        if type(event) is Event:  # (a plugin's subclass goes as it is)
                            event.__class__ = _Sent
                    conn.send_bytes(encode(_Batch(batch, read, numbers())))
                    read = 0
    except BrokenPipeError:  # the parent is gone or stopped reading
        return
    except Exception:
        error = traceback.format_exc()
    counted = collections.Counter(counters)
    counted.subtract(before)
    try:
        conn.send_bytes(encode(_End(read, numbers(), dict(stats.unmatched_lines),
                                    {k: v for k, v in counted.items() if v}, error)))
    except BrokenPipeError:
        pass
    conn.close()
