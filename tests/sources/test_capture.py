"""The capture source: live on the loopback interface with traffic the test makes, checked
against tcpdump capturing the same traffic; files; option errors; missing privilege."""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portolan.config import ConfigError
from portolan.event import Event
from portolan.packets.capfile import CaptureError
from portolan.packets.live import can_capture, default_interface
from portolan.pipeline import Pipeline
from portolan.sources.base import SourceContext
from portolan.sources.capture import CaptureOptions, CaptureSource, analyzer_options

needs_raw = pytest.mark.skipif(
    not can_capture(), reason="live capture needs root or CAP_NET_RAW (run the tests as root)")


class Collect:
    name = "collect"
    durable = True

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def write(self, events: list[Event]) -> None:
        self.events.extend(events)

    async def close(self) -> None:
        return None


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def web() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: portolan.test\r\nUser-Agent: t\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


def _wait(condition: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@needs_raw
def test_live_capture_on_loopback_matches_tcpdump(tmp_path: Path, web: int) -> None:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip("tcpdump (Debian package tcpdump) is not installed")
    bpf = f"tcp port {web}"
    ref = tmp_path / "ref.pcap"
    dump = subprocess.Popen([tcpdump, "-i", "lo", "-n", "-U", "--immediate-mode", "-Z", "root",
                             "-w", str(ref), bpf],
                            stderr=subprocess.PIPE, text=True)
    assert dump.stderr is not None
    assert "listening on" in dump.stderr.readline()
    ctx = SourceContext(sensor="t", data_dir=tmp_path)
    source = CaptureSource(CaptureOptions(interface="lo", filter=bpf), ctx)
    sink = Collect()

    async def main() -> None:
        stop = asyncio.Event()
        pipeline = Pipeline([source], [], [sink], batch_delay=0.05)
        task = asyncio.create_task(pipeline.run(stop))
        await asyncio.to_thread(_wait, lambda: source.analyzer is not None, "the capture")
        for path in ("/", "/missing", "/a?b=1"):
            await asyncio.to_thread(_get, web, path)
        dump.send_signal(signal.SIGINT)
        out = await asyncio.to_thread(dump.communicate, timeout=10)
        seen = int(next(line for line in out[1].splitlines() if "captured" in line).split()[0])
        assert seen >= 3 * 6
        analyzer = source.analyzer
        assert analyzer is not None
        await asyncio.to_thread(_wait, lambda: analyzer.frames >= seen, "every frame")
        stop.set()
        await task

    asyncio.run(main())
    flows = sorted((e for e in sink.events if e.action == "flow"), key=lambda e: e.ts)
    requests = sorted((e for e in sink.events if e.action == "request"), key=lambda e: e.ts)
    assert [(e.attrs["uri"], e.attrs["status"], e.attrs["host"]) for e in requests] == [
        ("/", 200, "portolan.test"), ("/missing", 404, "portolan.test"),
        ("/a?b=1", 200, "portolan.test")]
    assert {e.attrs["flow"] for e in requests} == {e.id for e in flows}
    assert all(e.src_ip == "127.0.0.1" and e.dst_port == web for e in flows)
    assert all(e.attrs["end"] == "fin" for e in flows)

    # The same traffic as tcpdump wrote it, read as a file: the same flows.
    file_source = CaptureSource(CaptureOptions(read=str(ref)), ctx)
    file_sink = Collect()
    asyncio.run(Pipeline([file_source], [], [file_sink]).run())
    from_file = sorted((e for e in file_sink.events if e.action == "flow"), key=lambda e: e.ts)

    def shape(e: Event) -> tuple[object, ...]:
        return (e.src_port, e.dst_port, e.packets, e.bytes_in, e.bytes_out, e.attrs["end"])

    assert [shape(e) for e in flows] == [shape(e) for e in from_file]
    assert len(flows) == 3


@needs_raw
def test_stopping_reports_open_flows(tmp_path: Path) -> None:
    """A connection still open when the capture stops is reported (end "end")."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    ctx = SourceContext(sensor="t", data_dir=tmp_path)
    source = CaptureSource(CaptureOptions(interface="lo", filter=f"tcp port {port}"), ctx)
    sink = Collect()

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(Pipeline([source], [], [sink], batch_delay=0.05).run(stop))
        await asyncio.to_thread(_wait, lambda: source.analyzer is not None, "the capture")
        client = socket.create_connection(("127.0.0.1", port))
        peer, _ = server.accept()
        client.sendall(b"ping")
        assert peer.recv(4) == b"ping"
        analyzer = source.analyzer
        assert analyzer is not None
        await asyncio.to_thread(_wait, lambda: analyzer.frames >= 4, "four frames")
        stop.set()
        await task
        client.close()
        peer.close()

    try:
        asyncio.run(main())
    finally:
        server.close()
    [flow] = [e for e in sink.events if e.action == "flow"]
    assert flow.attrs["end"] == "end" and flow.packets is not None and flow.packets >= 4


def test_without_cap_net_raw_the_message_says_which(tmp_path: Path) -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv (util-linux) to drop CAP_NET_RAW")
    env = dict(os.environ, PORTOLAN_DATA_DIR=str(tmp_path))
    proc = subprocess.run(
        [setpriv, "--bounding-set=-net_raw", sys.executable, "-m", "portolan", "capture",
         "-i", "lo", "-c", "1"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 2
    assert "needs the CAP_NET_RAW capability" in proc.stderr
    assert "runs as root but without it" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_reading_a_file(tmp_path: Path, shared_data: Path) -> None:
    path = shared_data / "pcap" / "zeek_workshop_2011_browse.pcap"
    ctx = SourceContext(sensor="t", data_dir=tmp_path)
    source = CaptureSource(CaptureOptions(read=str(path)), ctx)
    assert source.name == "capture:zeek_workshop_2011_browse.pcap"
    sink = Collect()
    asyncio.run(Pipeline([source], [], [sink]).run())
    assert sum(1 for e in sink.events if e.action == "flow") == 6
    assert sum(1 for e in sink.events if e.service == "http" and e.action == "request") == 17
    assert source.counts["frames"] == 121


def test_unknown_interface_and_bad_filter(tmp_path: Path) -> None:
    ctx = SourceContext(sensor="t", data_dir=tmp_path)
    with pytest.raises(CaptureError, match=r"no network interface 'nope0'; there are: .*lo"):
        CaptureSource(CaptureOptions(interface="nope0"), ctx).open()
    if can_capture():
        with pytest.raises(CaptureError, match=r"filter 'tcp port': .*syntax error"):
            CaptureSource(CaptureOptions(interface="lo", filter="tcp port"), ctx).open()


@pytest.mark.parametrize(("change", "message"), [
    ({"local_networks": ["10.0.0.0/8", "lan"]}, "local_networks: 'lan' is not a network"),
    ({"idle_timeout": 0}, "idle_timeout: must be more than 0"),
    ({"max_flows": 0}, "max_flows: must be at least 1"),
])
def test_option_errors(change: dict[str, object], message: str) -> None:
    opts = CaptureOptions(**change)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        analyzer_options(opts)


def test_default_interface_is_the_first_up_non_loopback(tmp_path: Path) -> None:
    for name, index, flags in [("lo", 1, 0x9), ("eth1", 3, 0x1003), ("eth0", 2, 0x1002),
                               ("wlan0", 4, 0x1003)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "ifindex").write_text(f"{index}\n")
        (tmp_path / name / "flags").write_text(f"0x{flags:x}\n")
    assert default_interface(tmp_path) == "eth1"  # eth0 is down, lo is loopback
    assert default_interface(tmp_path / "absent") is None
