"""TLS ClientHello recognition: server name, ALPN, versions, JA4 and JA3 fingerprints.

Sans-I/O: bytes in, facts out. :func:`looks_like_tls` says whether the first bytes of a
stream are a TLS handshake record; :func:`hello_size` says how many bytes the complete
ClientHello needs (so a reader knows whether to wait for more); :func:`parse_client_hello`
turns the bytes of one or more handshake records into a :class:`ClientHello`, and
:func:`parse_client_hello_message` does the same for a bare handshake message (as QUIC
carries it in its CRYPTO frames).

Everything in a ClientHello is chosen by the client: the server name is bounded and
decoded with replacement characters, lists are bounded, and malformed input gives
``None``, never an exception.

JA4 follows FoxIO's specification (BSD 3-Clause): ``t13d1516h2_8daaf6152771_d8a2da3f94cd``
is protocol, highest offered version, SNI present (``d``) or not (``i``), number of cipher
suites and of extensions, first and last character of the first ALPN value; then the
truncated SHA-256 of the sorted cipher suites; then that of the sorted extensions (without
SNI and ALPN) followed by the signature algorithms in the order offered. GREASE values
(RFC 8701) are ignored everywhere. JA3 is the older MD5 fingerprint
(``version,ciphers,extensions,groups,point formats``), kept because many feeds still use it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ClientHello",
    "hello_size",
    "is_grease",
    "looks_like_tls",
    "parse_client_hello",
    "parse_client_hello_message",
    "version_name",
]

#: Largest ClientHello message read, in bytes. Real ones are under 2 KiB, a few KiB with
#: post-quantum key shares; a longer claim is treated as not TLS.
HELLO_MAX: Final = 65536
#: Longest server name kept (a DNS name is at most 253 characters).
SNI_MAX: Final = 256
#: Most ALPN values kept, and the longest one.
ALPN_MAX: Final = 16
ALPN_VALUE_MAX: Final = 64

_HANDSHAKE: Final = 22
_CLIENT_HELLO: Final = 1
_EXT_SNI: Final = 0x0000
_EXT_GROUPS: Final = 0x000A
_EXT_POINT_FORMATS: Final = 0x000B
_EXT_SIGALGS: Final = 0x000D
_EXT_ALPN: Final = 0x0010
_EXT_VERSIONS: Final = 0x002B

_VERSION_NAMES: Final = {
    0x0304: "TLS 1.3",
    0x0303: "TLS 1.2",
    0x0302: "TLS 1.1",
    0x0301: "TLS 1.0",
    0x0300: "SSL 3.0",
    0x0002: "SSL 2.0",
    0x0200: "SSL 2.0",
    0xFEFF: "DTLS 1.0",
    0xFEFD: "DTLS 1.2",
    0xFEFC: "DTLS 1.3",
}
_JA4_VERSIONS: Final = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0x0200: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


def is_grease(value: int) -> bool:
    """A GREASE value (RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa), which fingerprints ignore."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def version_name(value: int) -> str:
    """``TLS 1.3`` for 0x0304, and so on; ``0x7f1c`` for a value without a name."""
    return _VERSION_NAMES.get(value, f"0x{value:04x}")


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a client offered in its ClientHello. Values chosen by the client: bounded."""

    legacy_version: int
    """The version field of the message itself (0x0303 for TLS 1.2 and 1.3)."""
    ciphers: tuple[int, ...]
    """Cipher suites in the order offered, GREASE included."""
    extensions: tuple[int, ...]
    """Extension types in the order offered, GREASE included."""
    sni: str | None
    """The server name asked for (``server_name`` extension), or None."""
    alpn: tuple[str, ...]
    """Application protocols offered (``h2``, ``http/1.1``...), in order."""
    supported_versions: tuple[int, ...]
    """The ``supported_versions`` extension, GREASE included; empty when absent."""
    signature_algorithms: tuple[int, ...]
    """The ``signature_algorithms`` extension, in order, GREASE included."""
    groups: tuple[int, ...]
    """The ``supported_groups`` (elliptic curves) extension, in order, GREASE included."""
    point_formats: tuple[int, ...]
    """The ``ec_point_formats`` extension."""
    alpn_raw: bytes | None = None
    """The first ALPN value as bytes (JA4 uses its bytes when they are not alphanumeric)."""
    transport: str = "t"
    """``t`` for TLS over TCP, ``q`` for QUIC, ``d`` for DTLS (the first letter of JA4)."""

    @property
    def versions(self) -> tuple[str, ...]:
        """The TLS versions offered, by name, highest first (``("TLS 1.3", "TLS 1.2")``)."""
        offered = [v for v in self.supported_versions if not is_grease(v)]
        if not offered:
            offered = [self.legacy_version]
        return tuple(version_name(v) for v in sorted(set(offered), key=_version_rank,
                                                     reverse=True))

    @property
    def max_version(self) -> int:
        """The highest version offered (from ``supported_versions`` when present)."""
        offered = [v for v in self.supported_versions if not is_grease(v)]
        return max(offered, key=_version_rank) if offered else self.legacy_version

    @property
    def ja4(self) -> str:
        """The JA4 fingerprint (FoxIO), e.g. ``t13d1516h2_8daaf6152771_d8a2da3f94cd``."""
        a, ciphers, exts = self._ja4_parts()
        return f"{a}_{_sha12(ciphers)}_{_sha12(exts)}"

    @property
    def ja4_r(self) -> str:
        """JA4 before hashing (the "raw" form): the sorted lists themselves."""
        a, ciphers, exts = self._ja4_parts()
        return f"{a}_{ciphers}_{exts}"

    @property
    def ja3_string(self) -> str:
        """The JA3 text: ``version,ciphers,extensions,groups,point formats`` (decimal)."""

        def dashed(values: tuple[int, ...]) -> str:
            return "-".join(str(v) for v in values if not is_grease(v))

        return ",".join([
            str(self.legacy_version), dashed(self.ciphers), dashed(self.extensions),
            dashed(self.groups), "-".join(str(p) for p in self.point_formats),
        ])

    @property
    def ja3(self) -> str:
        """The JA3 fingerprint: MD5 of :attr:`ja3_string`."""
        return hashlib.md5(self.ja3_string.encode(), usedforsecurity=False).hexdigest()

    def attrs(self) -> dict[str, Any]:
        """The facts as event ``attrs``: ``tls_sni``, ``tls_alpn``, ``tls_versions``,
        ``ja4``, ``ja3`` (the names listener and capture share)."""
        out: dict[str, Any] = {
            "tls_versions": list(self.versions),
            "ja4": self.ja4,
            "ja3": self.ja3,
        }
        if self.sni is not None:
            out["tls_sni"] = self.sni
        if self.alpn:
            out["tls_alpn"] = list(self.alpn)
        return out

    def _ja4_parts(self) -> tuple[str, str, str]:
        ciphers = sorted(f"{c:04x}" for c in self.ciphers if not is_grease(c))
        exts = [e for e in self.extensions if not is_grease(e)]
        version = _JA4_VERSIONS.get(self.max_version, "00")
        sni = "d" if _EXT_SNI in exts else "i"
        a = (f"{self.transport}{version}{sni}{min(len(ciphers), 99):02d}"
             f"{min(len(exts), 99):02d}{_ja4_alpn(self.alpn_raw)}")
        hashed = sorted(f"{e:04x}" for e in exts if e not in (_EXT_SNI, _EXT_ALPN))
        sigs = [f"{s:04x}" for s in self.signature_algorithms if not is_grease(s)]
        ext_text = ",".join(hashed)
        if sigs:
            ext_text += "_" + ",".join(sigs)
        return a, ",".join(ciphers), ext_text


def _version_rank(value: int) -> int:
    # DTLS counts down (0xfeff is 1.0, 0xfefd 1.2): rank it above nothing, by its own order
    if value >= 0xFE00:
        return 0x10000 - value
    return value


def _ja4_alpn(first: bytes | None) -> str:
    if not first:
        return "00"
    a, b = first[0], first[-1]
    if _alnum(a) and _alnum(b):
        return chr(a) + chr(b)
    text = first.hex()
    return text[0] + text[-1]


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _sha12(text: str) -> str:
    if not text:
        return "000000000000"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def looks_like_tls(data: bytes) -> bool:
    """Whether ``data`` starts like a TLS handshake record (content type 22, version 3.x).

    Needs only the first three bytes; says nothing about whether the rest is well formed.
    """
    return len(data) >= 3 and data[0] == _HANDSHAKE and data[1] == 3 and data[2] <= 4


def hello_size(data: bytes) -> int | None:
    """How many bytes of records hold the whole first handshake message, when the bytes
    so far tell (``None`` when they do not yet, or when this is not TLS).

    A reader waits until it has that many bytes (within its own limits) before calling
    :func:`parse_client_hello`. A ClientHello usually fits one record; when it is split
    over several, the answer grows as more records arrive.
    """
    if not looks_like_tls(data):
        return None
    pos = 0
    message: bytes = b""
    while pos + 5 <= len(data):
        if data[pos] != _HANDSHAKE:
            return None
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        end = pos + 5 + length
        message += data[pos + 5:end]
        if len(message) >= 4:
            need = 4 + int.from_bytes(message[1:4], "big")
            if need > HELLO_MAX:
                return None
            if len(message) >= need or end > len(data):
                return end if len(message) >= need else None
        elif end > len(data):
            return None
        pos = end
    return None


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of ``data`` (TLS records as sent over TCP), or None
    when the bytes are not one, or not all of one yet."""
    if not looks_like_tls(data):
        return None
    pos = 0
    message = bytearray()
    need: int | None = None
    while pos + 5 <= len(data):
        if data[pos] != _HANDSHAKE or data[pos + 1] != 3:
            return None
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        message += data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if need is None and len(message) >= 4:
            if message[0] != _CLIENT_HELLO:
                return None
            need = 4 + int.from_bytes(message[1:4], "big")
            if need > HELLO_MAX:
                return None
        if need is not None and len(message) >= need:
            return parse_client_hello_message(bytes(message[:need]))
    return None


