"""The file source on real files: growth, partial lines, rotation of every kind, restarts."""

# The tests write, rename and truncate the files the source follows, on purpose from the
# event loop the source runs in (small, local, instant operations).
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from portolan.event import Event
from portolan.sources.base import Checkpoint, SourceContext
from portolan.sources.file import FileOptions, FileSource

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def line(n: int) -> bytes:
    return f"Nov 23 10:00:00 h sshd[{n}]: Invalid user u{n} from 192.0.2.1 port {n}\n".encode()


def lines(a: int, b: int) -> bytes:
    return b"".join(line(n) for n in range(a, b))


class Collector:
    """Stands where the pipeline is: keeps the events, calls checkpoints at once (as if
    every batch were stored the moment it arrived)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, events: list[Event], checkpoint: Checkpoint | None = None) -> None:
        self.events.extend(events)
        if checkpoint is not None:
            checkpoint()

    def users(self) -> list[str]:
        return [e.user or "" for e in self.events]


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def source(tmp_path: Path, *paths: Path, **kw: object) -> FileSource:
    options = FileOptions(type="file", name="t", paths=[str(p) for p in paths],
                          poll_interval=0.02, rotate_grace=0.3, **kw)  # type: ignore[arg-type]
    ctx = SourceContext(sensor="s", data_dir=tmp_path / "data", now=lambda: NOW)
    return FileSource(options, ctx)


class Running:
    def __init__(self, src: FileSource) -> None:
        self.src = src
        self.out = Collector()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.src.run(self.out))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "auth.log"


def want(a: int, b: int) -> list[str]:
    return [f"u{n}" for n in range(a, b)]


async def test_reads_growth_and_waits_for_a_partial_line(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 3))
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 3)
        with log.open("ab") as f:
            f.write(line(3)[:20])
            f.flush()
            await asyncio.sleep(0.2)
            assert r.out.users() == want(0, 3)  # the partial line waits
            f.write(line(3)[20:] + lines(4, 6))
        await until(lambda: len(r.out.events) == 6)
    assert r.out.users() == want(0, 6)


async def test_start_at_end_skips_what_is_there(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 3) + line(3)[:10])  # ends in a partial line
    async with Running(source(tmp_path, log)) as r:
        await asyncio.sleep(0.2)
        with log.open("ab") as f:
            f.write(line(3)[10:] + lines(4, 5))
        await until(lambda: len(r.out.events) >= 2)
        await asyncio.sleep(0.1)
    # The line that was being written at start-up is new: it is read whole once complete.
    assert r.out.users() == want(3, 5)


async def test_rotation_by_rename(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 2))
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 2)
        writer = log.open("ab")
        log.rename(tmp_path / "auth.log.1")
        log.write_bytes(lines(100, 103))
        # the writer has not reopened its log yet: it still appends to the renamed file
        writer.write(lines(2, 4))
        writer.close()
        await until(lambda: len(r.out.events) == 7)
        with log.open("ab") as f:
            f.write(lines(103, 104))
        await until(lambda: len(r.out.events) == 8)
        await asyncio.sleep(0.5)  # the old file is closed after its grace; nothing more
    assert sorted(r.out.users()) == sorted(want(0, 4) + want(100, 104))
    assert len({e.id for e in r.out.events}) == 8


async def test_copytruncate(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 5))
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 5)
        shutil.copy(log, tmp_path / "auth.log.1")
        with log.open("r+b") as f:
            f.truncate(0)
        await asyncio.sleep(0.1)
        with log.open("ab") as f:
            f.write(lines(10, 12))
        await until(lambda: len(r.out.events) == 7)
    assert r.out.users() == want(0, 5) + want(10, 12)


async def test_copytruncate_that_grew_back_past_the_position(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 2))
    src = source(tmp_path, log, start_at="beginning")
    async with Running(src) as r:
        await until(lambda: len(r.out.events) == 2)
        # truncated and refilled beyond the old offset between two looks: the first line
        # changed, so it is a new file
        log.write_bytes(lines(50, 60))
        await until(lambda: len(r.out.events) == 12)
    assert r.out.users() == want(0, 2) + want(50, 60)


async def test_file_that_vanishes_and_comes_back(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 2))
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 2)
        log.unlink()
        await asyncio.sleep(0.2)
        log.write_bytes(lines(20, 23))
        await until(lambda: len(r.out.events) == 5)
    assert r.out.users() == want(0, 2) + want(20, 23)


async def test_bytes_that_are_not_utf8(tmp_path: Path, log: Path) -> None:
    log.write_bytes(b"Nov 23 10:00:00 h sshd[1]: Invalid user \xff\xfe\x00bad from 192.0.2.1 "
                    b"port 1\n\xc3\x28 garbage \x80\n" + line(2))
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 2)
    assert r.out.events[0].user == "\ufffd\ufffd\x00bad"
    assert r.src.stats.unmatched == 1


async def test_restart_goes_on_where_it_stopped(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 3))
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 3)
    first_ids = {e.id for e in r.out.events}
    with log.open("ab") as f:
        f.write(lines(3, 5))
    async with Running(source(tmp_path, log, start_at="beginning")) as r2:
        await until(lambda: len(r2.out.events) == 2)
        await asyncio.sleep(0.1)
    assert r2.out.users() == want(3, 5)
    assert not first_ids & {e.id for e in r2.out.events}


async def test_rotated_while_stopped(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 3))
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 3)
    with log.open("ab") as f:
        f.write(lines(3, 5))  # written after the stop, before the rotation
    with gzip.open(tmp_path / "auth.log.1.gz", "wb") as gz:
        gz.write(log.read_bytes())
    log.unlink()
    log.write_bytes(lines(30, 32))
    async with Running(source(tmp_path, log)) as r2:
        await until(lambda: len(r2.out.events) == 4)
        await asyncio.sleep(0.1)
    assert r2.out.users() == want(3, 5) + want(30, 32)


async def test_ids_match_a_one_shot_ingest_of_the_gz(tmp_path: Path, log: Path) -> None:
    """Tailing a file and later reading its rotated .gz give the same ids."""
    from portolan.formats.base import ParseContext
    from portolan.formats.sshd import SshdParser
    from portolan.sources.lines import LineStats, read_events

    log.write_bytes(lines(0, 4))
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 4)
    gz = tmp_path / "auth.log.2.gz"
    with gzip.open(gz, "wb") as f:
        f.write(log.read_bytes())
    parser = SshdParser(ParseContext(sensor="s", now=lambda: NOW))
    again = [e for batch in read_events(gz, parser, "s", LineStats()) for e in batch]
    assert [e.id for e in again] == [e.id for e in r.out.events]


async def test_globs_and_compressed(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 2))
    (tmp_path / "b.log").write_bytes(lines(10, 11))
    with gzip.open(tmp_path / "c.log.gz", "wb") as f:
        f.write(lines(20, 23))
    async with Running(source(tmp_path, tmp_path / "*.log*", start_at="beginning",
                              read_compressed=True)) as r:
        await until(lambda: len(r.out.events) == 6)
        await asyncio.sleep(0.2)
    assert sorted(r.out.users()) == sorted(want(0, 2) + want(10, 11) + want(20, 23))


async def test_memory_stays_flat_while_a_file_grows(tmp_path: Path, log: Path) -> None:
    """A file that keeps growing is read in bounded batches; the source keeps no lines."""
    import tracemalloc

    log.write_bytes(b"")
    async with Running(source(tmp_path, log)) as r:
        r.out.events = _Discard()  # type: ignore[assignment]
        await until(lambda: not r.src.first_look)
        tracemalloc.start()
        peaks = []
        for round_ in range(4):
            with log.open("ab") as f:
                f.write(lines(round_ * 5000, (round_ + 1) * 5000))
            await until(lambda round_=round_: r.src.stats.lines == (round_ + 1) * 5000, 60)
            peaks.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
    assert os.path.getsize(log) > 300_000
    # what is held after 20,000 lines is about what was held after 5,000
    assert peaks[-1] < peaks[0] * 1.5 + 2_000_000


class _Discard(list[Event]):
    def extend(self, events: object) -> None:
        pass


def test_defaults_follow_sshd_log_when_readable(tmp_path: Path) -> None:
    from portolan.sources.file import sshd_log_defaults

    secure = tmp_path / "secure"
    assert sshd_log_defaults((str(tmp_path / "auth.log"), str(secure))) == []
    secure.write_text("")
    [found] = sshd_log_defaults((str(tmp_path / "auth.log"), str(secure)))
    assert isinstance(found, FileOptions)
    assert (found.paths, found.format, found.start_at) == ([str(secure)], "sshd", "end")


async def test_a_session_open_across_a_restart_is_still_closed(tmp_path: Path, log: Path) -> None:
    log.write_bytes(lines(0, 2) + b"Nov 23 10:00:00 h sshd[77]: Accepted password for alice "
                    b"from 198.51.100.7 port 5000 ssh2\n")
    async with Running(source(tmp_path, log, start_at="beginning")) as r:
        await until(lambda: len(r.out.events) == 3)
    [opened] = [e for e in r.out.events if e.action == "auth_success"]
    with log.open("ab") as f:
        f.write(b"Nov 23 10:30:00 h sshd[77]: Disconnected from user alice 198.51.100.7 "
                b"port 5000\n")
    async with Running(source(tmp_path, log, start_at="beginning")) as r2:
        await until(lambda: len(r2.out.events) == 1)
    [closed] = r2.out.events
    assert closed.action == "disconnect"
    assert closed.session == opened.session
    assert closed.duration == 1800.0


async def test_a_corrupt_gz_is_skipped_and_the_rest_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 2))
    good = gzip.compress(lines(10, 12))
    (tmp_path / "b.log.gz").write_bytes(good[: len(good) // 2])  # cut short
    src = source(tmp_path, tmp_path / "*.log*", start_at="beginning", read_compressed=True)
    async with Running(src) as r:
        await until(lambda: len(r.out.events) >= 2 and bool(src.skipped))
        with (tmp_path / "a.log").open("ab") as f:
            f.write(lines(2, 3))
        await until(lambda: "u2" in r.out.users())
    assert src.ctx.counters["file: unreadable: EOFError"] == 1
