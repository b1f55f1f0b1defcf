"""The ASN range table, read from real CSV files in the ip-location-db layout."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from portolan.enrich.asn import AsnTable


def n(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_lookup_finds_range_org_and_block(tmp_path: Path) -> None:
    v4 = write(tmp_path / "v4.csv", [
        f"{n('1.0.0.0')},{n('1.0.0.255')},13335,\"Cloudflare, Inc.\"",
        f"{n('1.0.4.0')},{n('1.0.7.255')},38803,Gtelecom Pty Ltd",
        f"{n('8.8.8.0')},{n('8.8.8.255')},15169,Google LLC",
    ])
    v6 = write(tmp_path / "v6.csv", [
        f"{n('2001:4860::')},{n('2001:4860:ffff:ffff:ffff:ffff:ffff:ffff')},15169,Google LLC",
    ])
    table = AsnTable.load(v4, v6)
    assert table.records == 4
    hit = table.lookup(n("1.0.0.1"), 4)
    assert hit is not None
    assert (hit.asn, hit.org, hit.network) == (13335, "Cloudflare, Inc.", "1.0.0.0/24")
    hit = table.lookup(n("1.0.5.9"), 4)
    assert hit is not None
    assert (hit.asn, hit.network) == (38803, "1.0.4.0/22")
    assert table.lookup(n("1.0.1.0"), 4) is None  # between ranges
    assert table.lookup(n("0.255.255.255"), 4) is None  # before the first
    assert table.lookup(n("9.0.0.0"), 4) is None  # after the last
    hit = table.lookup(n("2001:4860:4860::8888"), 6)
    assert hit is not None
    assert (hit.asn, hit.network) == (15169, "2001:4860::/32")


def test_block_of_a_range_that_is_not_one_cidr(tmp_path: Path) -> None:
    # 10.0.0.0 - 10.0.2.255 is a /23 plus a /24; each address gets the block it is in.
    v4 = write(tmp_path / "v4.csv", [f"{n('10.0.0.0')},{n('10.0.2.255')},64500,Example"])
    table = AsnTable.load(v4, None)
    low, high = table.lookup(n("10.0.1.7"), 4), table.lookup(n("10.0.2.7"), 4)
    assert low is not None and high is not None
    assert (low.network, high.network) == ("10.0.0.0/23", "10.0.2.0/24")


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    v4 = write(tmp_path / "v4.csv", [
        "not,a,number,x",
        f"{n('5.0.0.0')},{n('5.0.0.255')},64501,Good",
        "1,2",
        f"{n('6.0.0.0')},{n('5.0.0.0')},64502,end before start",
        f"{n('7.0.0.0')},{2**33},64503,beyond IPv4",
        "",
    ])
    table = AsnTable.load(v4, None)
    assert table.skipped == 5
    assert table.records == 1
    hit = table.lookup(n("5.0.0.9"), 4)
    assert hit is not None and hit.asn == 64501


def test_overlapping_ranges_are_clipped(tmp_path: Path) -> None:
    # the shape of a real overlap in the data: a wide range, then one that starts inside it
    v4 = write(tmp_path / "v4.csv", [
        f"{n('214.0.0.0')},{n('214.255.255.255')},749,Wide",
        f"{n('214.255.0.0')},{n('215.0.255.255')},721,Later",
    ])
    table = AsnTable.load(v4, None)
    assert table.clipped == 1
    a, b = table.lookup(n("214.1.0.0"), 4), table.lookup(n("214.255.1.1"), 4)
    assert a is not None and b is not None
    assert (a.asn, b.asn) == (749, 721)


def test_as_zero_means_unannounced(tmp_path: Path) -> None:
    v4 = write(tmp_path / "v4.csv", [f"{n('5.0.0.0')},{n('5.0.0.255')},0,"])
    assert AsnTable.load(v4, None).lookup(n("5.0.0.1"), 4) is None
