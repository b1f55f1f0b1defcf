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
