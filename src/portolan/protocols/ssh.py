"""SSH recognition: the identification line (``SSH-2.0-OpenSSH_9.2p1 Debian-2``) and the
HASSH fingerprint of a client's KEXINIT.

Sans-I/O: bytes in, facts out. :func:`parse_banner` reads the identification line a
client sends first (RFC 4253 section 4.2); :func:`parse_kexinit` reads the key exchange
offer that follows it (section 7.1), from which :attr:`KexInit.hassh` is computed: the MD5
of ``kex;ciphers;macs;compression`` as the client offered them (Salesforce's HASSH).
A client sends its KEXINIT only once it has seen the server's identification line, so a
listener gets one only when it replies with a banner.

Banners are chosen by the peer: decoded with replacement characters and bounded.
Malformed input gives ``None``, never an exception.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "KexInit",
    "SshBanner",
    "kexinit_size",
    "looks_like_ssh",
    "parse_banner",
    "parse_kexinit",
]

#: Longest identification line (RFC 4253: 255 characters including CR LF).
BANNER_MAX: Final = 255
#: Largest KEXINIT packet read. Real ones are 1-2 KiB (post-quantum names included).
KEXINIT_MAX: Final = 35000
#: Longest name list kept, in characters.
NAMELIST_MAX: Final = 4096

_MSG_KEXINIT: Final = 20


def looks_like_ssh(data: bytes) -> bool:
    """Whether ``data`` starts like an SSH identification line."""
    return data[:4] == b"SSH-"


@dataclass(frozen=True, slots=True)
class SshBanner:
    """An SSH identification line: ``SSH-<proto>-<software> <comments>``."""

    proto: str
    """Protocol version, ``2.0`` (or ``1.99``, ``1.5`` for old clients)."""
    software: str
    """Software and version, ``OpenSSH_9.2p1``, ``libssh2_1.10.0``, ``Go``..."""
    comments: str | None
    """What follows the software after a space (``Debian-2``), or None."""
    line: str
    """The whole line without its line ending."""
    end: int
    """Offset just after the line ending in the bytes it was read from (where the binary
    packets begin)."""

    def attrs(self) -> dict[str, Any]:
        """The facts as event ``attrs``: ``ssh_banner``, ``ssh_software``, ``ssh_proto``."""
        return {"ssh_banner": self.line, "ssh_software": self.software, "ssh_proto": self.proto}


def parse_banner(data: bytes) -> SshBanner | None:
    """The identification line at the start of ``data``; None when there is not a whole
    one (no line ending within :data:`BANNER_MAX` bytes) or it is not SSH."""
    if not looks_like_ssh(data):
        return None
    newline = data.find(b"\n", 0, BANNER_MAX + 1)
    if newline < 0:
        return None
    raw = data[:newline].rstrip(b"\r")
    text = raw.decode("utf-8", "replace")
    parts = text.split("-", 2)
    if len(parts) < 3 or not parts[1]:
        return None
    software, _, comments = parts[2].partition(" ")
    return SshBanner(
        proto=parts[1],
        software=software,
        comments=comments or None,
        line=text,
        end=newline + 1,
    )


@dataclass(frozen=True, slots=True)
class KexInit:
    """The algorithm lists of a KEXINIT message, as offered (comma-separated names)."""

    kex: str
    host_key: str
    ciphers_c2s: str
    ciphers_s2c: str
    macs_c2s: str
    macs_s2c: str
    compression_c2s: str
    compression_s2c: str

    @property
    def hassh_string(self) -> str:
        """``kex;ciphers;macs;compression`` (client to server): what :attr:`hassh` hashes."""
        return ";".join([self.kex, self.ciphers_c2s, self.macs_c2s, self.compression_c2s])

    @property
    def hassh(self) -> str:
        """HASSH of a client's KEXINIT: MD5 of :attr:`hassh_string`."""
        return _md5(self.hassh_string)

    @property
    def hassh_server(self) -> str:
        """HASSHServer of a server's KEXINIT (the server-to-client lists)."""
        return _md5(";".join([self.kex, self.ciphers_s2c, self.macs_s2c,
                              self.compression_s2c]))

    def attrs(self) -> dict[str, Any]:
        """The facts as event ``attrs``: ``hassh`` and the algorithms it is made of."""
        return {"hassh": self.hassh, "hassh_algorithms": self.hassh_string}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def kexinit_size(data: bytes) -> int | None:
    """Bytes needed for the whole binary packet at the start of ``data`` (the bytes after
    the identification line), when its header is there; None when it is not, or claims
    more than :data:`KEXINIT_MAX`."""
    if len(data) < 4:
        return None
    length = int.from_bytes(data[:4], "big")
    if length < 2 or length > KEXINIT_MAX:
        return None
    return 4 + length


def parse_kexinit(data: bytes) -> KexInit | None:
    """The KEXINIT in the first binary packet of ``data`` (the bytes that follow the
    identification line, unencrypted as they are before the first key exchange)."""
    size = kexinit_size(data)
    if size is None or len(data) < size:
        return None
    padding = data[4]
    payload = data[5:size - padding]
    if len(payload) < 17 or payload[0] != _MSG_KEXINIT:
        return None
    pos = 17  # message type + 16 bytes of cookie
    lists: list[str] = []
    for _ in range(8):
        if pos + 4 > len(payload):
            return None
        n = int.from_bytes(payload[pos:pos + 4], "big")
        pos += 4
        if pos + n > len(payload):
            return None
        lists.append(payload[pos:pos + n][:NAMELIST_MAX].decode("ascii", "replace"))
        pos += n
    return KexInit(*lists)
