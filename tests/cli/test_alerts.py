"""``portolan alerts test`` against a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from portolan.cli import _load
from portolan.cli.app import main


@pytest.fixture
def hook() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_alerts_test_reports_each_channel(tmp_path: Path,
                                          hook: tuple[int, list[dict[str, Any]]]) -> None:
    port, received = hook
    config = tmp_path / "p.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\n[alerts]\ntitle = "Edge 1"\nchannels = {{ '
        f'good = "json://127.0.0.1:{port}/h", bad = "json://127.0.0.1:{free_port()}/h" }}\n')
    _load()
    result = CliRunner().invoke(main, ["-c", str(config), "alerts", "test"])
    assert result.exit_code == 1
    assert "good: delivered" in result.output
    assert "bad: FAILED" in result.output
    assert received[0]["title"] == "Edge 1"
    assert received[0]["message"].startswith("Test message from Portolan")

    only = CliRunner().invoke(main, ["-c", str(config), "alerts", "test", "--channel", "good",
                                     "--message", "hello"])
    assert only.exit_code == 0, only.output
    assert received[-1]["message"] == "hello"

    unknown = CliRunner().invoke(main, ["-c", str(config), "alerts", "test", "--channel", "x"])
    assert unknown.exit_code == 2
    assert "no channel 'x'; known: good, bad" in unknown.output


def test_dry_run_shows_what_would_be_sent(tmp_path: Path) -> None:
    import datetime as dt

    from portolan.event import Event, encode_lines

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    common: dict[str, Any] = dict(service="spyserver", src_ip="198.51.100.4", src_port=5)
    events = [
        Event(id="1", ts=t0, action="connect",
              attrs={"instance": "hf", "client": "SDR++ \x1b[31m<!channel>"}, **common),
        Event(id="2", ts=t0 + dt.timedelta(seconds=70), action="disconnect",
              attrs={"instance": "hf"}, **common),
        Event(id="3", ts=t0 + dt.timedelta(seconds=80), action="connect",
              attrs={"instance": "hf"}, **common),
    ]
    log = tmp_path / "events.jsonl"
    log.write_bytes(encode_lines(events))
    config = tmp_path / "p.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\n[alerts]\nchannels.hook = "json://127.0.0.1:1/x"\n'
        '[alerts.rules.sdr]\nkind = "spyserver"\n'
        'message = "{action} {src_ip}#{instance} {client} {duration}"\n'
        '[alerts.rules.new]\nkind = "first_seen"\nfield = "src_ip"\nmessage = "new {value}"\n')
    _load()
    result = CliRunner().invoke(main, ["-c", str(config), "alerts", "dry-run", str(log),
                                       "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2026-01-01 00:00:00 sdr: connect 198.51.100.4#hf SDR++ ?［31m＜!channel＞ ?",
        "2026-01-01 00:00:00 new: new 198.51.100.4",
        "2026-01-01 00:01:10 sdr: disconnect 198.51.100.4#hf ? 00:01:10",
    ]
    assert "rule sdr: 2 sent, 1 throttled" in result.stderr
    assert "rule new: 1 sent" in result.stderr

    missing = CliRunner().invoke(main, ["-c", str(config), "alerts", "dry-run", str(log),
                                        "-f", "jsonl", "--rule", "nope"])
    assert missing.exit_code == 2
    assert "no rule 'nope'; known: sdr, new" in missing.output
