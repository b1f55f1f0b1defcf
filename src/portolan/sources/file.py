"""``file``: follow log files (``tail -F`` that remembers where it stopped).

Each path (or glob) is followed by polling: new lines are read as they are written, a
partial last line waits for its newline. A file is known by its *fingerprint* (its first
line, see :mod:`portolan.sources.lines`), so it keeps its identity when renamed, copied or
compressed, and the ids of its events do not depend on its name.

Rotation:

- **by rename** (``auth.log`` -> ``auth.log.1``, new ``auth.log``): the renamed file is
  read to its end through the open handle, then the new file from its start;
- **by copytruncate**: the file shrinks below the position (or its first line changes):
  it is read again from its start;
- a file that **disappears** is read to its end and waited for; when it comes back it is
  read from its start.

Positions (fingerprint -> offset) are saved in ``state/file/`` of the data directory, from
the checkpoint callback only, i.e. once the events before them are stored. After a crash
(even ``kill -9``) reading resumes at the last saved position: lines after it are read
again, and since event ids come from (fingerprint, offset), storing them again is a no-op.
If the followed file was rotated while Portolan was not running, the rest of the old file
is found beside it (``auth.log.1``, ``auth.log-20261123``, ``.gz`` included) by its
fingerprint and read first.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from portolan.event import Event
from portolan.formats.base import Parser
from portolan.sources.base import SOURCES, Emitter, SourceContext, SourceOptions, SourceSpec
from portolan.sources.lines import (
    LINE_MAX,
    LineFeeder,
    LineStats,
    decode_line,
    fingerprint,
    first_line,
    open_binary,
)

log = logging.getLogger(__name__)

#: Positions remembered per source (most recently used first kept).
KEEP_POSITIONS = 512
#: Lines handed to the pipeline at a time.
BATCH_LINES = 2000
#: How much of a file before a saved position is shown to the parser again at start-up.
WARM_UP_BYTES = 1 << 20


class FileOptions(SourceOptions, kw_only=True, forbid_unknown_fields=True):
    """Follow log files."""

    paths: list[str] = []
    """Files or globs to follow (``/var/log/auth.log``, ``/var/log/nginx/*.log``)."""
    format: str = "sshd"
    """Format of the lines: ``sshd``, ``weblog``, ``jsonl``... or a ``[formats.NAME]``."""
    format_options: dict[str, Any] = {}
    """Options of the format (``timezone`` for syslog times, ``log_format`` for weblog)."""
    start_at: Literal["end", "beginning"] = "end"
    """Where to start in a file never seen before that is there at start-up: ``end`` (only
    new lines) or ``beginning`` (the whole file). Files that appear later, and files after a
    rotation, are always read from their beginning."""
    poll_interval: float = 0.5
    """Seconds between two looks at the files when there is nothing new."""
    read_compressed: bool = False
    """Also read ``.gz`` files matched by a glob (once each; rotated logs)."""
    rotate_grace: float = 5.0
    """Seconds a file renamed away by rotation is still read (its writer may not have
    reopened its log yet) once it has nothing new."""


@dataclass
class _Open:
    """A file being read."""

    path: str
    f: BinaryIO
    ino: tuple[int, int] | None
    fp: str | None
    offset: int
    feeder: LineFeeder | None
    compressed: bool = False
    quiet_since: float | None = None
    """For a file rotated away: since when reading it has given nothing."""


class Positions:
    """Saved positions of one source: fingerprint -> offset, and which fingerprint each
    followed path had. One small JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets: OrderedDict[str, int] = OrderedDict()
        self.paths: dict[str, str] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.offsets.update({str(k): int(v) for k, v in data.get("offsets", {}).items()})
            self.paths.update({str(k): str(v) for k, v in data.get("paths", {}).items()})
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.warning("%s: unreadable positions (%s); files are read again", path, exc)

    def get(self, fp: str) -> int | None:
        return self.offsets.get(fp)

    def set(self, path: str, fp: str, offset: int) -> None:
        self.offsets[fp] = offset
        self.offsets.move_to_end(fp)
        while len(self.offsets) > KEEP_POSITIONS:
            self.offsets.popitem(last=False)
        self.paths[path] = fp

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"offsets": self.offsets, "paths": self.paths}),
                       encoding="utf-8")
        os.replace(tmp, self.path)


class FileSource:
    """See the module docstring."""

    def __init__(self, options: FileOptions, ctx: SourceContext) -> None:
        if not options.paths:
            raise ValueError("file source: 'paths' is empty; name at least one file or glob")
        self.options = options
        self.ctx = ctx
        self.name = options.name or ",".join(options.paths)
        key = hashlib.blake2b(self.name.encode(), digest_size=8).hexdigest()
        self.positions = Positions(ctx.state_dir("file") / f"{key}.json")
        self.stats = LineStats()
        self.open: dict[str, _Open] = {}
        self.draining: list[_Open] = []
        self.skipped: dict[str, int] = {}
        """Unreadable files (path -> modification time when they failed)."""
        self.parsers: dict[str, Parser] = {}
        """One parser per followed path, kept across its rotations."""
        self.first_look = True

    # -- the loop ----------------------------------------------------------------------

    async def run(self, out: Emitter) -> None:
        try:
            await self._follow(out)
        finally:
            for current in [*self.open.values(), *self.draining]:
                current.f.close()
            self.open.clear()
            self.draining.clear()

    async def _follow(self, out: Emitter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            busy = False
            for path in self._paths():
                try:
                    while await self._step(path, out):
                        busy = True
                except (OSError, EOFError) as exc:  # a corrupt .gz, an I/O error
                    self._broken(path, exc)
            self.first_look = False
            for old in list(self.draining):
                if await self._read(old, out, final=False):
                    busy = True
                elif old.quiet_since is None:
                    old.quiet_since = loop.time()
                elif loop.time() - old.quiet_since >= self.options.rotate_grace:
                    await self._read(old, out, final=True)
                    old.f.close()
                    self.draining.remove(old)
                    if old.path not in self.open and not any(
                            d.path == old.path for d in self.draining):
                        self.parsers.pop(old.path, None)  # a glob's file that is gone
            if not busy:
                await asyncio.sleep(self.options.poll_interval)

    def _broken(self, path: str, exc: BaseException) -> None:
        """A file that cannot be read: counted, logged once, left alone until it changes."""
        self.ctx.counters[f"file: unreadable: {type(exc).__name__}"] += 1
        current = self.open.pop(path, None)
        if current is not None:
            current.f.close()
        try:
            self.skipped[path] = os.stat(path).st_mtime_ns
        except OSError:
            self.skipped.pop(path, None)
        log.warning("%s: cannot be read (%s); skipped until it changes", path, exc)

    def _paths(self) -> list[str]:
        found: list[str] = []
        for pattern in self.options.paths:
            expanded = os.path.expanduser(pattern)
            if glob.has_magic(expanded):
                for p in sorted(glob.glob(expanded)):
                    if p.endswith(".gz") and not self.options.read_compressed:
                        continue
                    found.append(p)
            else:
                found.append(expanded)
        return found

    async def _step(self, path: str, out: Emitter) -> bool:
        """One look at one path; True if it read something (look again at once)."""
        current = self.open.get(path)
        try:
            st = os.stat(path)
            ino = (st.st_dev, st.st_ino)
        except OSError:
            st, ino = None, None
        if path in self.skipped:
            if st is not None and st.st_mtime_ns == self.skipped[path]:
                return False
            del self.skipped[path]
        if current is None:
            if st is None:
                return False
            return await self._open(path, ino, st.st_size, out)
        if ino != current.ino:
            # Renamed away or deleted: the writer may still add to it until it reopens its
            # log, so it is read beside the new file until it has been quiet for a while.
            del self.open[path]
            self.draining.append(current)
            return st is not None
        assert st is not None
        if not current.compressed and self._truncated(current, st.st_size):
            log.info("%s: truncated (copytruncate); reading it again from the start", path)
            current.offset = 0
            current.fp = None
            current.feeder = None
        return await self._read(current, out, final=current.compressed)

    def _truncated(self, current: _Open, size: int) -> bool:
        if size < current.offset:
            return True
        if current.fp is None:
            return False
        first = first_line(current.f, final=False)
        return first is None or fingerprint(first) != current.fp

    async def _open(self, path: str, ino: Any, size: int, out: Emitter) -> bool:
        try:
            f = open_binary(Path(path))
        except OSError as exc:
            self.ctx.counters[f"file: cannot open: {exc.strerror}"] += 1
            return False
        compressed = _is_gzip(f)
        current = _Open(path, f, ino, None, 0, None, compressed)
        first = first_line(f, final=compressed)
        if first is None:  # empty, or first line still being written: decide later
            self.open[path] = current
            return False
        fp = fingerprint(first)
        saved = self.positions.get(fp)
        previous = self.positions.paths.get(path)
        if saved is not None:
            current.offset = saved
        elif self.first_look and previous is not None and previous != fp and not compressed:
            await self._catch_up_rotated(path, previous, out)
        elif self.first_look and self.options.start_at == "end" and not compressed:
            current.offset = _last_line_end(f, size)
        self._start(current, fp)
        if saved:
            self._warm_up(current)
        self.open[path] = current
        return True

    def _warm_up(self, current: _Open) -> None:
        """Before going on at a saved position, let the parser see the lines just before
        it again (their events are dropped: they are stored already), so that what spans
        lines -- an SSH session opened before the restart and closed after it -- is still
        tied together."""
        assert current.feeder is not None
        parser = current.feeder.parser
        start = max(0, current.offset - WARM_UP_BYTES)
        f = current.f
        f.seek(start)
        if start > 0:
            start += len(f.readline())  # from the next whole line
        while start < current.offset:
            raw = f.readline()
            if not raw:
                break
            start += len(raw)
            try:
                parser.parse(decode_line(raw[:LINE_MAX]))
            except Exception:  # a parser failing on old input must not stop the new
                log.debug("warm-up line failed to parse", exc_info=True)

    def _start(self, current: _Open, fp: str) -> None:
        current.fp = fp
        parser = self.parsers.get(current.path)
        if parser is None:
            parser = self.ctx.parser(self.options.format, self.name,
                                     dict(self.options.format_options))
            self.parsers[current.path] = parser
        current.feeder = LineFeeder(parser, self.ctx.sensor, fp, self.stats)

    async def _catch_up_rotated(self, path: str, fp: str, out: Emitter) -> None:
        """The file followed as ``path`` was rotated while we were away: find it beside
        the new one by its fingerprint and read the rest of it."""
        directory, base = os.path.split(path)
        for candidate in sorted(glob.glob(os.path.join(glob.escape(directory or "."),
                                                       glob.escape(base) + "?*"))):
            try:
                f = open_binary(Path(candidate))
            except OSError:
                continue
            first = first_line(f)
            if first is None or fingerprint(first) != fp:
                f.close()
                continue
            log.info("%s was rotated while stopped; reading the rest of %s", path, candidate)
            old = _Open(candidate, f, None, None, self.positions.get(fp) or 0, None, True)
            self._start(old, fp)
            self.parsers.pop(candidate, None)
            await self._read(old, out, final=True)
            f.close()
            return

    async def _read(self, current: _Open, out: Emitter, *, final: bool) -> bool:
        """Read the complete lines after the position (and a partial last one when the file
        is done); hand them over in batches, each with its checkpoint."""
        if current.feeder is None:
            first = first_line(current.f, final=final)
            if first is None:
                return False
            self._start(current, fingerprint(first))
        feeder = current.feeder
        assert feeder is not None and current.fp is not None
        f = current.f
        f.seek(current.offset)
        offset = current.offset
        events: list[Event] = []
        lines = 0
        while True:
            raw = f.readline()
            if not raw:
                break
            if not raw.endswith(b"\n") and not final:
                break  # a partial last line: wait for the rest
            events.extend(feeder.feed(offset, raw))
            offset += len(raw)
            lines += 1
            if lines >= BATCH_LINES:
                break
        if offset == current.offset:
            return False
        current.offset = offset
        current.quiet_since = None
        await out.emit(events, self._checkpoint(current.path, current.fp, offset))
        return True

    def _checkpoint(self, path: str, fp: str, offset: int) -> Callable[[], None]:
        def save() -> None:
            self.positions.set(path, fp, offset)
            self.positions.save()
        return save


def _is_gzip(f: BinaryIO) -> bool:
    return type(f).__name__ == "GzipFile"


def _last_line_end(f: BinaryIO, size: int) -> int:
    """The end of the last complete line (where "start at the end" starts)."""
    block = min(size, 65536)
    f.seek(size - block)
    tail = f.read(block)
    cut = tail.rfind(b"\n")
    return size - block + cut + 1 if cut >= 0 else size - block


def _make(options: FileOptions, ctx: SourceContext) -> FileSource:
    return FileSource(options, ctx)


#: Where systems keep sshd's log (Debian/Ubuntu, then Red Hat/Fedora).
SSHD_LOGS = ("/var/log/auth.log", "/var/log/secure")


def sshd_log_defaults(candidates: tuple[str, ...] = SSHD_LOGS) -> list[SourceOptions]:
    """sshd's log, where this system keeps it and this user can read it (the first of
    ``candidates``), followed from its end; nothing when none is readable."""
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.R_OK):
            return [FileOptions(type="file", name=os.path.basename(candidate),
                                paths=[candidate], format="sshd")]
    return []


def _defaults(ctx: SourceContext) -> list[SourceOptions]:
    return sshd_log_defaults()


SOURCES.add("file", SourceSpec(
    "file", "Follow log files (rotation-safe, remembers its position)", FileOptions, _make,
    defaults=_defaults))