def parse_client_hello_message(message: bytes, transport: str = "t") -> ClientHello | None:
    """A ClientHello from one handshake message (type byte, 3-byte length, body), as
    found inside TLS records or QUIC CRYPTO frames; ``transport`` is ``t``, ``q`` or
    ``d`` (the first letter of JA4). None when the message is malformed."""
    if len(message) < 4 or message[0] != _CLIENT_HELLO:
        return None
    length = int.from_bytes(message[1:4], "big")
    if length > HELLO_MAX or len(message) < 4 + length:
        return None
    try:
        return _parse_body(_Reader(message[4:4 + length]), transport)
    except _Malformed:
        return None


class _Malformed(Exception):
    pass


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise _Malformed
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vector(self, size_bytes: int) -> bytes:
        return self.take(int.from_bytes(self.take(size_bytes), "big"))

    def left(self) -> int:
        return len(self.data) - self.pos


def _u16_list(data: bytes) -> tuple[int, ...]:
    if len(data) % 2:
        raise _Malformed
    return tuple(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))


def _parse_body(r: _Reader, transport: str) -> ClientHello:
    legacy_version = r.u16()
    r.take(32)  # random
    r.vector(1)  # session id
    if transport == "d":
        r.vector(1)  # DTLS cookie
    ciphers = _u16_list(r.vector(2))
    r.vector(1)  # compression methods
    extensions: list[int] = []
    sni: str | None = None
    alpn: list[str] = []
    alpn_raw: bytes | None = None
    versions: tuple[int, ...] = ()
    sigalgs: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    if r.left():
        block = _Reader(r.vector(2))
        while block.left():
            kind = block.u16()
            body = _Reader(block.vector(2))
            extensions.append(kind)
            if kind == _EXT_SNI:
                sni = _server_name(body)
            elif kind == _EXT_ALPN:
                alpn_raw, alpn = _alpn(body)
            elif kind == _EXT_VERSIONS:
                versions = _u16_list(body.vector(1))
            elif kind == _EXT_SIGALGS:
                sigalgs = _u16_list(body.vector(2))
            elif kind == _EXT_GROUPS:
                groups = _u16_list(body.vector(2))
            elif kind == _EXT_POINT_FORMATS:
                point_formats = tuple(body.vector(1))
    return ClientHello(
        legacy_version=legacy_version,
        ciphers=ciphers,
        extensions=tuple(extensions),
        sni=sni,
        alpn=tuple(alpn),
        supported_versions=versions,
        signature_algorithms=sigalgs,
        groups=groups,
        point_formats=point_formats,
        alpn_raw=alpn_raw,
        transport=transport,
    )


def _server_name(body: _Reader) -> str | None:
    if not body.left():
        return ""  # a server's empty acknowledgement; in a ClientHello, malformed but seen
    names = _Reader(body.vector(2))
    while names.left():
        kind = names.u8()
        name = names.vector(2)
        if kind == 0:
            text = name[:SNI_MAX].decode("ascii", "replace")
            return text + ("…" if len(name) > SNI_MAX else "")
    return None


def _alpn(body: _Reader) -> tuple[bytes | None, list[str]]:
    values = _Reader(body.vector(2))
    first: bytes | None = None
    out: list[str] = []
    while values.left():
        value = values.vector(1)
        if first is None:
            first = value
        if len(out) < ALPN_MAX:
            out.append(value[:ALPN_VALUE_MAX].decode("ascii", "replace"))
    return first, out
