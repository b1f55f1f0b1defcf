"""Prometheus counters of captured traffic: values, the bound on series, monotonicity."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from portolan import config as config_mod
from portolan.event import Event, make_id
from portolan.formats.base import ParseContext
from portolan.formats.pcap import read_file
from portolan.metrics import build_registry
from portolan.runtime import Runtime
from portolan.sinks.base import SINKS
from portolan.sinks.capture_metrics import TopK

T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)


def _runtime(tmp_path: Path, **capture: object) -> Runtime:
    raw: dict[str, object] = {"data_dir": str(tmp_path)}
    if capture:
        raw["capture"] = capture
    return Runtime(config=config_mod.validate(raw))


def _scrape(rt: Runtime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(build_registry(rt)).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("portolan_capture_") and s.name.endswith("_total"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _feed(rt: Runtime, events: list[Event]) -> None:
    sink = SINKS.get("capture_metrics").make(rt)
    assert sink is not None
    asyncio.run(sink.write(events))


def _request(i: int, host: str) -> Event:
    return Event(id=make_id("m", i), ts=T0, service="http", action="request",
                 attrs={"host": host, "method": "GET"})


def _flow(i: int, dst: str, asn: int | None, size: int, org: str = "") -> Event:
    return Event(id=make_id("f", i), ts=T0, service="tcp", action="flow", direction="outbound",
                 src_ip="192.168.1.2", dst_ip=dst, bytes_in=size, bytes_out=0, asn=asn,
                 as_org=org or None)


def test_requests_per_host_from_a_real_capture(tmp_path: Path, shared_data: Path) -> None:
    rt = _runtime(tmp_path)
    events = [e for b in read_file(shared_data / "pcap" / "zeek_wikipedia.pcap",
                                   ParseContext()) for e in b]
    _feed(rt, events)
    got = _scrape(rt)
    name = "portolan_capture_http_requests_total"
    assert got[(name, (("host", "upload.wikimedia.org"),))] == 12
    assert sum(v for (n, _), v in got.items() if n == name) == 15


def test_bounded_series_and_exact_totals(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, top_k=3)
    hosts = [f"h{i}.example" for i in range(10)]
    # h0 is the busiest, then h1, h2...
    events = [_request(n * 100 + i, hosts[i]) for i in range(10) for n in range(10 - i)]
    _feed(rt, events)
    first = _scrape(rt)
    name = "portolan_capture_http_requests_total"
    series = {labels: v for (n, labels), v in first.items() if n == name}
    assert set(series) == {(("host", "h0.example"),), (("host", "h1.example"),),
                           (("host", "h2.example"),), (("host", "other"),)}
    assert sum(series.values()) == len(events)
    assert [series[(("host", f"h{i}.example"),)] for i in range(3)] == [10, 9, 8]
    # labels are given at a scrape and count from then on; nothing ever goes down
    _feed(rt, [_request(5000 + i, "h0.example") for i in range(4)]
          + [_request(6000, "h9.example")])
    second = _scrape(rt)
    assert all(second[k] >= v for k, v in first.items())
    assert second[(name, (("host", "h0.example"),))] == first[(name, (("host",
                                                                         "h0.example"),))] + 4
    assert sum(v for (n, _), v in second.items() if n == name) == len(events) + 5
    assert len([1 for (n, _) in second if n == name]) == 4


def test_bytes_per_as_private_left_out(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    _feed(rt, [_flow(1, "8.8.8.8", 15169, 1000, "GOOGLE"), _flow(2, "8.8.4.4", 15169, 500,
                                                                "GOOGLE"),
               _flow(3, "10.1.1.1", None, 7777)])
    got = _scrape(rt)
    name = "portolan_capture_asn_bytes_total"
    assert got[(name, (("as_org", "GOOGLE"), ("asn", "15169"), ("direction", "outbound")))] \
        == 1500
    assert sum(v for (n, _), v in got.items() if n == name) == 1500  # the private one is out
    assert not any(n == "portolan_capture_ip_bytes_total" for n, _ in got)


def test_per_ip_only_when_asked(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, per_ip=True, include_private=True)
    _feed(rt, [_flow(1, "8.8.8.8", 15169, 1000), _flow(3, "10.1.1.1", None, 7)])
    got = _scrape(rt)
    assert got[("portolan_capture_ip_bytes_total", (("direction", "outbound"),
                                                    ("ip", "8.8.8.8")))] == 1000
    assert sum(v for (n, _), v in got.items() if n == "portolan_capture_asn_bytes_total") \
        == 1007


def test_only_where_a_server_shows_the_metrics(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    assert any(s.name == "capture_metrics" for s in rt.sinks())
    assert not any(s.name == "capture_metrics" for s in rt.sinks(live=False))


def test_turned_off(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, metrics=False)
    assert SINKS.get("capture_metrics").make(rt) is None
    assert _scrape(rt) == {}


def test_candidates_stay_bounded() -> None:
    top = TopK(2, candidates=100)
    for i in range(10000):
        top.add((f"x{i}",), 1)
    top.add(("big",), 10**6)
    assert len(top._candidates) <= 100
    top.promote()
    assert ("big",) in top.labelled
