"""The weblog format: annotated samples, layouts, and the real logs of the shared data."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from portolan.formats.base import ParseContext
from portolan.formats.weblog import LAYOUTS, LayoutError, WeblogParser, compile_layout
from portolan.sources.lines import LineStats, read_events
from tests.formats import samples

SAMPLE_FILE = samples.SAMPLES / "weblog.log"


def test_samples() -> None:
    samples.run(SAMPLE_FILE, "weblog")


def test_every_named_layout_has_a_sample() -> None:
    text = SAMPLE_FILE.read_text()
    for name in LAYOUTS:
        if name != "combined":  # the default: the samples without options
            assert f'"log_format": "{name}"' in text, name


def test_a_bad_layout_is_refused() -> None:
    with pytest.raises(LayoutError, match="neither a layout name"):
        compile_layout("nonsense")


def parse(path: Path) -> tuple[list, LineStats]:  # type: ignore[type-arg]
    stats = LineStats()
    parser = WeblogParser(ParseContext(sensor="t", source=path.name))
    events = [e for batch in read_events(path, parser, "t", stats) for e in batch]
    return events, stats


def test_nginx_log_figures(shared_data: Path) -> None:
    path = shared_data / "web" / "nginx_logs_first4MB.log"
    truth = json.loads(path.with_name(path.name + ".truth.json").read_text())
    events, stats = parse(path)
    assert stats.lines == truth["lines"] == 29_481
    assert len(events) == truth["parsed"] == 29_480
    assert stats.unmatched == truth["unparsed"] == 1  # the line cut at 4,000,000 bytes
    assert collections.Counter(str(e.attrs["status"]) for e in events) == truth["by_status"]
    assert collections.Counter(e.attrs["method"] for e in events) == truth["by_method"]
    ips = collections.Counter(e.src_ip for e in events)
    assert len(ips) == truth["unique_ips"] == 1786
    assert ips == truth["by_ip"]
    assert collections.Counter(e.attrs["path"] for e in events) == truth["by_path"]
    assert sum(e.attrs.get("bytes", 0) for e in events) == truth["bytes_total"]
    assert sum(e.bytes_out or 0 for e in events) == 18_852_143_300
    days = collections.Counter(e.ts.strftime("%d/%b/%Y") for e in events)
    assert days == truth["by_day"]
    assert len({e.id for e in events}) == len(events)


def test_nginx_botsearch_figures(shared_data: Path) -> None:
    path = shared_data / "web" / "fail2ban_nginx-botsearch.log"
    truth = json.loads(path.with_name(path.name + ".truth.json").read_text())
    events, _ = parse(path)
    assert len(events) == truth["parsed"] == 8
    assert collections.Counter(str(e.attrs["status"]) for e in events) == truth["by_status"]
    assert collections.Counter(e.attrs["method"] for e in events) == truth["by_method"]
    assert collections.Counter(e.src_ip for e in events) == truth["by_ip"]
    assert {e.user for e in events} == {None, "root", "tomcat"}
    assert sum(e.attrs["bytes"] for e in events) == truth["bytes_total"] == 606


def test_apache_error_log_is_not_an_access_log(shared_data: Path) -> None:
    events, stats = parse(shared_data / "web" / "fail2ban_apache-botsearch.log")
    assert events == []
    assert stats.matched == 0
