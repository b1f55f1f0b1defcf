"""Reading .mmdb files: MaxMind's real test databases, broken files, replacement on disk."""

from __future__ import annotations

import ipaddress
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import maxminddb
import pytest

from portolan.enrich.mmdb import GeoipError, MmdbFile, extract
from portolan.enrich.tree import first_networks


def test_city_database(mmdb_dir: Path) -> None:
    db = MmdbFile(mmdb_dir / "GeoIP2-City-Test.mmdb")
    assert (db.provides_place, db.provides_asn) == (True, False)
    assert db.database_type == "GeoIP2-City"
    hit = db.lookup("81.2.69.142")
    assert hit is not None
    part, prefix = hit
    assert (part.country, part.country_name, part.city) == ("GB", "United Kingdom", "London")
    assert part.lat is not None and 51 < part.lat < 52
    assert part.accuracy_km is not None
    assert prefix <= 32
    assert db.lookup("8.8.4.4") is None
    assert db.label.startswith("GeoIP2-City-Test@")


def test_asn_database(mmdb_dir: Path) -> None:
    db = MmdbFile(mmdb_dir / "GeoLite2-ASN-Test.mmdb")
    assert (db.provides_place, db.provides_asn) == (False, True)
    hit = db.lookup("1.128.0.1")
    assert hit is not None
    part, prefix = hit
    assert (part.asn, part.as_org, prefix) == (1221, "Telstra Pty Ltd", 11)


def test_country_database_has_no_city(mmdb_dir: Path) -> None:
    hit = MmdbFile(mmdb_dir / "GeoLite2-Country-Test.mmdb").lookup("81.2.69.142")
    assert hit is not None
    assert (hit[0].country, hit[0].city, hit[0].lat) == ("GB", None, None)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GeoipError, match=r"nothere\.mmdb: no such file"):
        MmdbFile(tmp_path / "nothere.mmdb")


def test_not_an_mmdb_is_named(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-City.mmdb"
    path.write_bytes(b"<html>rate limited</html>\n" * 100)
    with pytest.raises(GeoipError, match=r"GeoLite2-City\.mmdb: not a usable MaxMind DB"):
        MmdbFile(path)


def test_truncated_file_is_refused(mmdb_dir: Path, tmp_path: Path) -> None:
    data = (mmdb_dir / "GeoIP2-City-Test.mmdb").read_bytes()
    path = tmp_path / "cut.mmdb"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GeoipError, match=r"cut\.mmdb"):
        MmdbFile(path)


@pytest.mark.parametrize("name", ["GeoIP2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb",
                                  "GeoLite2-Country-Test.mmdb"])
def test_first_networks_are_the_readers_own(mmdb_dir: Path, name: str) -> None:
    path = mmdb_dir / name
    reader = maxminddb.open_database(str(path))
    meta = reader.metadata()
    theirs = [network for network, _ in itertools.islice(reader, 50)]
    ours = first_networks(path, meta.node_count, meta.record_size, meta.ip_version)
    assert len(ours) == 50
    assert meta.ip_version == 6  # IPv4 networks come as ::a.b.c.d/96+n
    assert [ipaddress.IPv4Network((a, p - 96)) if a >> 32 == 0 and p >= 96 else
            ipaddress.IPv6Network((a, p)) for a, p in ours] == theirs


def test_a_search_tree_that_loops_is_refused(mmdb_dir: Path, tmp_path: Path) -> None:
    """Records that lead back up the tree before any data: a clear error, from a walk
    that ends (maxminddb's walk through every network corrupts its memory on it, and the
    process aborts: hence a second process here, whatever happens)."""
    data = bytearray((mmdb_dir / "GeoLite2-Country-Test.mmdb").read_bytes())

    def point(node: int, to: int) -> None:  # both records of a node (28 bits each)
        data[node * 7:node * 7 + 7] = bytes([*to.to_bytes(3, "big"), (to >> 20 & 0xF0) | (
            to >> 24), *to.to_bytes(3, "big")])

    for node in range(10):
        point(node, node + 1)
    point(10, 5)
    path = tmp_path / "loop.mmdb"
    path.write_bytes(bytes(data))
    code = ("import sys; from pathlib import Path; from portolan.enrich.mmdb import MmdbFile\n"
            "MmdbFile(Path(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr  # an exception, not an abort (-6)
    assert "GeoipError: " + str(path) + ": damaged MaxMind DB: its search tree leads to no" \
        " data" in done.stderr


def test_replaced_file_is_reopened(mmdb_dir: Path, tmp_path: Path) -> None:
    live = tmp_path / "geo.mmdb"
    shutil.copy(mmdb_dir / "GeoLite2-Country-Test.mmdb", live)
    db = MmdbFile(live)
    assert db.changed() is False
    hit = db.lookup("81.2.69.142")
    assert hit is not None and hit[0].city is None
    new = tmp_path / "new.mmdb"
    shutil.copy(mmdb_dir / "GeoIP2-City-Test.mmdb", new)
    os.replace(new, live)  # how `geoip import` and geoipupdate replace a file
    assert db.changed() is True
    hit = db.lookup("81.2.69.142")
    assert hit is not None and hit[0].city == "London"
    assert db.database_type == "GeoIP2-City"


def test_broken_replacement_keeps_the_old_database(mmdb_dir: Path, tmp_path: Path) -> None:
    live = tmp_path / "geo.mmdb"
    shutil.copy(mmdb_dir / "GeoIP2-City-Test.mmdb", live)
    db = MmdbFile(live)
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"\x00" * 4096)
    os.replace(broken, live)
    assert db.changed() is False
    hit = db.lookup("81.2.69.142")
    assert hit is not None and hit[0].city == "London"


def test_layouts_of_other_vendors() -> None:
    # ip-location-db / DB-IP Lite builds: flat keys
    flat = extract({"city": "Sydney", "country_code": "AU", "latitude": -33.87,
                    "longitude": 151.21, "state1": "New South Wales"})
    assert (flat.country, flat.city, flat.region, flat.lat) == ("AU", "Sydney",
                                                                 "New South Wales", -33.87)
    # IPinfo Lite: "AS" prefixed numbers, country name beside the code
    ipinfo = extract({"asn": "AS15169", "as_name": "Google LLC", "country_code": "US",
                      "country": "United States", "continent": "North America"})
    assert (ipinfo.asn, ipinfo.as_org, ipinfo.country, ipinfo.country_name) == (
        15169, "Google LLC", "US", "United States")
    # nonsense is not trusted
    odd = extract({"country_code": "USA", "latitude": 123.0, "longitude": 5.0, "asn": "ASx"})
    assert (odd.country, odd.lat, odd.lon, odd.asn) == (None, None, None, None)
    assert extract(["not", "a", "map"]).has_place is False
