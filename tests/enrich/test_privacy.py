"""Privacy modes and the keyed hash's secret, on real files."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from pathlib import Path

import pytest

from portolan.config import ConfigError
from portolan.enrich.privacy import Privacy, PrivacySection, load_secret
from portolan.event import Event


def test_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "privacy.key"
    first = load_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret(path) == first  # the next start reads the same secret


def test_hash_is_stable_keyed_and_not_a_plain_hash(tmp_path: Path) -> None:
    settings = PrivacySection(mode="hash")
    one = Privacy.from_settings(settings, tmp_path)
    again = Privacy.from_settings(settings, tmp_path)  # a restart
    other = Privacy.from_settings(settings, tmp_path / "elsewhere")
    ip = "203.0.113.7"
    assert one.address(ip) == again.address(ip)
    assert one.address(ip) != other.address(ip)
    assert one.address(ip) != one.address("203.0.113.8")
    plain = hashlib.sha256(ip.encode()).hexdigest()
    assert one.address(ip) not in plain
    assert one.address(None) is None


def test_truncate_keeps_the_network() -> None:
    p = Privacy("truncate", b"k" * 32)
    assert p.address("203.0.113.77") == "203.0.113.0/24"
    assert p.address("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert p.address("::ffff:203.0.113.77") == "203.0.113.0/24"
    assert p.address("not an ip") == p.hash_ip("not an ip")  # never shown as written


def test_event_keeps_geography() -> None:
    ev = Event(ts=dt.datetime(2026, 11, 23, tzinfo=dt.UTC), src_ip="81.2.69.142",
               dst_ip="192.0.2.1", country="GB", city="London", asn=20712)
    shown = Privacy("hash", b"k" * 32).event(ev)
    assert shown.src_ip != ev.src_ip and shown.dst_ip != ev.dst_ip
    assert (shown.country, shown.city, shown.asn) == ("GB", "London", 20712)
    assert ev.src_ip == "81.2.69.142"  # the original is untouched
    assert Privacy("full", b"").event(ev) is ev


def test_damaged_secret_is_named(tmp_path: Path) -> None:
    path = tmp_path / "privacy.key"
    path.write_text("not hex at all\n")
    with pytest.raises(ConfigError, match=r"privacy\.key: not a privacy secret"):
        load_secret(path)
