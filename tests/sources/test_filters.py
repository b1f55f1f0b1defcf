"""Address filters of a source: private addresses, exclusion patterns."""

from __future__ import annotations

import pytest

from portolan.sources.filters import AddressFilter, parse_pattern


@pytest.mark.parametrize(("pattern", "inside", "outside"), [
    ("192.168.*.*", ["192.168.0.1", "192.168.255.255"], ["192.169.0.1", "10.192.168.1"]),
    ("10.0.0.1", ["10.0.0.1"], ["10.0.0.123", "10.0.0.10", "110.0.0.1"]),
    ("10.1.*.*", ["10.1.2.3"], ["10.10.2.3", "10.11.0.1"]),
    ("*.*.*.*", ["8.8.8.8"], ["::1"]),
    ("203.0.113.0/24", ["203.0.113.77"], ["203.0.114.1"]),
    ("2001:db8::/32", ["2001:db8::5"], ["2001:db9::5", "203.0.113.1"]),
])
def test_patterns_compare_whole_octets(pattern: str, inside: list[str],
                                       outside: list[str]) -> None:
    f = AddressFilter.from_options(False, [pattern])
    assert [ip for ip in inside if f.drops(ip)] == inside
    assert [ip for ip in outside if f.drops(ip)] == []


@pytest.mark.parametrize("bad", ["10.*.1.*", "1.2.3", "300.1.1.1", "example.org", "10.*"])
def test_bad_patterns_say_what_is_allowed(bad: str) -> None:
    with pytest.raises(ValueError, match=r"pattern|octet|address"):
        parse_pattern(bad)


def test_skip_private() -> None:
    f = AddressFilter.from_options(True, [])
    assert all(f.drops(ip) for ip in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "100.64.0.1",
                                      "169.254.1.1", "::1", "fe80::1", "fd00::1"))
    assert not any(f.drops(ip) for ip in ("8.8.8.8", "2a00:1450::1"))
    # text that is not an address is never dropped (it is kept and counted elsewhere)
    assert not f.drops("not-an-ip") and not f.drops(None)


def test_no_filter_keeps_everything() -> None:
    f = AddressFilter.from_options(False, [])
    assert not f.active and not f.drops("127.0.0.1")
