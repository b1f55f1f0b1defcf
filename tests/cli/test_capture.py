"""``portolan capture``: files to JSON, text and the store; live on loopback; messages."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import portolan.cli.capture  # noqa: F401  (registers the command)
from portolan.cli.app import main
from portolan.event import decode
from portolan.packets.live import can_capture, default_interface
from portolan.store import Store


def _pcap(path: Path, frames: list[bytes]) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]
    for i, data in enumerate(frames):
        out.append(struct.pack("<IIII", 1700000000 + i, 0, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


def _ipv4_tcp(src: str, dst: str, sport: int, dport: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + tcp


def _run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_read_to_json(shared_data: Path) -> None:
    code, out, err = _run(["capture", "--read",
                           str(shared_data / "pcap" / "zeek_wikipedia.pcap"), "--json"])
    assert code == 0
    events = [decode(line) for line in out.splitlines()]
    assert sum(1 for e in events if e.action == "request" and e.service == "http") == 15
    assert "136 frames, 126 IP packets" in err
    assert "not IP: ethertype 0x0806 (ARP): 6" in err
    assert "not IP: 802.3 LLC (STP, CDP...): 4" in err


def test_read_to_the_store_twice_stores_once(shared_data: Path, sqlite_url: str) -> None:
    path = str(shared_data / "pcap" / "zeek_workshop_2011_browse.pcap")
    code, _, err = _run(["capture", "--read", path, "--db", sqlite_url])
    assert code == 0 and "23 events, 23 stored" in err  # 6 flows + 17 requests
    code, _, err = _run(["capture", "--read", path, "--db", sqlite_url])
    assert code == 0 and "23 events, 0 stored" in err
    store = Store(sqlite_url)
    assert store.count() == 23
    store.close()


def test_text_lines_escape_hostile_text(tmp_path: Path) -> None:
    evil = b"GET /\x1b[2J\x07pwn HTTP/1.1\r\nHost: ex\x1b]0;title\x07ample\r\n\r\n"
    path = _pcap(tmp_path / "evil.pcap", [
        _ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 8080, 0x02, b""),
        _ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 8080, 0x18, evil),
    ])
    code, out, _ = _run(["capture", "--read", str(path)])
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "GET ex\\x1b]0;title\\x07ample /\\x1b[2J\\x07pwn" in out
    assert "flow http  10.0.0.1:40000 -> 10.0.0.2:8080 outbound 2 pkts" in out


def test_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    code, _, err = _run(["capture", "--read", str(bad)])
    assert code == 2 and "not a pcap or pcapng file" in err and "Traceback" not in err
    code, _, err = _run(["capture", "--read", str(bad), "--json", "--db", "sqlite:///x.db"])
    assert code == 2 and "choose one of --json and --db" in err
    code, _, err = _run(["capture", "-i", "nosuch0"])
    assert code == 2 and "no network interface 'nosuch0'" in err


@pytest.mark.skipif(not can_capture() or default_interface() is None,
                    reason="needs CAP_NET_RAW and an interface that is up")
def test_says_which_interface_it_took(tmp_path: Path) -> None:
    env = dict(os.environ, PORTOLAN_DATA_DIR=str(tmp_path))
    # a filter that matches nothing: this test makes no traffic off the loopback
    proc = subprocess.Popen([sys.executable, "-m", "portolan", "capture", "--filter",
                             "tcp port 1 and tcp port 2"], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=30)
    assert "0 frames" in rest
    assert first.startswith(f"portolan: capturing on {default_interface()} "
                            "(the first interface that is up and is not loopback)")
    assert proc.returncode == 0


@pytest.mark.skipif(not can_capture(), reason="live capture needs root or CAP_NET_RAW")
def test_live_on_loopback_with_count(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    env = dict(os.environ, PORTOLAN_DATA_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "portolan", "capture", "-i", "lo",
                             "--filter", f"tcp port {port}", "-c", "3", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("portolan: capturing on lo; filter: tcp port")
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port)):  # SYN, SYN-ACK, ACK
            peer, _ = server.accept()
            peer.close()
        time.sleep(0.05)
    out, err = proc.communicate(timeout=30)
    server.close()
    assert proc.returncode == 0, err
    flows = [json.loads(line) for line in out.splitlines()]
    assert flows and flows[0]["action"] == "flow" and flows[0]["dst_port"] == port
    assert "3 frames, 3 IP packets" in err
