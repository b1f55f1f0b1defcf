"""The selection file, the TSV file and the Prometheus endpoint (scraped over HTTP)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from portolan.store import Store
from portolan.tui.export import (
    LABEL_MAX,
    SELECTION_MAX,
    Exporter,
    Measured,
    Selection,
    SelectionFull,
    measure,
    write_tsv,
)
from portolan.tui.feeds import StoreFeed
from tests.tui.conftest import EVIL_HOST, recent_events


def test_selection_saved_on_every_change_and_loaded_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "sel.json"
    sel = Selection(path)
    assert sel.toggle("ip", "192.0.2.1") is True
    assert sel.toggle("asn", 64500) is True
    assert sel.toggle("host", EVIL_HOST) is True
    assert sel.toggle("ip", "192.0.2.1") is False
    loaded, warning = Selection.load(path)
    assert warning is None
    assert loaded.items == [("asn", 64500), ("host", EVIL_HOST)]
    assert not list(path.parent.glob("*.tmp"))


def test_selection_file_that_cannot_be_used_starts_empty_with_a_warning(
        tmp_path: Path) -> None:
    path = tmp_path / "sel.json"
    path.write_text("{not json", encoding="utf-8")
    sel, warning = Selection.load(path)
    assert len(sel) == 0
    assert warning and str(path) in warning
    path.write_text(json.dumps({"items": [{"kind": "ip", "key": "192.0.2.1"},
                                          {"kind": "asn", "key": "64500"},
                                          {"kind": "user", "key": "root"}, 5]}),
                    encoding="utf-8")
    sel, warning = Selection.load(path)
    assert sel.items == [("ip", "192.0.2.1")]
    assert warning and "3 entries skipped" in warning
    assert Selection.load(tmp_path / "absent.json")[1] is None


def test_selection_is_bounded(tmp_path: Path) -> None:
    sel = Selection(tmp_path / "sel.json")
    for i in range(SELECTION_MAX):
        sel.toggle("asn", i)
    with pytest.raises(SelectionFull):
        sel.toggle("asn", SELECTION_MAX)
    with pytest.raises(ValueError, match="allowed: ip, host, country, asn"):
        sel.toggle("user", "root")
    assert len(Selection.load(sel.path)[0]) == SELECTION_MAX


def test_measure_counts_all_time_and_window(filled_store: Store, now: dt.datetime) -> None:
    events = recent_events(now)
    feed = StoreFeed(filled_store)
    found = measure(feed, [("ip", "203.0.113.5"), ("country", "NL"), ("ip", "192.0.2.99")],
                    now - dt.timedelta(seconds=190))
    by = {(m.kind, m.key): m for m in found}
    assert by["ip", "203.0.113.5"].total == sum(e.src_ip == "203.0.113.5" for e in events)
    in_window = [e for e in events if e.ts >= now - dt.timedelta(seconds=190)]
    assert by["ip", "203.0.113.5"].window == sum(e.src_ip == "203.0.113.5" for e in in_window)
    assert by["ip", "203.0.113.5"].window < by["ip", "203.0.113.5"].total
    assert by["country", "NL"].name == "Netherlands"
    assert by["ip", "192.0.2.99"].total == 0


def test_tsv_escapes_tabs_and_newlines_in_attacker_text(tmp_path: Path) -> None:
    path = tmp_path / "out.tsv"
    now = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)
    write_tsv(path, [Measured("host", "a\tb\nc", None, 3, 1),
                     Measured("asn", 64500, "Example Net", 7, 2)], "1h", now)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert lines[1].split("\t") == ["host", "a\\tb\\nc", "", "3", "1", "1h",
                                    "2026-11-23T05:00:00.000000Z"]
    assert lines[2].split("\t")[:5] == ["asn", "64500", "Example Net", "7", "2"]


def test_exporter_serves_its_own_registry_over_http() -> None:
    exporter = Exporter()
    port = exporter.serve("127.0.0.1", 0)
    try:
        long_host = "h" * 1000 + ".test"
        exporter.update([Measured("host", long_host, None, 5, 2),
                         Measured("country", "DE", "Germany", 9, 0)])
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        exporter.stop()
    samples = {(s.name, s.labels.get("kind"), s.labels.get("key")): (s.value, s.labels)
               for f in text_string_to_metric_families(body) for s in f.samples}
    cut = "h" * (LABEL_MAX - 1) + "…"
    assert samples["portolan_top_selected_events_total", "host", cut][0] == 5
    assert samples["portolan_top_selected_window_events", "host", cut][0] == 2
    assert samples["portolan_top_selected_events_total", "country", "DE"] == (
        9, {"kind": "country", "key": "DE", "name": "Germany"})
    assert samples["portolan_top_selected_items", None, None][0] == 2
    assert "python_gc" not in body  # a registry of its own: nothing else in it
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
