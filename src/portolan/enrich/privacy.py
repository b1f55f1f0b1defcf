"""Privacy: what an address looks like when it leaves the server.

Modes (``[privacy] mode``): ``full`` shows addresses as they are; ``truncate`` keeps the
network (/24 for IPv4, /48 for IPv6); ``hash`` replaces each address with a keyed hash
(HMAC-SHA-256 with a secret generated on first run and kept in the data directory). The
hash is stable across restarts and, unlike a plain hash, cannot be reversed by hashing
all 2^32 IPv4 addresses without the secret. Geography and ASN are kept in every mode.

The store always keeps the real address; privacy applies to what is shown and sent:
API responses, the live stream, the dashboard, metrics and alerts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal

import msgspec

from portolan.config import SECTIONS, ConfigError, Section
from portolan.event import Event

Mode = Literal["full", "truncate", "hash"]
SECRET_FILE = "privacy.key"  # noqa: S105 - a file name, not a secret


class PrivacySection(Section):
    """What addresses look like outside the server (API, dashboard, metrics, alerts)."""

    mode: Mode = "full"
    """``full`` (as they are), ``truncate`` (/24 and /48) or ``hash`` (keyed HMAC)."""
    secret_file: str = ""
    """File holding the hashing secret; empty: ``privacy.key`` in the data directory
    (created on first run, readable by its owner only)."""


SECTIONS.add("privacy", PrivacySection)


def load_secret(path: Path) -> bytes:
    """The secret in ``path``, created (32 random bytes, mode 0600) if it does not exist.
    Raises :class:`ConfigError` naming the file when it cannot be read or is not a secret."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read_secret(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the privacy secret: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    return secret


def _read_secret(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the privacy secret: {exc}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise ConfigError(f"{path}: not a privacy secret (64 hex digits expected); remove it "
                          "to make a new one (hashed addresses will change)")
    return secret


class Privacy:
    """Applies one privacy mode to addresses and events."""

    def __init__(self, mode: Mode, secret: bytes) -> None:
        self.mode = mode
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: PrivacySection, data_dir: Path) -> Privacy:
        path = Path(settings.secret_file) if settings.secret_file else data_dir / SECRET_FILE
        return cls(settings.mode, load_secret(path))

    def hash_ip(self, ip: str) -> str:
        """The keyed hash of an address (always available, whatever the mode): 16 hex."""
        return hmac.new(self._secret, ip.encode(), hashlib.sha256).hexdigest()[:16]

    def address(self, ip: str | None) -> str | None:
        """An address as it may be shown in this mode."""
        if ip is None or self.mode == "full":
            return ip
        if self.mode == "hash":
            return self.hash_ip(ip)
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return self.hash_ip(ip)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped  # ::ffff:a.b.c.d is an IPv4 address: keep its /24
        prefix = 24 if addr.version == 4 else 48
        return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))

    def event(self, event: Event) -> Event:
        """The event as it may be shown: a copy with its addresses transformed."""
        if self.mode == "full":
            return event
        return msgspec.structs.replace(
            event, src_ip=self.address(event.src_ip), dst_ip=self.address(event.dst_ip)
        )
