"""Files parsed in a child process (``portolan ingest``): the same events as parsed in
one process, the figures and counters back in the parent, and failures reported."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from portolan.event import Event
from portolan.formats.base import ParseContext
from portolan.formats.jsonl import JsonLinesParser
from portolan.formats.sshd import SshdParser
from portolan.sources.forked import ForkedFilesSource, _Sent
from portolan.sources.lines import LineStats, read_events
from tests.logfiles import awkward_log

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def sshd(counters: collections.Counter[str] | None = None) -> SshdParser:
    return SshdParser(ParseContext(sensor="s", options={"timezone": "UTC"}, now=lambda: NOW,
                                   counters=counters if counters is not None
                                   else collections.Counter()))


class Collect:
    """An emitter that keeps what it is given."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.some = asyncio.Event()

    async def emit(self, events: list[Event], checkpoint: object = None) -> None:
        self.batches.append(events)
        self.some.set()


def run(source: ForkedFilesSource) -> Collect:
    out = Collect()
    asyncio.run(source.run(out))
    return out


def test_events_and_figures_are_those_of_one_process(tmp_path: Path) -> None:
    logs = [awkward_log(tmp_path / "a.log", True), awkward_log(tmp_path / "b.log", False)]
    logs[1].write_bytes(logs[1].read_bytes().replace(b"root", b"admin"))  # another file
    alone, expected = LineStats(), []
    for log in logs:
        for batch in read_events(log, sshd(), "s", alone):
            expected += batch
    stats, moved = LineStats(), []
    source = ForkedFilesSource([(log, sshd()) for log in logs], "s", stats,
                               collections.Counter(), moved.append)
    got = [e for batch in run(source).batches for e in batch]
    assert got == expected  # every field, ids included, in order
    assert {type(e) for e in got} == {Event}  # not the class they travelled as
    assert len({e.id for e in got}) == len(got)
    assert stats == alone  # lines, matched, ignored, unmatched, too long, unmatched lines
    assert sum(moved) == sum(log.stat().st_size for log in logs)
    assert not source._process.is_alive()


def test_events_travel_without_their_default_fields() -> None:
    event = Event(id="e1", ts=NOW, sensor="s", action="auth_failure", src_ip="203.0.113.9",
                  attrs={"method": "password"})
    sent = Event(**{f: getattr(event, f) for f in Event.__struct_fields__})
    sent.__class__ = _Sent
    fields = msgspec.msgpack.decode(msgspec.msgpack.encode(sent))
    assert set(fields) == {"id", "ts", "sensor", "action", "src_ip", "attrs"}
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(sent), type=Event) == event


def test_counters_of_the_child_come_back(tmp_path: Path) -> None:
    log = tmp_path / "e.jsonl"
    log.write_text('{"ts": "2026-11-23T05:00:00Z", "service": "ssh", "action": "connect"}\n'
                   + "{not json\n" * 3)
    counters: collections.Counter[str] = collections.Counter({"earlier": 1})
    parser = JsonLinesParser(ParseContext(sensor="s", counters=counters))
    source = ForkedFilesSource([(log, parser)], "s", LineStats(), counters)
    got = run(source).batches
    assert sum(map(len, got)) == 1
    assert counters["earlier"] == 1
    assert sum(n for k, n in counters.items() if k.startswith("invalid event")) == 3


class Exploding(SshdParser):
    def parse(self, line: str) -> list[Event] | None:
        if "Invalid user" in line:
            raise ValueError("a parser bug \x1b]0;pwned\x07")  # attacker text may be quoted
        return super().parse(line)


def test_a_parser_failure_in_the_child_is_raised_in_the_parent(tmp_path: Path) -> None:
    log = awkward_log(tmp_path / "a.log", True)
    parser = Exploding(ParseContext(sensor="s", options={"timezone": "UTC"}, now=lambda: NOW))
    source = ForkedFilesSource([(log, parser)], "s", LineStats(), collections.Counter())
    with pytest.raises(RuntimeError, match=r"(?s)parsing failed.*ValueError: a parser bug") \
            as failed:
        run(source)
    assert "\x1b" not in str(failed.value) and "\\x1b]0;pwned\\x07" in str(failed.value)


def test_a_child_that_dies_is_reported(tmp_path: Path) -> None:
    log = awkward_log(tmp_path / "a.log", True)
    source = ForkedFilesSource([(log, sshd())], "s", LineStats(), collections.Counter())
    source.start()
    assert source.pid is not None
    os.kill(source.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match="exit code -9"):
        run(source)


def test_stopping_the_parent_stops_the_child(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("".join(f"Nov 23 10:00:00 h sshd[{i}]: Failed password for root from "
                           f"192.0.2.{i % 250} port {i} ssh2\n" for i in range(200_000)))
    source = ForkedFilesSource([(log, sshd())], "s", LineStats(), collections.Counter())

    async def first_batch_then_cancel() -> None:
        out = Collect()
        task = asyncio.create_task(source.run(out))
        await out.some.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(first_batch_then_cancel())
    assert source._process.exitcode is not None  # stopped, and waited for


def test_ingest_forks_and_stores_what_one_process_stores(tmp_path: Path) -> None:
    """The real command, in its own process: with --fork (the child really parses: the
    debug log names it) and --no-fork, the same rows in every table."""
    log = awkward_log(tmp_path / "auth.log", True)
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path / "data"), "TZ": "UTC"}
    env.pop("PORTOLAN_CONFIG", None)
    tables = []
    for how in ("--fork", "--no-fork"):
        db = tmp_path / f"{how}.db"
        done = subprocess.run(
            [sys.executable, "-m", "portolan", "-vv", "ingest", str(log), "-f", "sshd",
             "--sensor", "s", "--db", f"sqlite:///{db}", how],
            capture_output=True, text=True, env=env, timeout=120, check=True)
        assert ("parsed in process" in done.stderr) == (how == "--fork"), done.stderr
        with sqlite3.connect(db) as conn:
            tables.append({
                table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
                for table in ("events", "sessions", "rollups")})
        summary = [line for line in done.stderr.splitlines() if " lines: " in line]
        tables[-1]["summary"] = [summary[0].split(";")[0]]  # type: ignore[assignment]
    assert tables[0]["events"] and tables[0]["rollups"]
    assert tables[0] == tables[1]
