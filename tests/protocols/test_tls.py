"""ClientHello recognition, against real OpenSSL hellos and a published JA4 vector."""

from __future__ import annotations

import hashlib
import random
import ssl
import struct

import pytest

from portolan.protocols.tls import (
    ClientHello,
    hello_size,
    is_grease,
    looks_like_tls,
    parse_client_hello,
    parse_client_hello_message,
)


def _vec(size: int, data: bytes) -> bytes:
    return len(data).to_bytes(size, "big") + data


def _u16s(values: list[int]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def build_hello(
    ciphers: list[int],
    extensions: list[tuple[int, bytes]],
    *,
    version: int = 0x0303,
) -> bytes:
    """A ClientHello handshake message, laid out by hand as RFC 8446 section 4.1.2 says."""
    body = struct.pack("!H", version) + bytes(range(32)) + _vec(1, b"\x01" * 32)
    body += _vec(2, _u16s(ciphers)) + _vec(1, b"\x00")
    if extensions is not None:
        body += _vec(2, b"".join(struct.pack("!H", t) + _vec(2, d) for t, d in extensions))
    return b"\x01" + len(body).to_bytes(3, "big") + body


def records(message: bytes, size: int = 16384) -> bytes:
    """The message in TLS handshake records of at most ``size`` bytes each."""
    out = b""
    for i in range(0, len(message), size):
        chunk = message[i:i + size]
        out += b"\x16\x03\x01" + struct.pack("!H", len(chunk)) + chunk
    return out


def sni_ext(name: bytes) -> tuple[int, bytes]:
    return 0x0000, _vec(2, b"\x00" + _vec(2, name))


def alpn_ext(*values: bytes) -> tuple[int, bytes]:
    return 0x0010, _vec(2, b"".join(_vec(1, v) for v in values))


# A Chrome hello as published by a fingerprinting service, with its JA4 computed there:
# ciphers and extensions in the order sent (ja4_ro), plus the GREASE values Chrome adds.
CHROME_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
                  0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
CHROME_EXTS = [0x002D, 0x0033, 0x0010, 0xFE0D, 0x0017, 0x44CD, 0x0000, 0x000B, 0x000A,
               0x002B, 0xFF01, 0x0023, 0x0012, 0x0005, 0x000D, 0x001B]
CHROME_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
CHROME_JA4 = "t13d1516h2_8daaf6152771_d8a2da3f94cd"


def chrome_hello() -> bytes:
    exts: list[tuple[int, bytes]] = [(0x3A3A, b"")]
    for kind in CHROME_EXTS:
        if kind == 0x0000:
            exts.append(sni_ext(b"tls.browserleaks.com"))
        elif kind == 0x0010:
            exts.append(alpn_ext(b"h2", b"http/1.1"))
        elif kind == 0x002B:
            exts.append((kind, _vec(1, _u16s([0x7A7A, 0x0304, 0x0303]))))
        elif kind == 0x000D:
            exts.append((kind, _vec(2, _u16s(CHROME_SIGALGS))))
        elif kind == 0x000A:
            exts.append((kind, _vec(2, _u16s([0x2A2A, 0x11EC, 0x001D, 0x0017, 0x0018]))))
        elif kind == 0x000B:
            exts.append((kind, _vec(1, b"\x00")))
        else:
            exts.append((kind, b"\x00\x00"))
    exts.append((0x1A1A, b"\x00"))
    return build_hello([0x0A0A, *CHROME_CIPHERS], exts)


def test_published_chrome_vector_gives_its_ja4() -> None:
    hello = parse_client_hello(records(chrome_hello()))
    assert hello is not None
    assert hello.ja4 == CHROME_JA4
    assert hello.sni == "tls.browserleaks.com"
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.versions == ("TLS 1.3", "TLS 1.2")
    # JA3 text drops GREASE and keeps the order sent
    assert hello.ja3_string.startswith("771,4865-4866-4867-49195")
    assert ",4588-29-23-24," in hello.ja3_string
    assert hello.ja3 == hashlib.md5(hello.ja3_string.encode(), usedforsecurity=False).hexdigest()


def test_hello_split_over_records_and_segments() -> None:
    message = chrome_hello()
    data = records(message, size=100)
    assert hello_size(data[:3]) is None
    assert hello_size(data[:50]) is None
    assert hello_size(data) == len(data)
    for cut in (0, 5, 50, 105, len(data) - 1):
        assert parse_client_hello(data[:cut]) is None
    hello = parse_client_hello(data + b"\x17\x03\x03garbage after")
    assert hello is not None
    assert hello.ja4 == CHROME_JA4


def openssl_hello(server_name: str | None, alpn: list[str] | None,
                  maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> tuple[bytes, ssl.SSLContext]:
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    if server_name is None:
        ctx.check_hostname = False
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read(), ctx


def test_real_openssl_hello() -> None:
    data, ctx = openssl_hello("portolan.example", ["h2", "http/1.1"])
    assert looks_like_tls(data)
    assert hello_size(data) == len(data)
    hello = parse_client_hello(data)
    assert hello is not None
    assert hello.sni == "portolan.example"
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.versions == ("TLS 1.3", "TLS 1.2")
    # OpenSSL offers its configured suites plus the renegotiation SCSV (0x00ff)
    offered = {c["id"] & 0xFFFF for c in ctx.get_ciphers()} | {0x00FF}
    assert set(hello.ciphers) == offered
    ciphers = len(offered)
    assert hello.ja4.startswith(f"t13d{ciphers:02d}")
    assert hello.ja4[4:8].isdigit() and hello.ja4[8:10] == "h2"
    _, b, c = hello.ja4.split("_")
    assert len(b) == len(c) == 12
    raw_ciphers = hello.ja4_r.split("_")[1].split(",")
    assert raw_ciphers == sorted(raw_ciphers) and len(raw_ciphers) == ciphers
    assert hashlib.sha256(",".join(raw_ciphers).encode()).hexdigest()[:12] == b


def test_real_openssl_hello_without_sni_or_alpn_and_tls12_only() -> None:
    data, _ = openssl_hello(None, None, ssl.TLSVersion.TLSv1_2)
    hello = parse_client_hello(data)
    assert hello is not None
    assert hello.sni is None
    assert hello.alpn == ()
    assert hello.versions == ("TLS 1.2",)
    assert hello.ja4.startswith("t12i")
    assert hello.ja4[8:10] == "00"
    assert "tls_sni" not in hello.attrs() and "tls_alpn" not in hello.attrs()


def test_alpn_that_is_not_alphanumeric_uses_hex() -> None:
    msg = build_hello([0x1301], [alpn_ext(b"\xab\x01x")])
    hello = parse_client_hello_message(msg)
    assert hello is not None
    assert hello.ja4[8:10] == "a8"  # hex ab0178: first and last hex digit
    one = parse_client_hello_message(build_hello([0x1301], [alpn_ext(b"h")]))
    assert one is not None and one.ja4[8:10] == "hh"


def test_no_extensions_and_no_ciphers_hash_to_zeros() -> None:
    msg = build_hello([], [], version=0x0301)
    hello = parse_client_hello_message(msg)
    assert hello is not None
    assert hello.ja4 == "t10i000000_000000000000_000000000000"
    assert hello.versions == ("TLS 1.0",)


def test_quic_transport_letter_and_attrs() -> None:
    hello = parse_client_hello_message(chrome_hello(), transport="q")
    assert hello is not None
    assert hello.ja4 == "q" + CHROME_JA4[1:]
    attrs = hello.attrs()
    assert attrs["tls_sni"] == "tls.browserleaks.com"
    assert attrs["ja4"] == hello.ja4
    assert attrs["tls_versions"] == ["TLS 1.3", "TLS 1.2"]


def test_hostile_server_name_is_bounded_and_replaced() -> None:
    msg = build_hello([0x1301], [sni_ext(b"\xff\x1b[31m" + b"a" * 5000)])
    hello = parse_client_hello_message(msg)
    assert hello is not None and hello.sni is not None
    assert len(hello.sni) <= 257
    assert hello.sni.startswith("\ufffd")


def test_counts_are_capped_at_99() -> None:
    msg = build_hello(list(range(1, 200)), [(1000 + i, b"") for i in range(150)])
    hello = parse_client_hello_message(msg)
    assert hello is not None
    assert hello.ja4[4:8] == "9999"


def test_not_tls() -> None:
    assert not looks_like_tls(b"GET / HTTP/1.1\r\n")
    assert not looks_like_tls(b"\x16\x03")
    assert parse_client_hello(b"SSH-2.0-OpenSSH_9.2\r\n") is None
    assert hello_size(b"\x16\x03\x01\xff\xff\x01\xff\xff\xff") is None  # claims > 64 KiB
    # a server hello (type 2) is not a client hello
    server = b"\x02" + chrome_hello()[1:]
    assert parse_client_hello(records(server)) is None


def test_grease() -> None:
    assert all(is_grease(v) for v in (0x0A0A, 0x1A1A, 0xFAFA))
    assert not any(is_grease(v) for v in (0x0A1A, 0x1301, 0x0000))


def test_random_and_mutated_input_never_raises() -> None:
    rng = random.Random(6)
    good = records(chrome_hello())
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
            data = b"\x16\x03\x01" + data
        else:
            buf = bytearray(good)
            for _ in range(rng.randrange(1, 8)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            data = bytes(buf[: rng.randrange(len(buf) + 1)])
        hello_size(data)
        result = parse_client_hello(data)
        assert result is None or isinstance(result, ClientHello)
        if result is not None:
            assert len(result.ja4) == 36
