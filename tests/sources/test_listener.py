"""The listener source with real sockets on 127.0.0.1 and ::1, on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from portolan.config import ConfigError
from portolan.protocols.tls import parse_client_hello
from portolan.sources.base import SOURCES, SourceContext
from portolan.sources.listener import (
    DEFAULT_PORTS,
    ListenerOptions,
    ListenerSource,
    parse_ports,
)
from tests.sources.listener_support import both_loops, listening, run


@both_loops
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_silent_connection_is_logged_at_once_and_at_close(
        loop: str, tmp_path: Path, host: str) -> None:
    async def go() -> None:
        async with listening(tmp_path, bind=host, read_timeout=30) as (_, events, port):
            _, writer, mine = await events.connect(port, host)
            # the connect event comes while the client is still silent and connected
            connect = (await events.until(lambda: events.of("connect", src_port=mine)))[0]
            assert not events.of("disconnect", src_port=mine)
            writer.close()
            disconnect = await events.session(mine)
            assert connect.src_ip == host and connect.dst_ip == host
            assert connect.dst_port == port and connect.proto == "tcp"
            assert connect.source == f"listener:{port}" and connect.sensor == "test"
            assert disconnect.session == connect.session
            assert disconnect.id != connect.id
            assert disconnect.bytes_in == 0 and disconnect.bytes_out == 0
            assert disconnect.duration is not None and disconnect.duration >= 0
            assert disconnect.attrs["reason"] == "closed"
            assert not events.of("payload", src_port=mine)

    run(loop, go())


@both_loops
def test_first_payload_is_one_event_with_text_and_unknown_tag(
        loop: str, tmp_path: Path) -> None:
    data = b"\x00\x01BitTorrent protocol\xff"

    async def go() -> None:
        async with listening(tmp_path) as (_, events, port):
            _, writer, mine = await events.connect(port)
            writer.write(data[:5])
            await writer.drain()
            await asyncio.sleep(0.05)  # a second segment, well inside the pause that ends it
            writer.write(data[5:])
            writer.close()
            disconnect = await events.session(mine)
            [payload] = events.of("payload", src_port=mine)
            assert bytes(payload.payload or b"") == data
            assert payload.attrs["protocol"] == "unknown"
            assert payload.attrs["first_bytes"] == data[:16].hex()
            assert "BitTorrent protocol" in payload.attrs["payload_text"]
            assert payload.session == disconnect.session
            assert disconnect.bytes_in == len(data)

    run(loop, go())


@both_loops
def test_pause_ends_the_first_payload_while_the_connection_stays(
        loop: str, tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path, payload_gap=0.2) as (_, events, port):
            _, writer, mine = await events.connect(port)
            writer.write(b"*1\r\n$4\r\nPING\r\n")  # a Redis client waiting for its answer
            await writer.drain()
            payload = await events.session(mine, "payload")
            assert bytes(payload.payload or b"") == b"*1\r\n$4\r\nPING\r\n"
            assert not events.of("disconnect", src_port=mine)
            writer.write(b"more that is only counted")
            writer.close()
            disconnect = await events.session(mine)
            assert disconnect.bytes_in == 14 + 25
            assert len(events.of("payload", src_port=mine)) == 1

    run(loop, go())


@both_loops
def test_payload_is_capped_and_the_rest_counted(loop: str,
                                                tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path, max_payload=1000) as (_, events, port):
            _, writer, mine = await events.connect(port)
            writer.write(b"x" * 50000)
            writer.close()
            disconnect = await events.session(mine)
            [payload] = events.of("payload", src_port=mine)
            assert len(payload.payload or b"") == 1000
            assert disconnect.bytes_in == 50000

    run(loop, go())


@both_loops
def test_silent_connection_closed_at_read_timeout(loop: str,
                                                  tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path, read_timeout=0.3) as (_, events, port):
            reader, _, mine = await events.connect(port)
            disconnect = await events.session(mine)
            assert disconnect.attrs["reason"] == "read_timeout"
            assert disconnect.duration is not None and disconnect.duration >= 0.3
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the peer sees the close

    run(loop, go())


@both_loops
def test_idle_timeout_after_the_first_payload(loop: str,
                                              tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path, idle_timeout=0.3) as (_, events, port):
            _, writer, mine = await events.connect(port)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            disconnect = await events.session(mine)
            assert disconnect.attrs["reason"] == "idle_timeout"
            assert disconnect.service == "http"

    run(loop, go())


@both_loops
def test_tls_client_hello_from_a_real_client(loop: str,
                                             tmp_path: Path) -> None:
    def client(port: int) -> int:
        ctx = ssl.create_default_context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            mine = raw.getsockname()[1]
            # the listener never answers the hello: the handshake ends at the time-out
            with pytest.raises((TimeoutError, ssl.SSLError, OSError)), \
                    ctx.wrap_socket(raw, server_hostname="secret.example.org"):
                pass
        return int(mine)

    async def go() -> None:
        async with listening(tmp_path, read_timeout=30) as (_, events, port):
            task = asyncio.create_task(asyncio.to_thread(client, port))
            payload = await events.until(lambda: events.of("payload"))
            mine = await task
            [payload] = events.of("payload", src_port=mine)
            hello = parse_client_hello(bytes(payload.payload or b""))
            assert hello is not None
            assert payload.service == "tls"
            assert payload.attrs["protocol"] == "tls"
            assert payload.attrs["tls_sni"] == "secret.example.org"
            assert payload.attrs["tls_alpn"] == ["h2", "http/1.1"]
            assert payload.attrs["ja4"] == hello.ja4 and payload.attrs["ja4"].startswith("t13d")
            assert "TLS 1.3" in payload.attrs["tls_versions"]
            disconnect = await events.session(mine)
            assert disconnect.service == "tls"

    run(loop, go())


@both_loops
def test_http_request_with_reply(loop: str, tmp_path: Path) -> None:
    def client(port: int) -> tuple[int, bytes, str | None]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/wp-login.php?x=1",
                                         headers={"User-Agent": "Scanner/1.0 \x1b[31m"})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read(), response.headers.get("Server")

    async def go() -> None:
        async with listening(tmp_path, reply_http=[0], http_server="Apache") as (_, events,
                                                                                 port):
            status, body, server = await asyncio.to_thread(client, port)
            assert (status, server) == (200, "Apache")
            assert b"It works!" in body
            disconnect = await events.until(lambda: events.of("disconnect"))
            [payload] = events.of("payload")
            attrs = payload.attrs
            assert payload.service == "http"
            assert attrs["method"] == "GET"
            assert attrs["path"] == "/wp-login.php"
            assert attrs["uri"] == "/wp-login.php?x=1"
            assert attrs["host"] == f"127.0.0.1:{port}"
            assert attrs["user_agent"] == "Scanner/1.0 \x1b[31m"
            assert attrs["http_version"] == "HTTP/1.1"
            assert disconnect[0].attrs["reason"] == "replied"
            reply = ListenerOptions(type="listener", http_server="Apache").http_reply()
            assert disconnect[0].bytes_out == len(reply)
            assert reply.endswith(body)

    run(loop, go())


@both_loops
def test_ssh_banner_reply_gives_the_client_hassh(loop: str, tmp_path: Path) -> None:
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.skip("the OpenSSH client (ssh) is not installed")

    async def go() -> None:
        async with listening(tmp_path, reply_ssh=[0], idle_timeout=1,
                             ssh_banner="SSH-2.0-OpenSSH_8.4p1 Debian-5") as (_, events, port):
            client = await asyncio.create_subprocess_exec(
                ssh, "-v", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-p", str(port), "root@127.0.0.1", stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
            payload = (await events.until(lambda: events.of("payload")))[0]
            _, err = await asyncio.wait_for(client.communicate(), 30)
            attrs = payload.attrs
            assert payload.service == "ssh"
            assert attrs["ssh_software"].startswith("OpenSSH_")
            algorithms = attrs["hassh_algorithms"].split(";")
            assert len(algorithms) == 4 and "curve25519-sha256" in algorithms[0].split(",")
            assert attrs["hassh"] == hashlib.md5(attrs["hassh_algorithms"].encode(),
                                                 usedforsecurity=False).hexdigest()
            # the client saw the banner the listener sent
            assert b"remote software version OpenSSH_8.4p1" in err
            disconnect = await events.session(payload.src_port or 0)
            assert disconnect.bytes_out == len(b"SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n")

    run(loop, go())


@both_loops
def test_ssh_without_reply_reports_the_banner_alone(loop: str, tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path) as (_, events, port):
            reader, writer, mine = await events.connect(port)
            writer.write(b"SSH-2.0-libssh_0.9.6\r\n")
            await writer.drain()
            payload = await events.session(mine, "payload")
            assert payload.attrs["ssh_software"] == "libssh_0.9.6"
            assert "hassh" not in payload.attrs
            writer.close()
            assert await reader.read() == b""  # nothing was sent back

    run(loop, go())


@both_loops
def test_http_reply_port_does_not_answer_other_protocols(loop: str,
                                                         tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path, reply_http=[0], payload_gap=0.1) as (_, events, port):
            reader, writer, mine = await events.connect(port)
            writer.write(b"\x00\x00\x00\x00hello")
            await writer.drain()
            await events.session(mine, "payload")
            writer.close()
            disconnect = await events.session(mine)
            assert disconnect.bytes_out == 0
            assert await reader.read() == b""

    run(loop, go())


@both_loops
def test_udp_datagrams_on_both_families(loop: str, tmp_path: Path) -> None:
    async def go(host: str) -> None:
        async with listening(tmp_path, bind=host, ports=[], udp_ports=[0],
                             max_payload=8) as (source, events, port):
            assert source.addresses() == [("udp", host, port)]
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as client:
                client.sendto(b"first datagram", (host, port))
                client.sendto(b"second", (host, port))
                mine = client.getsockname()[1]
                got = await events.until(lambda: len(events.of("datagram")) >= 2 and
                                         events.of("datagram"))
            first, second = got
            assert first.proto == "udp" and first.src_ip == host and first.src_port == mine
            assert first.dst_port == port and first.source == f"listener:{port}/udp"
            assert bytes(first.payload or b"") == b"first da"  # bounded
            assert first.bytes_in == 14 and first.attrs["size"] == 14
            assert bytes(second.payload or b"") == b"second"
            assert first.id != second.id

    run(loop, go("127.0.0.1"))
    run(loop, go("::1"))


@both_loops
def test_per_source_cap_logs_and_closes_the_excess(loop: str,
                                                   tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path, max_per_source=3, read_timeout=30) as (source, events,
                                                                               port):
            held = [await events.connect(port, local="127.0.0.2") for _ in range(5)]
            await events.until(lambda: len(events.of("connect")) == 5)
            rejected = [e for e in events.of("connect") if e.attrs.get("rejected")]
            assert len(rejected) == 2
            assert {e.attrs["rejected"] for e in rejected} == {"max_per_source"}
            for event in rejected:
                closed = await events.session(event.src_port)
                assert closed.attrs["reason"] == "max_per_source"
            # another address is not held back by that one
            _, writer, mine = await events.connect(port, local="127.0.0.3")
            writer.write(b"hello")
            writer.close()
            payload = await events.session(mine, "payload")
            assert not payload.attrs.get("rejected")
            counters = source.ctx.counters
            assert counters["listener: closed over the per-source limit"] == 2
            for _, w, _ in held:
                w.close()

    run(loop, go())


@both_loops
def test_thousands_of_idle_connections_do_not_stop_new_ones(loop: str,
                                                            tmp_path: Path) -> None:
    idle = 1500

    async def go() -> None:
        async with listening(tmp_path, max_per_source=0, max_connections=1000,
                             accept_rate=0, read_timeout=60) as (source, events, port):
            held = []
            for start in range(0, idle, 100):
                held += await asyncio.gather(*[events.connect(port, local="127.0.0.2")
                                               for _ in range(min(100, idle - start))])
            await events.until(lambda: len(events.of("connect")) == idle, within=30)
            # at the cap the oldest made room: 500 evicted, 1000 still open
            evicted = await events.until(
                lambda: len(events.of("disconnect")) >= idle - 1000 and events.of("disconnect"))
            assert all(e.attrs["reason"] == "evicted" for e in evicted)
            assert len(source.hub.open) == 1000
            _, writer, mine = await events.connect(port, local="127.0.0.3")
            writer.write(b"new")
            writer.close()
            payload = await events.session(mine, "payload", within=5)
            assert bytes(payload.payload or b"") == b"new"
            for _, w, _ in held:
                w.close()

    run(loop, go())


@both_loops
def test_accept_rate_limit(loop: str, tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path, accept_rate=5, max_per_source=0) as (source, events,
                                                                            port):
            clients = [await events.connect(port) for _ in range(30)]
            key = "listener: closed over the accept rate"
            await events.until(lambda: source.ctx.counters[key] + len(events.of("connect"))
                               == 30)
            # a burst of 5 plus what refills in the time the 30 took
            assert 5 <= len(events.of("connect")) < 30
            assert source.ctx.counters[key] >= 1
            for _, w, _ in clients:
                w.close()

    run(loop, go())


@both_loops
def test_shutdown_closes_and_logs_open_connections(loop: str,
                                                   tmp_path: Path) -> None:
    async def go() -> None:
        source_events = None
        async with listening(tmp_path, read_timeout=30) as (_, events, port):
            reader, _, mine = await events.connect(port)
            await events.session(mine, "connect")
            source_events = events
        assert source_events is not None
        [closed] = source_events.of("disconnect", src_port=mine)
        assert closed.attrs["reason"] == "shutdown"
        assert await asyncio.wait_for(reader.read(), 5) == b""

    run(loop, go())


def test_original_destination_unavailable_is_said(tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path) as (_, events, port):
            _, writer, mine = await events.connect(port)
            connect = await events.session(mine, "connect")
            writer.close()
            # not behind a REDIRECT: the socket's own address, and why conntrack could not say
            assert connect.dst_port == port
            if "original_dst" in connect.attrs:
                assert connect.attrs["original_dst"] == "unavailable"
                assert connect.attrs["original_dst_error"] in ("ENOENT", "ENOPROTOOPT")
            else:
                assert "redirected" not in connect.attrs

    run("asyncio", go())


def test_sessions_are_unique(tmp_path: Path) -> None:
    async def go() -> None:
        async with listening(tmp_path, accept_rate=0) as (_, events, port):
            for _ in range(50):
                _, writer, _ = await events.connect(port)
                writer.close()
            await events.until(lambda: len(events.of("disconnect")) == 50)
            sessions = {e.session for e in events.of("connect")}
            assert len(sessions) == 50
            ids = [e.id for e in events.events]
            assert len(ids) == len(set(ids))

    run("asyncio", go())


def test_parse_ports() -> None:
    assert parse_ports([22, "8000-8002", "22"], "ports") == [22, 8000, 8001, 8002]
    with pytest.raises(ValueError, match="ports: 'ssh' is not a port"):
        parse_ports(["ssh"], "ports")
    with pytest.raises(ValueError, match="0 to 65535"):
        parse_ports(["9-1"], "ports")
    with pytest.raises(ValueError, match="0 to 65535"):
        parse_ports([70000], "ports")


def test_options_are_checked_with_the_key_named() -> None:
    def convert(**raw: object) -> ListenerOptions:
        return msgspec.convert({"type": "listener", **raw}, ListenerOptions)

    with pytest.raises(msgspec.ValidationError, match="reply_http: 'x'"):
        convert(ports=[1], reply_http=["x"])
    with pytest.raises(msgspec.ValidationError, match="max_payload"):
        convert(ports=[1], max_payload=0)
    with pytest.raises(msgspec.ValidationError, match="read_timeout"):
        convert(ports=[1], read_timeout=0)
    with pytest.raises(msgspec.ValidationError, match="ssh_banner"):
        convert(ports=[1], ssh_banner="hello")


def test_bind_errors_name_the_address(tmp_path: Path) -> None:
    ctx = SourceContext(sensor="t", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="no ports"):
        ListenerSource(ListenerOptions(type="listener"), ctx)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on tcp 127.0.0.1:{port}"):
            ListenerSource(ListenerOptions(type="listener", ports=[port],
                                           bind=["127.0.0.1"]), ctx)
        # skipped with a warning when asked to, as long as one port opens
        source = ListenerSource(ListenerOptions(type="listener", ports=[port, 0],
                                                bind=["127.0.0.1"], skip_unavailable=True),
                                ctx)
        assert len(source.addresses()) == 1 and source.addresses()[0][2] != port
        source.close()
    with pytest.raises(ConfigError, match="at most 4096"):
        ListenerSource(ListenerOptions(type="listener", ports=["1-3000"],
                                       bind=["127.0.0.1", "::1"]), ctx)


def test_registered_with_loopback_defaults(tmp_path: Path) -> None:
    spec = SOURCES.get("listener")
    ctx = SourceContext(sensor="t", data_dir=tmp_path)
    assert spec.defaults is not None
    [options] = spec.defaults(ctx)
    assert isinstance(options, ListenerOptions)
    assert options.bind == ["127.0.0.1"]
    assert parse_ports(options.ports, "ports") == list(DEFAULT_PORTS)
    assert options.skip_unavailable


# -- the process: file descriptors running out, privileges -------------------------------

LOW_FILES = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from portolan.cli import main
sys.argv[0] = "portolan"
main()
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(args: list[str], tmp_path: Path, *, loop: str = "uvloop",
           prefix: list[str] | None = None, stdout: Path | None = None
           ) -> tuple[subprocess.Popen[bytes], int]:
    # HOME: an unprivileged user must be able to look for its config there
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    args = [*args, "--loop", loop]
    if stdout is None:
        proc = subprocess.Popen([*(prefix or []), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    else:
        with stdout.open("wb") as sink:
            proc = subprocess.Popen([*(prefix or []), *args], stdout=sink,
                                    stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    line, match = "", None
    for _ in range(20):  # log lines (a GeoIP warning, say) may come first
        line = proc.stderr.readline().decode()
        match = re.search(r"listening on tcp \S+:(\d+)$", line.strip())
        if match is not None or not line:
            break
    if match is None:
        try:
            rest = proc.communicate(timeout=10)[1].decode()
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[1].decode()
        raise AssertionError(f"listener did not start: {line}{rest}")
    return proc, int(match.group(1))


def _stop(proc: subprocess.Popen[bytes]) -> tuple[list[dict[str, Any]], str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return [json.loads(line) for line in out.splitlines()], err.decode()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_running_out_of_file_descriptors_is_no_busy_loop(tmp_path: Path, loop: str) -> None:
    out = tmp_path / "events.jsonl"
    proc, port = _start([sys.executable, "-c", LOW_FILES, "listen", "--port", "0", "--bind",
                         "127.0.0.1", "--json", "--set", "read_timeout=60",
                         "--set", "max_per_source=0"], tmp_path, loop=loop, stdout=out)
    clients: list[socket.socket] = []
    try:
        for _ in range(150):  # far more than the 64 descriptors the listener may have
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        before = _cpu_seconds(proc.pid)
        time.sleep(2.0)  # measuring a rate: the listener's CPU time over a span
        spent = _cpu_seconds(proc.pid) - before
        assert spent < 0.5, f"{spent:.2f} s of CPU in 2 s while out of descriptors"
        for client in clients:
            client.close()
        clients.clear()
        # descriptors are free again: a new connection is logged
        deadline = time.monotonic() + 15
        while b"after-the-storm" not in out.read_bytes():
            assert time.monotonic() < deadline, "no connection logged after the storm"
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                probe.sendall(b"after-the-storm")
            time.sleep(0.3)
        assert proc.poll() is None
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    events = [json.loads(line) for line in out.read_bytes().splitlines()]
    connects = [e for e in events if e["action"] == "connect"]
    # as many as the descriptors allowed were logged while the rest waited or were dropped
    assert 40 <= len(connects) <= 170
    assert len({e["session"] for e in connects}) == len(connects)


def _free_low_port() -> int:
    for port in range(1000, 1024):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024 on 127.0.0.1")


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
    assert match is not None
    return int(match.group(2))


def _nobody() -> int:
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user 'nobody'")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder that an unprivileged user can reach and write (pytest's are root's only)."""
    with tempfile.TemporaryDirectory(prefix="portolan-test-") as name:
        path = Path(name)
        path.chmod(0o777)
        yield path


