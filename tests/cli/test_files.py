"""``portolan parse``: the summary of a format that counts, against the events read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner

from portolan.cli import _load
from portolan.cli.app import main
from portolan.formats.base import CountingParser, ParseContext
from portolan.formats.sshd import SshdParser
from portolan.sources.lines import LineStats, count_lines, read_events
from tests.logfiles import awkward_log

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def parser() -> SshdParser:
    return SshdParser(ParseContext(sensor="s", options={"timezone": "UTC"}, now=lambda: NOW))


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
