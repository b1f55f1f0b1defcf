"""Lines from files, with the positions that give events their ids.

An event read from a file gets the id ``make_id(sensor, fingerprint, offset, index)``:
``fingerprint`` identifies the file by its first line (so a file renamed by rotation, a
copy, or its ``.gz`` keeps its identity), ``offset`` is where the line starts in the
uncompressed text, ``index`` counts the events of that line. Reading the same line again,
from whatever path, gives the same ids.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from portolan.event import Event, make_id
from portolan.formats.base import CountingParser, Parser
from portolan.sources.base import Emitter, SourceContext

#: How much of the first line identifies a file.
FINGERPRINT_BYTES = 4096
#: Longest line handed to a parser; the rest of a longer line is dropped (and counted).
LINE_MAX = 65536
#: How many distinct unmatched lines ``portolan parse`` remembers.
UNMATCHED_KEEP = 10000


def fingerprint(first_line: bytes) -> str:
    """Identity of a file, from its first line (at most :data:`FINGERPRINT_BYTES`)."""
    return hashlib.blake2b(first_line[:FINGERPRINT_BYTES], digest_size=8).hexdigest()


def first_line(f: BinaryIO, final: bool = True) -> bytes | None:
    """The bytes that identify a file (its first line, newline included, at most
    :data:`FINGERPRINT_BYTES`), read without moving ``f``. ``None`` while that line is not
    complete yet in a file still being written (``final=False``)."""
    here = f.tell()
    f.seek(0)
    first = f.readline(FINGERPRINT_BYTES)
    f.seek(here)
    if not first:
        return None
    if not final and not first.endswith(b"\n") and len(first) < FINGERPRINT_BYTES:
        return None
    return first


def open_binary(path: Path) -> BinaryIO:
    """Open a file for reading, transparently decompressing gzip (``auth.log.2.gz``)."""
    f = path.open("rb")
    if f.read(2) == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    f.seek(0)
    return f


def decode_line(raw: bytes) -> str:
    """Bytes of one line as text: invalid UTF-8 replaced, line ending removed."""
    return raw.decode("utf-8", "replace").rstrip("\r\n")


@dataclass
class LineStats:
    """What happened to the lines of one input."""

    lines: int = 0
    matched: int = 0
    ignored: int = 0
    unmatched: int = 0
    events: int = 0
    too_long: int = 0
    unmatched_lines: collections.Counter[str] = field(default_factory=collections.Counter)

    def note_unmatched(self, line: str) -> None:
        self.unmatched += 1
        if line in self.unmatched_lines or len(self.unmatched_lines) < UNMATCHED_KEEP:
            self.unmatched_lines[line[:500]] += 1

    def tally(self, lines: int, matched: int, ignored: int, events: int) -> None:
        """Add what a reader counted in its own variables (a loop over every line)."""
        self.lines += lines
        self.matched += matched
        self.ignored += ignored
        self.events += events

    def add(self, other: LineStats) -> None:
        self.lines += other.lines
        self.matched += other.matched
        self.ignored += other.ignored
        self.unmatched += other.unmatched
        self.events += other.events
        self.too_long += other.too_long
        self.unmatched_lines.update(other.unmatched_lines)


class LineFeeder:
    """Runs lines of one file through a parser and gives the events their ids (unless
    ``ids`` is false: for counting events, not keeping them)."""

    def __init__(self, parser: Parser, sensor: str, file_key: str, stats: LineStats,
                 *, ids: bool = True) -> None:
        self.parser = parser
        self.sensor = sensor
        self.file_key = file_key
        self.stats = stats
        self.ids = ids
        # make_id(sensor, file_key, offset, index), with the hash of the common prefix
        # computed once: the same ids, at a fraction of the cost per line.
        self._id_base = hashlib.blake2b(
            f"{sensor}\x1f{file_key}\x1f".encode("utf-8", "surrogatepass"), digest_size=16)

    def feed(self, offset: int | str, raw: bytes) -> list[Event]:
        """Events of one line; ``offset`` pins it down in its input (a byte offset, or a
        journal cursor)."""
        return self.feed_many(((offset, raw),))

    def feed_many(self, lines: Iterable[tuple[int | str, bytes]]) -> list[Event]:
        """Events of several lines, each given with its offset (as in :meth:`feed`)."""
        stats = self.stats
        parse = self.parser.parse
        base = self._id_base if self.ids else None
        out: list[Event] = []
        # Counted in locals, added to the stats once: the loop runs for every line.
        read = matched = ignored = found = 0
        try:
            for offset, raw in lines:
                read += 1
                if len(raw) > LINE_MAX:
                    stats.too_long += 1
                    raw = raw[:LINE_MAX]
                line = raw.decode("utf-8", "replace").rstrip("\r\n")  # decode_line, inlined
                events = parse(line)
                if events is None:
                    if line.strip():
                        stats.note_unmatched(line)
                    else:
                        ignored += 1
                    continue
                if not events:
                    ignored += 1
                    continue
                matched += 1
                found += len(events)
                out += events
                if base is None:
                    continue
                if len(events) == 1:  # the common case, without the loop
                    event = events[0]
                    if not event.id:
                        h = base.copy()
                        h.update(f"{offset}\x1f0".encode("utf-8", "surrogatepass"))
                        event.id = h.hexdigest()
                    continue
                for index, event in enumerate(events):
                    if not event.id:
                        h = base.copy()
                        h.update(f"{offset}\x1f{index}".encode("utf-8", "surrogatepass"))
                        event.id = h.hexdigest()
        finally:
            stats.tally(read, matched, ignored, found)
        return out

    def finish(self) -> list[Event]:
        events = self.parser.finish()
        for index, event in enumerate(events):
            if not event.id and self.ids:
                event.id = make_id(self.sensor, self.file_key, "end", index)
        self.stats.events += len(events)
        return events


#: How much of a file is read and parsed at a time (whole lines, about this many bytes).
READ_BYTES = 1 << 16


def read_events(
    path: Path,
    parser: Parser,
    sensor: str,
    stats: LineStats,
    *,
    chunk: int = 1000,
    progress: Callable[[int], None] | None = None,
    ids: bool = True,
) -> Iterator[list[Event]]:
    """Every event of a whole file, in batches of about ``chunk`` (or more); ``ids=False``
    leaves their ids empty (see :class:`LineFeeder`)."""
    with open_binary(path) as f:
        feeder = LineFeeder(parser, sensor, fingerprint(first_line(f) or b""), stats, ids=ids)
        batch: list[Event] = []
        offset = done = 0
        while raws := f.readlines(READ_BYTES):
            # (offset, line) pairs: the offsets are the running sum of the lengths (one more
            # than there are lines, hence strict=False)
            starts = itertools.accumulate(map(len, raws), initial=offset)
            batch += feeder.feed_many(zip(starts, raws, strict=False))
            offset += sum(map(len, raws))
            if len(batch) >= chunk:
                yield batch
                batch = []
                if progress is not None:
                    progress(offset - done)
                    done = offset
        batch.extend(feeder.finish())
        if batch:
            yield batch
        if progress is not None:
            progress(max(0, path.stat().st_size - done))


def count_lines(path: Path, parser: CountingParser, stats: LineStats) -> None:
    """The figures of :func:`read_events` (without ids) for a parser that counts: the
    same lines, cut and decoded as :class:`LineFeeder` does (:func:`decode_line`), and
    the same counts, without events. The lines of a chunk are decoded together: UTF-8
    never continues a character across a newline, so the text is that of each line
    decoded alone. (A change to how lines are cut or decoded goes in both places; a test
    holds them equal.)"""
    count = parser.count_events
    read = matched = ignored = found = 0
    try:
        with open_binary(path) as f:
            while raws := f.readlines(READ_BYTES):
                read += len(raws)
                if max(map(len, raws)) > LINE_MAX:  # cut as the line feeder cuts them
                    stats.too_long += sum(len(raw) > LINE_MAX for raw in raws)
                    lines = [raw[:LINE_MAX].decode("utf-8", "replace").rstrip("\r\n")
                             for raw in raws]
                else:
                    text = b"".join(raws).decode("utf-8", "replace")
                    lines = text.split("\n")
                    if not lines[-1]:  # after the last newline
                        lines.pop()
                    if "\r" in text:
                        lines = [line.rstrip("\r") for line in lines]
                for line in lines:
                    n = count(line)
                    if n:
                        matched += 1
                        found += n
                    elif n is None and line.strip():
                        stats.note_unmatched(line)
                    else:
                        ignored += 1
            found += len(parser.finish())
    finally:
        stats.tally(read, matched, ignored, found)


class FileOnceSource:
    """One file read once from start to end (``portolan ingest``), then done."""

    def __init__(
        self,
        path: Path,
        parser: Parser,
        ctx: SourceContext,
        stats: LineStats,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.name = path.name
        self.path = path
        self.parser = parser
        self.ctx = ctx
        self.stats = stats
        self.progress = progress

    async def run(self, out: Emitter) -> None:
        for batch in read_events(
            self.path, self.parser, self.ctx.sensor, self.stats, progress=self.progress
        ):
            await out.emit(batch)