def test_drops_root_after_binding_a_privileged_port(open_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = _nobody()
    port = _free_low_port()
    tmp_path = open_dir
    proc, bound = _start([sys.executable, "-m", "portolan", "-v", "listen", "--port",
                          str(port), "--bind", "127.0.0.1", "--json", "--user", "nobody"],
                         tmp_path)
    try:
        assert bound == port
        deadline = time.monotonic() + 10
        while _uid(proc.pid) != nobody and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _uid(proc.pid) == nobody
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"as nobody")
        time.sleep(0.2)
        events, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(e["action"] == "payload" and e["attrs"]["payload_text"] == "as nobody"
               for e in events)
    assert "now running as nobody" in err


def test_unprivileged_with_cap_net_bind_service(open_dir: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to start an unprivileged process")
    nobody = _nobody()
    port = _free_low_port()
    tmp_path = open_dir
    checkout = Path(__file__).resolve().parents[2]
    closed = [p for p in (checkout, *checkout.parents) if not p.stat().st_mode & 0o001]
    if closed:
        pytest.skip(f"{closed[0]} is closed to other users, so 'nobody' cannot import "
                    "Portolan from this checkout")
    as_nobody = ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups"]
    args = [sys.executable, "-m", "portolan", "listen", "--port", str(port), "--bind",
            "127.0.0.1", "--json"]
    # without the capability the port is refused, and the error says what would help
    refused = subprocess.run([*as_nobody, *args], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path),
                                  "HOME": str(tmp_path),
                                  "XDG_CONFIG_HOME": str(tmp_path / ".config")},
                             check=False)
    assert refused.returncode == 2
    assert "CAP_NET_BIND_SERVICE" in refused.stderr
    with_cap = [*as_nobody, "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"]
    proc, bound = _start(args, tmp_path, prefix=with_cap)
    try:
        assert bound == port and _uid(proc.pid) == nobody
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"with a capability")
        time.sleep(0.2)
        events, _ = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(e["action"] == "payload" and e["attrs"]["payload_text"] == "with a capability"
               for e in events)
