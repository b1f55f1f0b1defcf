"""The binary copy of the ASN table: the same table, renewed when the CSV files change,
ignored when damaged or when it cannot be written."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from portolan.enrich import asncache
from portolan.enrich.asn import AsnTable


def n(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


def csv_files(folder: Path, org: str = "Cloudflare, Inc.") -> tuple[Path, Path]:
    v4 = folder / "v4.csv"
    v4.write_text("\n".join([
        f"{n('1.0.0.0')},{n('1.0.0.255')},13335,\"{org}\"",
        f"{n('1.0.4.0')},{n('1.0.7.255')},38803,Gtelecom Pty Ltd",
        f"{n('8.8.8.0')},{n('8.8.8.255')},15169,",
        "not,a,number,x",
        f"{n('214.0.0.0')},{n('214.255.255.255')},749,Wide",
        f"{n('214.255.0.0')},{n('215.0.255.255')},721,Later é",
    ]) + "\n", encoding="utf-8")
    v6 = folder / "v6.csv"
    v6.write_text(
        f"{n('2001:4860::')},{n('2001:4860:ffff:ffff:ffff:ffff:ffff:ffff')},15169,Google LLC\n"
        f"{n('2c0f:ffd8::')},{n('2c0f:ffd8:ffff:ffff:ffff:ffff:ffff:ffff')},33762,\n",
        encoding="utf-8")
    return v4, v6


def same(a: AsnTable, b: AsnTable) -> bool:
    return (list(a.v4.starts), list(a.v4.ends), list(a.v4.asns), list(a.v4.orgs),
            list(a.v6.starts), list(a.v6.ends), list(a.v6.asns), list(a.v6.orgs),
            a.names, a.skipped, a.clipped, a.sources) == (
        list(b.v4.starts), list(b.v4.ends), list(b.v4.asns), list(b.v4.orgs),
        list(b.v6.starts), list(b.v6.ends), list(b.v6.asns), list(b.v6.orgs),
        b.names, b.skipped, b.clipped, b.sources)


def test_the_copy_is_the_same_table(tmp_path: Path) -> None:
    v4, v6 = csv_files(tmp_path)
    cache = tmp_path / "cache"
    first = asncache.load(cache, v4, v6)
    assert (cache / asncache.FILE).is_file()
    assert same(first, AsnTable.load(v4, v6))
    # the same size and time, other bytes: the copy answers, the CSV file is not read
    st = v4.stat()
    v4.write_bytes(b"#" * st.st_size)
    os.utime(v4, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = asncache.load(cache, v4, v6)
    assert same(again, first)
    hit = again.lookup(n("2001:4860:4860::8888"), 6)
    assert hit is not None and (hit.asn, hit.org) == (15169, "Google LLC")
    hit = again.lookup(n("214.255.1.1"), 4)
    assert hit is not None and (hit.asn, hit.org) == (721, "Later é")
    assert again.lookup(n("8.8.8.8"), 4) is not None


def test_changed_csv_files_are_read_again(tmp_path: Path) -> None:
    v4, v6 = csv_files(tmp_path)
    cache = tmp_path / "cache"
    asncache.load(cache, v4, v6)
    csv_files(tmp_path, org="Cloudflare, Inc. (renamed)")
    table = asncache.load(cache, v4, v6)
    hit = table.lookup(n("1.0.0.1"), 4)
    assert hit is not None and hit.org == "Cloudflare, Inc. (renamed)"
    again = asncache.load(cache, v4, v6)  # the copy was renewed
    assert same(again, table)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "names"])
def test_a_damaged_copy_is_ignored(tmp_path: Path, damage: str,
                                   caplog: pytest.LogCaptureFixture) -> None:
    v4, v6 = csv_files(tmp_path)
    cache = tmp_path / "cache"
    asncache.load(cache, v4, v6)
    path = cache / asncache.FILE
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * len(data))
    else:  # organisation numbers beyond the names
        path.write_bytes(data[: data.rindex(b"\0")])
    caplog.set_level("INFO")
    table = asncache.load(cache, v4, v6)
    assert same(table, AsnTable.load(v4, v6))
    assert str(path) in caplog.text


def test_no_copy_where_it_cannot_be_written(tmp_path: Path) -> None:
    v4, v6 = csv_files(tmp_path)
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    table = asncache.load(blocked / "cache", v4, v6)
    assert same(table, AsnTable.load(v4, v6))
    assert asncache.load(None, v4, v6).records == table.records
    assert list(tmp_path.glob("**/.asn-*")) == []


def test_missing_csv_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"absent\.csv"):
        asncache.load(tmp_path / "cache", tmp_path / "absent.csv", None)
