"""What the listener makes of first payloads: whole yet, and what protocol."""

from __future__ import annotations

import ssl

import pytest

from portolan.sources.listener_recognise import (
    TEXT_FORM_MAX,
    describe,
    payload_complete,
)


def openssl_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="example.net")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_tls_is_whole_when_its_records_are() -> None:
    hello = openssl_hello()
    assert not payload_complete(hello[:3])
    assert not payload_complete(hello[:100])
    assert payload_complete(hello)
    service, attrs = describe(hello)
    assert service == "tls"
    assert attrs["tls_sni"] == "example.net"
    assert attrs["protocol"] == "tls"
    assert "first_bytes" not in attrs


def test_http_is_whole_at_the_end_of_its_head() -> None:
    head = b"POST /cgi-bin/x HTTP/1.1\r\nHost: h\r\nUser-Agent: Mozi\r\n"
    assert not payload_complete(head)
    assert payload_complete(head + b"\r\n")
    assert payload_complete(b"GET / HTTP/1.0\n\n")
    service, attrs = describe(head + b"\r\nbody")
    assert service == "http"
    assert attrs["method"] == "POST" and attrs["host"] == "h"
    assert attrs["user_agent"] == "Mozi" and attrs["path"] == "/cgi-bin/x"


def test_ssh_banner_and_kexinit_when_replying() -> None:
    banner = b"SSH-2.0-Go\r\n"
    assert not payload_complete(b"SSH-2.0-G")
    assert payload_complete(banner)
    assert not payload_complete(banner, want_kexinit=True)
    packet = bytes.fromhex("0000000c0a14") + b"\x00" * 9  # 4 + 12 bytes needed; 15 there
    assert not payload_complete(banner + packet, want_kexinit=True)
    assert payload_complete(banner + packet + b"\x00", want_kexinit=True)
    service, attrs = describe(banner)
    assert service == "ssh" and attrs["ssh_software"] == "Go"
    assert "hassh" not in attrs


def test_unknown_payload_keeps_its_first_bytes_and_text() -> None:
    data = b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00"
    assert not payload_complete(data)  # waits for the pause, close or cap
    service, attrs = describe(data)
    assert service == ""
    assert attrs["protocol"] == "unknown"
    assert attrs["first_bytes"] == data[:16].hex()
    assert attrs["payload_text"].startswith("\x03\x00")


def test_text_form_is_bounded_and_lossy() -> None:
    _, attrs = describe(b"\xff" * 5000)
    assert len(attrs["payload_text"]) == TEXT_FORM_MAX
    assert attrs["payload_text"][0] == "\ufffd"


def test_unknown_method_is_not_http() -> None:
    assert not payload_complete(b"HELLO / HTTP/1.1\r\n\r\n")
    service, attrs = describe(b"HELLO / HTTP/1.1\r\n\r\n")
    assert service == "" and attrs["protocol"] == "unknown"
