"""Connection-level pieces: the original destination behind a REDIRECT (in a network
namespace the test creates), the accept-rate bucket."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from portolan.event import make_id
from portolan.sources.listener import ListenerOptions
from portolan.sources.listener_conn import Hub, Port, TokenBucket, session_id

PORTOLAN = [sys.executable, "-m", "portolan"]


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of its own with loopback up; deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("ip", "iptables", "ip6tables"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages iproute2, iptables)")
    name = f"portolan-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True,
                          check=False)
    if made.returncode:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _in(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


CLIENT = """
import socket, sys
for host, port in [("127.0.0.1", 80), ("::1", 443), ("127.0.0.1", 12345)]:
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(f"to {port}".encode())
    s.close()
"""


def test_redirect_reports_the_original_port(netns: str, tmp_path: Path) -> None:
    for tool, dst, port in (("iptables", "127.0.0.1", "80"), ("ip6tables", "::1", "443")):
        subprocess.run(_in(netns, tool, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", dst,
                           "--dport", port, "-j", "REDIRECT", "--to-ports", "12345"),
                       check=True)
    out = tmp_path / "events.jsonl"
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path)}
    with out.open("wb") as sink:
        listener = subprocess.Popen(
            _in(netns, *PORTOLAN, "listen", "--port", "12345", "--bind", "127.0.0.1",
                "--bind", "::1", "--json"),
            stdout=sink, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert listener.stderr is not None
        ready = [listener.stderr.readline() for _ in range(2)]
        assert all("listening on tcp" in line for line in ready), ready
        subprocess.run(_in(netns, sys.executable, "-c", CLIENT), check=True, timeout=30)
        deadline = time.monotonic() + 10
        while out.read_bytes().count(b'"disconnect"') < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.send_signal(signal.SIGINT)
        listener.communicate(timeout=30)
    events = [json.loads(line) for line in out.read_bytes().splitlines()]
    payloads = {e["attrs"]["payload_text"]: e for e in events if e["action"] == "payload"}
    assert set(payloads) == {"to 80", "to 443", "to 12345"}
    connects = {e["session"]: e for e in events if e["action"] == "connect"}
    v4 = connects[payloads["to 80"]["session"]]
    assert (v4["dst_ip"], v4["dst_port"]) == ("127.0.0.1", 80)
    assert v4["attrs"]["listen_port"] == 12345
    assert v4["attrs"]["redirected"] is True
    assert "original_dst" not in v4["attrs"]  # known, so no "unavailable" note
    assert v4["source"] == "listener:12345"
    assert v4["service"] == "http"
    v6 = connects[payloads["to 443"]["session"]]
    assert (v6["dst_ip"], v6["dst_port"]) == ("::1", 443)
    assert v6["attrs"]["redirected"] is True
    assert payloads["to 80"]["dst_port"] == 80  # every event of the session says so
    direct = connects[payloads["to 12345"]["session"]]
    assert direct["dst_port"] == 12345
    assert "redirected" not in direct["attrs"] and "original_dst" not in direct["attrs"]


def test_token_bucket() -> None:
    bucket = TokenBucket(10)
    start = bucket.stamp
    assert sum(bucket.take(start) for _ in range(30)) == 10  # the burst
    assert not bucket.take(start + 0.05)
    assert bucket.take(start + 0.25)  # refilled two (and a half)
    assert bucket.take(start + 0.25)
    assert not bucket.take(start + 0.25)
    unlimited = TokenBucket(0)
    assert all(unlimited.take(start) for _ in range(1000))


def test_session_id_is_make_id_of_its_parts() -> None:
    limits = ListenerOptions(type="listener").limits()
    hub = Hub("edge-1", lambda: dt.datetime.now(dt.UTC), limits, collections.Counter())
    port = Port(hub, "listener:2222", "0.0.0.0", 2222)
    ns = 1_795_416_236_123_456_789
    assert session_id(port, "203.0.113.9", 40132, ns, 7) == make_id(
        "edge-1", "listener:2222", "203.0.113.9", 40132, ns, 7)
    assert session_id(port, "203.0.113.9", 40132, ns, 8) != session_id(
        port, "203.0.113.9", 40132, ns, 7)
