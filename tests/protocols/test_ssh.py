"""SSH banner and HASSH, against what a real OpenSSH client sends and says it sent."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import threading

import pytest

from portolan.protocols.ssh import (
    kexinit_size,
    looks_like_ssh,
    parse_banner,
    parse_kexinit,
)


def _namelist(text: str) -> bytes:
    return struct.pack("!I", len(text)) + text.encode()


def kexinit_packet(lists: list[str]) -> bytes:
    """A KEXINIT binary packet (RFC 4253 sections 6 and 7.1), padded to 8 bytes."""
    payload = bytes([20]) + os.urandom(16) + b"".join(_namelist(n) for n in lists)
    payload += b"\x00" + b"\x00" * 4
    pad = 8 - ((len(payload) + 5) % 8)
    if pad < 4:
        pad += 8
    return struct.pack("!IB", len(payload) + pad + 1, pad) + payload + b"\x00" * pad


SERVER_LISTS = ["curve25519-sha256", "ssh-ed25519", "aes128-ctr", "aes128-ctr",
                "hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""]


def openssh_client_bytes() -> tuple[bytes, str]:
    """What `ssh` sends to a server that answers with a banner and a KEXINIT, and what it
    logged (with -vvv) about its own proposal."""
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.skip("the OpenSSH client (ssh) is not installed")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Test\r\n" + kexinit_packet(SERVER_LISTS))
            conn.settimeout(5)
            while True:
                banner = parse_banner(bytes(got))
                if banner and kexinit_size(bytes(got[banner.end:])) is not None:
                    size = kexinit_size(bytes(got[banner.end:]))
                    assert size is not None
                    if len(got) >= banner.end + size:
                        break
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    break
                if not data:
                    break
                got.extend(data)

    thread = threading.Thread(target=serve)
    thread.start()
    proc = subprocess.run(
        [ssh, "-vvv", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-p", str(port), "probe@127.0.0.1"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    thread.join()
    server.close()
    return bytes(got), proc.stderr


def _proposal(log: str) -> dict[str, str]:
    """The client's own proposal, from its debug log."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if "local client KEXINIT proposal" in line)
    out: dict[str, str] = {}
    for line in lines[start + 1:start + 12]:
        key, _, value = line.removeprefix("debug2: ").partition(": ")
        out[key] = value.strip()
    return out


def test_real_openssh_client_banner_and_hassh() -> None:
    data, log = openssh_client_bytes()
    assert looks_like_ssh(data)
    banner = parse_banner(data)
    assert banner is not None
    assert banner.proto == "2.0"
    assert banner.software.startswith("OpenSSH_")
    kex = parse_kexinit(data[banner.end:])
    assert kex is not None
    proposal = _proposal(log)
    expected = ";".join([proposal["KEX algorithms"], proposal["ciphers ctos"],
                         proposal["MACs ctos"], proposal["compression ctos"]])
    assert kex.hassh_string == expected
    assert kex.hassh == hashlib.md5(expected.encode(), usedforsecurity=False).hexdigest()
    assert kex.host_key == proposal["host key algorithms"]
    assert kex.attrs()["hassh"] == kex.hassh


def test_server_kexinit_gives_hassh_server() -> None:
    kex = parse_kexinit(kexinit_packet(SERVER_LISTS))
    assert kex is not None
    text = "curve25519-sha256;aes128-ctr;hmac-sha2-256;none"
    assert kex.hassh_server == hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def test_banner_forms() -> None:
    b = parse_banner(b"SSH-2.0-libssh2_1.10.0\r\nrest")
    assert b is not None
    assert (b.proto, b.software, b.comments, b.end) == ("2.0", "libssh2_1.10.0", None, 24)
    b = parse_banner(b"SSH-1.99-OpenSSH_3.9p1 FreeBSD-20040419 extra\n")
    assert b is not None
    assert (b.proto, b.software, b.comments) == ("1.99", "OpenSSH_3.9p1", "FreeBSD-20040419 extra")
    assert b.attrs()["ssh_software"] == "OpenSSH_3.9p1"


def test_incomplete_hostile_and_not_ssh() -> None:
    assert parse_banner(b"SSH-2.0-OpenSSH") is None  # no line ending yet
    assert parse_banner(b"SSH-2.0-" + b"A" * 400 + b"\r\n") is None  # longer than RFC allows
    assert parse_banner(b"GET / HTTP/1.1\r\n") is None
    assert parse_banner(b"SSH-\r\n") is None
    hostile = parse_banner(b"SSH-2.0-\xff\x1b[2J evil\r\n")
    assert hostile is not None and hostile.software.startswith("\ufffd")
    assert kexinit_size(b"\x00\x00") is None
    assert kexinit_size(b"\xff\xff\xff\xff") is None
    assert parse_kexinit(b"\x00\x00\x00\x0c\x04" + b"\x14" + b"\x00" * 10) is None
    packet = kexinit_packet(SERVER_LISTS)
    for cut in range(len(packet)):
        assert parse_kexinit(packet[:cut]) is None
    broken = bytearray(packet)
    broken[5 + 17] = 0xFF  # first name-list length far beyond the packet
    assert parse_kexinit(bytes(broken)) is None
