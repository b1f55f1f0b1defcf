"""The alerts' Prometheus metrics, read through the process's registry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from portolan import config
from portolan.alerts.sink import AlertSink
from portolan.event import Event
from portolan.metrics import build_registry
from portolan.runtime import Runtime

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def sample(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_sent_failed_and_suppressed_by_rule_and_channel(tmp_path: Path,
                                                              receiver: Any) -> None:
    path = tmp_path / "portolan.toml"
    path.write_text(
        f'data_dir = "{tmp_path}"\n[store]\nenabled = false\n[alerts]\n'
        f'channels = {{ ok = "{receiver.url()}", down = "json://127.0.0.1:1/x" }}\n'
        'group_window = 0\nretries = 0\nthrottle = "1h"\n'
        '[alerts.rules.fail]\nmatch = { action = "auth_failure" }\n')
    rt = Runtime(config=config.load(path, environ={}), now=lambda: T0)
    (sink,) = [s for s in rt.sinks() if s.name == "alerts"]
    assert isinstance(sink, AlertSink)
    await sink.write([Event(id=f"m{i}", ts=T0, service="ssh", action="auth_failure",
                            src_ip="203.0.113.5") for i in range(3)])
    await receiver.arrived(1)
    await sink.close()
    text = generate_latest(build_registry(rt)).decode()
    assert sample(text, "portolan_alerts_sent_total", rule="fail", channel="ok") == 1
    assert sample(text, "portolan_alerts_failed_total", rule="fail", channel="down") == 1
    assert sample(text, "portolan_alerts_failed_total", rule="fail", channel="ok") is None
    assert sample(text, "portolan_alerts_suppressed_total", rule="fail",
                  reason="throttled") == 2
    assert sample(text, "portolan_alerts_hits_total", rule="fail", outcome="sent") == 1
    assert sample(text, "portolan_alerts_queued", channel="ok") == 0


def test_no_collector_without_alerts(tmp_path: Path) -> None:
    rt = Runtime(config=config.validate({"data_dir": str(tmp_path)}))
    text = generate_latest(build_registry(rt)).decode()
    assert "portolan_alerts" not in text
