"""``portolan parse``: the summary of a format that counts, against the events read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner

from portolan.cli import _load
from portolan.cli.app import main
from portolan.formats.base import CountingParser, ParseContext
from portolan.formats.sshd import SshdParser
from portolan.sources.lines import LINE_MAX, READ_BYTES, LineStats, count_lines, read_events

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def parser() -> SshdParser:
    return SshdParser(ParseContext(sensor="s", options={"timezone": "UTC"}, now=lambda: NOW))


def awkward_log(path: Path, final_newline: bool) -> Path:
    """Lines of every shape the reader must cut and decode as the line feeder does: CRLF,
    carriage returns alone, invalid UTF-8 (one character cut short just before the
    newline), blank lines, a line longer than the limit, unmatched lines, and chunks."""
    lines = []
    for i in range(3 * READ_BYTES // 70):
        t = f"Nov 23 10:{i // 60 % 60:02d}:{i % 60:02d}"
        lines += [
            f"{t} h sshd[{i}]: Failed password for root from 192.0.2.{i % 250} port {i} ssh2"
            .encode(),
            f"{t} h sshd[{i}]: Invalid user \xe9 from 192.0.2.1 port 1\r".encode("latin-1"),
            f"{t} h sshd[{i}]: Connection closed by 192.0.2.{i % 250} port {i} \xe2\x82"
            .encode("latin-1"),
            b"\r\r", b"", b"  ", f"not a log line {i % 5}".encode(), b"odd line\r",
            f"{t} h sshd[{i}]: Server listening on 0.0.0.0 port 22.\rx".encode(),
        ]
        if i == 100:
            lines.append(f"{t} h sshd[1]: Invalid user {'x' * LINE_MAX} from 192.0.2.1"
                         .encode())
    path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    return path


def test_counting_gives_the_figures_of_the_events(tmp_path: Path) -> None:
    assert isinstance(parser(), CountingParser)
    for final_newline in (True, False):
        log = awkward_log(tmp_path / "auth.log", final_newline)
        counted, read = LineStats(), LineStats()
        count_lines(log, parser(), counted)
        events = [e for b in read_events(log, parser(), "s", read, ids=False) for e in b]
        assert counted == read
        assert read.events == len(events)
        assert read.too_long == 1
        assert read.matched and read.ignored and read.unmatched


def test_parse_summary_of_sshd(tmp_path: Path) -> None:
    log = awkward_log(tmp_path / "auth.log", final_newline=True)
    read = LineStats()
    for _ in read_events(log, parser(), "s", read, ids=False):
        pass
    _load()
    result = CliRunner().invoke(main, ["parse", str(log), "-f", "sshd", "--top", "3"],
                                catch_exceptions=False)
    assert result.exit_code == 0
    out = result.output
    assert f"{read.lines} lines" in out
    assert f"matched:   {read.matched} ({read.events} events)" in out
    assert f"ignored:   {read.ignored}" in out
    assert f"unmatched: {read.unmatched}" in out
    assert f"of {len(read.unmatched_lines)} distinct" in out
    for line, count in read.unmatched_lines.most_common(3):
        assert f"{count:6}  {line}" in out
