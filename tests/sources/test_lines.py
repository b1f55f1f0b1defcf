"""Lines of files through a parser: ids from positions, counts, reading in chunks."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

from portolan.event import Event, make_id
from portolan.formats.base import ParseContext
from portolan.formats.sshd import SshdParser
from portolan.sources.lines import (
    READ_BYTES,
    LineFeeder,
    LineStats,
    fingerprint,
    read_events,
)

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def parser() -> SshdParser:
    return SshdParser(ParseContext(sensor="s", source="auth.log", options={"timezone": "UTC"},
                                   now=lambda: NOW))


def log_lines(n: int) -> list[bytes]:
    """sshd lines of every kind the feeder counts: one event, two events (a disconnect that
    ends a session), recognised without an event, unmatched, empty, CRLF, invalid UTF-8."""
    out = []
    for i in range(n):
        kind = i % 7
        if kind == 0:
            out.append(f"Nov 23 10:00:{i % 60:02d} web1 sshd[{i}]: Failed password for root "
                       f"from 203.0.113.{i % 250} port {i % 60000} ssh2\n".encode())
        elif kind == 1:
            out.append(f"Nov 23 10:00:{i % 60:02d} web1 sshd[{i}]: Accepted password for u "
                       f"from 198.51.100.{i % 250} port 22 ssh2\n".encode())
        elif kind == 2:
            out.append(f"Nov 23 10:01:{i % 60:02d} web1 sshd[{i - 1}]: Unable to negotiate "
                       f"with 198.51.100.{(i - 1) % 250} port 22: no matching key exchange "
                       "method found.\n".encode())
        elif kind == 3:
            out.append(f"Nov 23 10:00:{i % 60:02d} web1 sshd[{i}]: Server listening on 0.0.0.0 "
                       "port 22.\n".encode())
        elif kind == 4:
            out.append(f"not a log line {i}\n".encode())
        elif kind == 5:
            out.append(b"\r\n")
        else:
            out.append(f"Nov 23 10:00:{i % 60:02d} w\xff sshd[{i}]: Invalid user \xe9 from "
                       f"192.0.2.{i % 250} port 1\r\n".encode("latin-1"))
    return out


def test_many_lines_at_once_or_one_at_a_time_give_the_same() -> None:
    raws = log_lines(70)
    offsets = [sum(len(r) for r in raws[:i]) for i in range(len(raws))]
    one_stats, many_stats = LineStats(), LineStats()
    one = LineFeeder(parser(), "s", "key", one_stats)
    many = LineFeeder(parser(), "s", "key", many_stats)
    singly = [e for offset, raw in zip(offsets, raws, strict=True) for e in one.feed(offset, raw)]
    together = many.feed_many(zip(offsets, raws, strict=True))
    assert [e.id for e in together] == [e.id for e in singly]
    assert together == singly
    assert one_stats == many_stats
    assert (many_stats.lines, many_stats.matched, many_stats.ignored, many_stats.unmatched) \
        == (70, 40, 20, 10)
    assert many_stats.events == 50  # 10 lines of the 40 are two events
    # the ids are those of make_id(sensor, file, offset, index of the event on its line)
    first_two = [e for e in singly if e.action in ("probe", "disconnect")][:2]
    assert [e.id for e in first_two] == [make_id("s", "key", offsets[2], 0),
                                         make_id("s", "key", offsets[2], 1)]


def test_reading_a_file_in_chunks_gives_the_ids_of_its_byte_offsets(tmp_path: Path) -> None:
    raws = log_lines(3 * READ_BYTES // 60)  # several chunks
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(raws))
    stats = LineStats()
    events = [e for batch in read_events(log, parser(), "s", stats) for e in batch]
    expected = LineFeeder(parser(), "s", fingerprint(raws[0]), LineStats())
    offset = 0
    want: list[Event] = []
    for raw in raws:
        want += expected.feed(offset, raw)
        offset += len(raw)
    assert events == want
    assert stats.lines == len(raws)
    assert stats.events == len(events)
    # a gzip copy (a rotated file) gives the same ids
    gz = tmp_path / "auth.log.1.gz"
    gz.write_bytes(gzip.compress(log.read_bytes()))
    again = [e for batch in read_events(gz, parser(), "s", LineStats()) for e in batch]
    assert [e.id for e in again] == [e.id for e in events]


def test_without_ids_the_same_events_and_counts(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(log_lines(200)))
    with_ids, without = LineStats(), LineStats()
    events = [e for b in read_events(log, parser(), "s", with_ids) for e in b]
    bare = [e for b in read_events(log, parser(), "s", without, ids=False) for e in b]
    assert all(e.id for e in events)
    assert not any(e.id for e in bare)
    for e in events:
        e.id = ""
    assert bare == events
    assert with_ids == without


def test_a_line_longer_than_the_limit_is_cut_and_counted(tmp_path: Path) -> None:
    from portolan.sources.lines import LINE_MAX

    log = tmp_path / "auth.log"
    long_user = "x" * (LINE_MAX + 10)
    log.write_bytes(f"Nov 23 10:00:00 web1 sshd[1]: Invalid user {long_user} from 192.0.2.1\n"
                    "Nov 23 10:00:01 web1 sshd[2]: Invalid user b from 192.0.2.2\n".encode())
    stats = LineStats()
    events = [e for b in read_events(log, parser(), "s", stats) for e in b]
    assert stats.too_long == 1
    assert stats.lines == 2
    # the cut line lost its address: only the second line is an event, at its own offset
    assert [e.src_ip for e in events] == ["192.0.2.2"]
