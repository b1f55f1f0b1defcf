"""Special-purpose addresses are labelled, whatever their notation."""

from __future__ import annotations

import ipaddress

import pytest

from portolan.enrich.special import LABELS, classify


@pytest.mark.parametrize(("ip", "label"), [
    ("10.1.2.3", "private"),
    ("172.31.255.255", "private"),
    ("192.168.0.1", "private"),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("169.254.10.1", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "cgnat"),
    ("100.127.255.254", "cgnat"),
    ("192.0.2.5", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "reserved"),
    ("::", "reserved"),
    ("255.255.255.255", "reserved"),
    ("fd00::5", "private"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:127.0.0.1", "loopback"),
])
def test_special_ranges_are_labelled(ip: str, label: str) -> None:
    assert label in LABELS
    assert classify(ipaddress.ip_address(ip)) == label


@pytest.mark.parametrize("ip", [
    "8.8.8.8", "81.2.69.142", "100.63.255.255", "100.128.0.0", "172.32.0.1", "11.0.0.1",
    "2001:4860:4860::8888", "2a00:1450:4001:800::200e", "::ffff:1.1.1.1",
])
def test_public_addresses_are_not(ip: str) -> None:
    assert classify(ipaddress.ip_address(ip)) is None
