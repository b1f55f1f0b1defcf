"""``portolan listen`` as a user runs it: a real process, real connections, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from portolan.store import Store

PORTOLAN = [sys.executable, "-m", "portolan"]


@contextmanager
def listen(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``portolan listen`` on an ephemeral loopback port; stopped with SIGINT at the end."""
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([*PORTOLAN, "listen", "--port", "0", "--bind", "127.0.0.1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    line = ""
    match = None
    for _ in range(5):  # a migration of the store may be reported first
        line = proc.stderr.readline().decode()
        match = re.search(r"listening on tcp 127\.0\.0\.1:(\d+)$", line.strip())
        if match or not line:
            break
    if match is None:
        proc.kill()
        raise AssertionError(f"did not start: {line}{proc.communicate()[1].decode()}")
    try:
        yield proc, int(match.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def stop(proc: subprocess.Popen[bytes]) -> tuple[bytes, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    return out, err.decode()


def traffic(port: int) -> int:
    """A silent connection, then one that sends a payload; returns the second's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"\x13BitTorrent protocol")
        mine = int(client.getsockname()[1])
    return mine


def wait_for_lines(proc: subprocess.Popen[bytes], count: int) -> list[dict[str, Any]]:
    """Read ``count`` JSON lines from the running listener (with a deadline)."""
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    os.set_blocking(proc.stdout.fileno(), False)
    buffer = b""
    while len(lines) < count:
        assert time.monotonic() < deadline, f"only {len(lines)} lines: {lines}"
        chunk = proc.stdout.read() or b""
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        lines += [json.loads(line) for line in complete if line]
        if not chunk:
            time.sleep(0.02)
    return lines


def test_json_lines_in_portolan_schema(tmp_path: Path) -> None:
    with listen(tmp_path, "--json", "--sensor", "edge-1") as (proc, port):
        mine = traffic(port)
        events = wait_for_lines(proc, 5)
        stop(proc)
    assert [e["action"] for e in events].count("connect") == 2
    payload = next(e for e in events if e["action"] == "payload")
    assert payload["payload_hex"] == b"\x13BitTorrent protocol".hex()
    assert payload["src_port"] == mine and payload["sensor"] == "edge-1"
    assert payload["ts"].endswith("Z")
    silent = [e for e in events if e["action"] == "disconnect" and e["bytes_in"] == 0]
    assert len(silent) == 1


def test_spip_format_has_the_seed_fields(tmp_path: Path) -> None:
    with listen(tmp_path, "--format", "spip") as (proc, port):
        mine = traffic(port)
        records = wait_for_lines(proc, 2)
        stop(proc)
    assert all(list(r) == ["timestamp", "payload", "payload_hex", "source_ip", "source_port",
                           "destination_ip", "destination_port", "session_id"]
               for r in records)
    data = next(r for r in records if r["payload"])
    assert data["payload"] == "\x13BitTorrent protocol"
    assert data["payload_hex"] == "13426974546f7272656e742070726f746f636f6c"
    assert data["source_port"] == mine and data["destination_port"] == port
    assert isinstance(data["timestamp"], int) and abs(data["timestamp"] - time.time()) < 60
    uuid.UUID(data["session_id"])
    # the silent connection, which Spip lost, is there with an empty payload
    silent = next(r for r in records if not r["payload"])
    assert silent["payload_hex"] == "" and silent["session_id"] != data["session_id"]


def test_ecs_format(tmp_path: Path) -> None:
    with listen(tmp_path, "--format", "ecs") as (proc, port):
        traffic(port)
        docs = wait_for_lines(proc, 5)
        stop(proc)
    start = next(d for d in docs if d["event"]["action"] == "connect")
    assert start["event"]["type"] == ["connection", "start"]
    assert start["destination"]["port"] == port and start["network"]["transport"] == "tcp"
    assert start["@timestamp"].endswith("Z")
    end = next(d for d in docs if d["event"]["action"] == "disconnect"
               and d["source"].get("bytes"))
    assert end["source"]["bytes"] == 20 and end["event"]["duration"] >= 0
    payload = next(d for d in docs if d["event"]["action"] == "payload")
    assert payload["event"]["original_payload_hex"].startswith("13426974")
    assert payload["portolan"]["session"] == end["portolan"]["session"]


def test_store_gets_sessions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with listen(tmp_path, "--db", url) as (proc, port):
        traffic(port)
        store = Store(url)
        try:
            deadline = time.monotonic() + 20
            while store.count() < 5:
                assert time.monotonic() < deadline, f"{store.count()} events stored"
                time.sleep(0.1)
            _, err = stop(proc)
            sessions = store.sessions(limit=10)
            assert len(sessions) == 2
            assert all(s["end"] is not None for s in sessions)
        finally:
            store.close()
    assert "stopped; 5 events" in err


@pytest.mark.parametrize(("args", "message"), [
    ([], "give at least one --port"),
    (["--port", "1", "--json", "--db", "sqlite:///x.db"], "give one of --json and --db"),
    (["--port", "0", "--set", "max_payload=0"], "max_payload: must be 1 to 65536"),
    (["--port", "0", "--set", "nonsense=1"], "unknown field `nonsense`"),
    (["--port", "0", "--set", "read_timeout=slow"], "read_timeout: Expected `float`"),
    (["--port", "http"], "'http' is not a port or a range"),
])
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run([*PORTOLAN, "listen", "--bind", "127.0.0.1", *args],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
