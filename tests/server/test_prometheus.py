"""``/metrics``: the real Prometheus server scrapes it on loopback, and its own HTTP API
answers queries over what it scraped."""

from __future__ import annotations

import collections
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portolan.event import Event

from .conftest import Running, ev, make_runtime, start_server, wait_until

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def busy(tmp_path: Path, sqlite_url: str) -> Iterator[Running]:
    rt = make_runtime(tmp_path, sqlite_url, server={"metrics_top": 2, "metrics_per_ip": True,
                                                    "metrics_per_ip_max": 3})
    events: list[Event] = []
    for i in range(300):
        events.append(ev(i, country="NL" if i % 2 == 0 else ("US" if i % 6 == 5 else "DE"),
                         asn=64500 + i % 4, service="ssh" if i % 3 else "http",
                         src_ip=f"198.51.100.{i % 9}", sensor="edge-1" if i % 2 else "edge-2"))
    rt.store().write(events)
    rt.expected = collections.Counter(e.country for e in events)  # type: ignore[attr-defined]
    rt.stats.received, rt.stats.queue_depth = 300, 4
    rt.stats.failures["sink jsonl"] = 2
    yield from start_server(rt)


def test_metrics_are_bounded_and_counted(busy: Running) -> None:
    text = busy.get("/metrics").text
    assert 'portolan_events_total{service="ssh"} 200.0' in text
    assert 'portolan_events_total{service="http"} 100.0' in text
    country = [line for line in text.splitlines()
               if line.startswith("portolan_events_by_country_total{")]
    assert len(country) == 3  # metrics_top = 2, plus other
    (nl, n_nl), (second, n_second) = busy.runtime.expected.most_common(2)  # type: ignore[attr-defined]
    assert nl == "NL" and n_nl > n_second
    assert f'portolan_events_by_country_total{{country="NL"}} {n_nl}.0' in text
    assert f'portolan_events_by_country_total{{country="{second}"}} {n_second}.0' in text
    assert f'portolan_events_by_country_total{{country="other"}} {300 - n_nl - n_second}.0' in text
    addresses = [line for line in text.splitlines()
                 if line.startswith("portolan_events_by_address_total{")]
    assert len(addresses) == 3
    assert "portolan_pipeline_queue_depth 4.0" in text
    assert 'portolan_pipeline_failures_total{stage="sink jsonl"} 2.0' in text
    assert 'portolan_sensor_lag_seconds{sensor="edge-1"}' in text


@pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus server is not installed "
                    "(Debian package prometheus)")
def test_prometheus_scrapes_and_answers(busy: Running, tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    port = free_port()
    host = busy.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: portolan\n    static_configs:\n"
        f"      - targets: ['{host}']\n"
    )
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        def up() -> bool:
            targets = httpx.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            return bool(targets) and targets[0]["health"] == "up" and \
                targets[0]["lastError"] == ""

        wait_until(up, 60)

        def value(query: str) -> float | None:
            r = httpx.get(f"{api}/query", params={"query": query}, timeout=2).json()
            result = r["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        ssh = wait_until(lambda: value('portolan_events_total{service="ssh"}'), 30)
        assert ssh == 200
        total = value("sum(portolan_events_by_country_total)")
        assert total == 300
        series = value("count(portolan_events_by_country_total)")
        assert series == 3
    finally:
        proc.terminate()
        proc.wait(10)
