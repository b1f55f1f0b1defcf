"""Batch lookups give exactly the answers of one lookup per address, and of maxminddb.

The batch path (numpy: search trees, the ASN table, templates) is checked against the
single-address path, which asks ``maxminddb`` for each address, on the built-in data and
on MaxMind's test databases, for random addresses and for the edges of networks, ranges
and special-purpose blocks, IPv6, and text that is not an address.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
from pathlib import Path

import maxminddb
import numpy as np
import pytest

from portolan.enrich.answer import INVALID, Columns
from portolan.enrich.asn import AsnTable, _block
from portolan.enrich.batch import (
    Batch,
    _block_bits,
    _networks,
    _Ranges,
    _Templates,
    _trailing_zeros,
)
from portolan.enrich.builtin import CITY_PACKAGE
from portolan.enrich.geoip import Answer, GeoIP, GeoipSection
from portolan.enrich.special import V4_RANGES
from portolan.enrich.tree import SearchTree

ODD = ["", " ", "8.8.8.8 ", " 8.8.8.8", "08.8.8.8", "8.8.8", "8.8.8.8.8", "256.1.1.1",
       "1.2.3.-4", "1.2.3.4\x00", "::ffff:8.8.8.8", "::ffff:10.0.0.1", "::8.8.8.8", "::1", "::",
       "2001:4860:4860::8888", "2a00:1450:4001:82a::200e", "fe80::1%eth0", "2001:db8::1",
       "not an address", "0x7f.0.0.1", "127.1", "1.2.3.4/24", "\u0661.2.3.4"]


def rng_v4(rng: random.Random, n: int) -> list[str]:
    return [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(n)]


def edges(numbers: list[int]) -> list[str]:
    """Each address, and the ones just before and after it."""
    out = []
    for n in numbers:
        for m in (n - 1, n, n + 1):
            if 0 <= m <= 0xFFFFFFFF:
                out.append(str(ipaddress.IPv4Address(m)))
    return out


def in_batches(geo: GeoIP, ips: list[str], size: int = 1000) -> list[Answer]:
    out: list[Answer] = []
    for start in range(0, len(ips), size):
        out += geo.lookup_many(ips[start:start + size])
    return out


def assert_same(geo: GeoIP, ips: list[str]) -> list[Answer]:
    batch = in_batches(geo, ips)
    assert geo._batch is not None and geo._batch.trees is not None  # the batch path ran
    single = [geo._lookup(ip) for ip in ips]
    wrong = [(ip, a, b) for ip, a, b in zip(ips, batch, single, strict=True) if a != b]
    assert wrong == []
    return batch


@pytest.fixture(scope="module")
def builtin_geo() -> GeoIP:
    from portolan.enrich.builtin import find_dir

    root = find_dir()
    if root is None:
        pytest.skip("built-in GeoIP data absent: run scripts/bootstrap (needs npm)")
    return GeoIP.from_settings(GeoipSection(builtin_dir=str(root)), Path("/nonexistent"))


def test_builtin_data_random_and_edge_addresses(builtin_geo: GeoIP) -> None:
    rng = random.Random(20261123)
    table = builtin_geo.asn_table
    assert table is not None
    rows = rng.sample(range(len(table.v4.starts)), 3000)
    specials = [n for lo, hi, _ in V4_RANGES for n in (lo, hi)]
    ips = (rng_v4(rng, 60_000) + edges([0, 0xFFFFFFFF, *specials])
           + edges([table.v4.starts[i] for i in rows] + [table.v4.ends[i] for i in rows])
           + ODD)
    rng.shuffle(ips)
    answers = assert_same(builtin_geo, ips)
    assert sum(a[0] is not None for a in answers) > 40_000  # most are placed
    assert sum(a[5] is not None for a in answers) > 30_000  # many have an AS


def test_builtin_place_is_what_maxminddb_reads(builtin_geo: GeoIP) -> None:
    city = next(f for f in builtin_geo.files if f.only_version == 4)
    assert city.path.parent.name == CITY_PACKAGE.split("/")[1]
    reader = maxminddb.open_database(str(city.path))
    rng = random.Random(7)
    ips = rng_v4(rng, 20_000)
    for ip, answer in zip(ips, in_batches(builtin_geo, ips), strict=True):
        if answer[9] is not None and dict(answer[9]).get("geo"):
            continue  # special-purpose: never looked up
        record = reader.get(ip)
        if record is None:
            assert answer[0] is None and answer[3] is None
            continue
        assert isinstance(record, dict)
        assert answer[0] == record["country_code"]
        assert (answer[3], answer[4]) == (record["latitude"], record["longitude"])
        assert answer[2] == (record["city"] or None)
        assert (answer[9] is None) == (not record["state1"])


def test_builtin_as_is_what_the_table_has(builtin_geo: GeoIP) -> None:
    table = builtin_geo.asn_table
    assert table is not None
    rng = random.Random(8)
    ips = rng_v4(rng, 20_000)
    for ip, answer in zip(ips, in_batches(builtin_geo, ips), strict=True):
        if answer[9] is not None and dict(answer[9]).get("geo"):
            continue
        hit = table.lookup(int(ipaddress.IPv4Address(ip)), 4)
        if hit is None:
            assert answer[5:8] == (None, None, None)
        else:
            assert answer[5:8] == (hit.asn, hit.org, hit.network)


def test_several_databases_with_as_data(mmdb_dir: Path, tmp_path: Path) -> None:
    """City, Country and ASN test databases (IPv6 trees), and the AS from a file."""
    settings = GeoipSection(databases=[str(mmdb_dir / name) for name in (
        "GeoLite2-Country-Test.mmdb", "GeoIP2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb")],
        builtin=False)
    geo = GeoIP.from_settings(settings, tmp_path)
    numbers = []
    for name in ("GeoIP2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb",
                 "GeoLite2-Country-Test.mmdb"):
        for network, _ in maxminddb.open_database(str(mmdb_dir / name)):
            if network.version == 4:
                numbers += [int(network.network_address), int(network.broadcast_address)]
    rng = random.Random(9)
    ips = edges(numbers) + rng_v4(rng, 5000) + ODD
    rng.shuffle(ips)
    answers = assert_same(geo, ips)
    assert any(a[5] == 1221 for a in answers)  # Telstra, from the ASN database
    assert any(a[2] == "London" for a in answers)


def test_one_database_with_as_data_only(mmdb_dir: Path, tmp_path: Path) -> None:
    geo = GeoIP.from_settings(GeoipSection(
        databases=[str(mmdb_dir / "GeoLite2-ASN-Test.mmdb")], builtin=False), tmp_path)
    numbers = [int(n.network_address) for n, _ in
               maxminddb.open_database(str(mmdb_dir / "GeoLite2-ASN-Test.mmdb"))
               if n.version == 4]
    answers = assert_same(geo, edges(numbers) + rng_v4(random.Random(10), 2000))
    assert any(a[7] == "1.128.0.0/11" for a in answers)


def rewrite(source: Path, target: Path, record_size: int) -> None:
    """A copy of a 28-bit ``.mmdb`` file with its search tree in records of another size
    (the same records; the data section and the rest of the metadata are kept)."""
    data = bytearray(source.read_bytes())
    meta = maxminddb.open_database(str(source)).metadata()
    assert meta.record_size == 28
    count = meta.node_count
    tree = data[:count * 7]
    records = []
    for node in range(count):
        b = tree[node * 7:node * 7 + 7]
        records.append(((b[3] & 0xF0) << 20) | (b[0] << 16) | (b[1] << 8) | b[2])
        records.append(((b[3] & 0x0F) << 24) | (b[4] << 16) | (b[5] << 8) | b[6])
    width = record_size // 8
    packed = b"".join(r.to_bytes(width, "big") for r in records)
    marker = b"\x4brecord_size\xa1\x1c"  # "record_size": 28 in the metadata
    rest = bytes(data[count * 7:])
    assert rest.count(marker) == 1
    rest = rest.replace(marker, marker[:-1] + bytes([record_size]))
    target.write_bytes(packed + rest)


@pytest.mark.parametrize("record_size", [24, 28, 32])
def test_search_tree_of_every_record_size(mmdb_dir: Path, tmp_path: Path,
                                          record_size: int) -> None:
    source = mmdb_dir / "GeoIP2-City-Test.mmdb"
    path = tmp_path / f"city-{record_size}.mmdb"
    if record_size == 28:
        shutil.copy(source, path)
    else:
        rewrite(source, path, record_size)
    reader = maxminddb.open_database(str(path))
    meta = reader.metadata()
    assert meta.record_size == record_size
    tree = SearchTree(path, meta.node_count, meta.record_size, meta.ip_version)
    numbers = [int(n.network_address) for n, _ in reader if n.version == 4]
    ips = edges(numbers) + rng_v4(random.Random(11), 3000)
    nodes, prefixes = tree.lookup(np.array([int(ipaddress.IPv4Address(ip)) for ip in ips],
                                           np.int64))
    found = 0
    for ip, node, prefix in zip(ips, nodes.tolist(), prefixes.tolist(), strict=True):
        record, expected_prefix = reader.get_with_prefix_len(ip)
        assert prefix == expected_prefix, ip
        assert (node > meta.node_count) == (record is not None), ip
        found += record is not None
    assert found > 30
    # one address at a time: the last steps of the walk are taken without numpy
    for ip, node, prefix in list(zip(ips, nodes.tolist(), prefixes.tolist(),
                                     strict=True))[:300]:
        one = tree.lookup(np.array([int(ipaddress.IPv4Address(ip))], np.int64))
        assert (int(one[0][0]), int(one[1][0])) == (node, prefix), ip
    tree.close()


def test_block_bits_are_those_of_the_table() -> None:
    rng = random.Random(12)
    starts, ends, numbers = [], [], []
    for _ in range(20_000):
        start = rng.getrandbits(32)
        end = min(0xFFFFFFFF, start + rng.choice([0, 1, 255, 256, 4095, rng.getrandbits(20)]))
        starts.append(start)
        ends.append(end)
        numbers.append(rng.choice([start, end, rng.randint(start, end)]))
    starts += [0, 0]
    ends += [0xFFFFFFFF, 0]
    numbers += [0x12345678, 0]
    first, last = np.array(starts, np.int64), np.array(ends, np.int64)
    bits = _block_bits(np.array(numbers, np.int64), first, last, _trailing_zeros(first),
                       _trailing_zeros(last + 1))
    for n, s, e, k in zip(numbers, starts, ends, bits.tolist(), strict=True):
        assert _block(n, s, e, 4) == f"{ipaddress.IPv4Address((n >> k) << k)}/{32 - k}"


def test_a_table_with_unannounced_and_overlapping_ranges(tmp_path: Path) -> None:
    def n(ip: str) -> int:
        return int(ipaddress.IPv4Address(ip))

    v4 = tmp_path / "v4.csv"
    v4.write_text("\n".join([
        f"{n('1.0.0.0')},{n('1.0.0.255')},13335,\"Cloudflare, Inc.\"",
        f"{n('1.0.1.0')},{n('1.0.3.255')},0,",
        f"{n('11.0.0.0')},{n('11.0.2.255')},64500,Example",
        f"{n('214.0.0.0')},{n('214.255.255.255')},749,Wide",
        f"{n('214.255.0.0')},{n('215.0.255.255')},721,",
    ]) + "\n", encoding="utf-8")
    geo = GeoIP([], asn_table=AsnTable.load(v4, None), asn_label="table@2026-11-23")
    ips = edges([n(ip) for ip in ("1.0.0.0", "1.0.0.255", "1.0.1.0", "11.0.1.255",
                                  "11.0.2.0", "214.254.255.255", "214.255.0.0",
                                  "215.0.255.255")]) + rng_v4(random.Random(13), 100)
    answers = assert_same(geo, ips)
    by_ip = dict(zip(ips, answers, strict=True))
    assert by_ip["1.0.0.1"][5:9] == (13335, "Cloudflare, Inc.", "1.0.0.0/24",
                                     "table@2026-11-23")
    assert by_ip["1.0.1.0"][8] is None  # AS 0: not announced, nothing known
    assert by_ip["11.0.2.0"][7] == "11.0.2.0/24"
    assert by_ip["11.0.1.255"][7] == "11.0.0.0/23"
    assert by_ip["215.0.255.255"][5:7] == (721, None)


def test_a_damaged_tree_is_left_to_the_reader(mmdb_dir: Path, tmp_path: Path) -> None:
    """A record that loops back into the tree: the batch path does not loop, and leaves
    the addresses that stay in the tree to the reader (maxminddb's answer, or error)."""
    path = tmp_path / "loop.mmdb"
    shutil.copy(mmdb_dir / "GeoIP2-City-Test.mmdb", path)
    # opened while intact (maxminddb's own walk through every network would not end)
    geo = GeoIP.from_settings(GeoipSection(databases=[str(path)], builtin=False), tmp_path)
    meta = maxminddb.open_database(str(path)).metadata()
    data = bytearray(path.read_bytes())

    def record(node: int, bit: int) -> int:
        b = data[node * 7:node * 7 + 7]
        if bit:
            return ((b[3] & 0x0F) << 24) | (b[4] << 16) | (b[5] << 8) | b[6]
        return ((b[3] & 0xF0) << 20) | (b[0] << 16) | (b[1] << 8) | b[2]

    node = 0
    for _ in range(96):  # where IPv4 addresses start
        node = record(node, 0)
    for i in range(8):  # then 81.
        node = record(node, (81 >> (7 - i)) & 1)
    assert node < meta.node_count
    data[node * 7:node * 7 + 3] = (node & 0xFFFFFF).to_bytes(3, "big")  # left: itself
    data[node * 7 + 3] = (data[node * 7 + 3] & 0x0F) | ((node >> 20) & 0xF0)
    st = path.stat()
    with path.open("r+b") as fh:  # in place, as a disk error would
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    tree = SearchTree(path, meta.node_count, meta.record_size, meta.ip_version)
    nodes, _ = tree.lookup(np.array([int(ipaddress.IPv4Address("81.0.0.0"))], np.int64))
    assert nodes[0] < meta.node_count  # still in the tree after 32 bits
    tree.close()
    ips = ["81.0.0.1", "81.2.69.142", *rng_v4(random.Random(14), 50)]
    assert_same(geo, ips)
    with pytest.raises(maxminddb.InvalidDatabaseError):  # what the reader says
        geo._lookup("81.0.0.0")
    with pytest.raises(maxminddb.InvalidDatabaseError):
        geo.lookup_many([*ips, "81.0.0.0"])


def test_answers_hold_no_dictionaries(builtin_geo: GeoIP) -> None:
    """What the caches keep is not tracked by the garbage collector once it has seen it
    (tuples of tuples, strings and numbers; a level of nesting per collection)."""
    import gc

    answers = in_batches(builtin_geo, rng_v4(random.Random(15), 2000))
    assert any(a[9] for a in answers)  # with attrs (the region)
    for _ in range(3):
        gc.collect()
    assert not any(gc.is_tracked(a) for a in answers)


def test_networks_are_written_as_ipaddress_writes_them() -> None:
    rng = np.random.default_rng(16)
    lengths = rng.integers(-1, 33, 20_000)
    lengths[:6] = [0, 32, -1, 1, 31, 8]
    lows = rng.integers(0, 1 << 32, 20_000)
    lows[:6] = [0, 0xFFFFFFFF, 0x01020304, 0x80000000, 0xFFFFFFFE, 0x0A000000]
    shift = np.where(lengths >= 0, 32 - lengths, 32)
    lows = (lows >> shift) << shift
    expected = [None if n < 0 else f"{ipaddress.IPv4Address(low)}/{n}"
                for low, n in zip(lows.tolist(), lengths.tolist(), strict=True)]
    assert _networks(lows, lengths) == expected
    every = np.maximum(lengths, 0)  # the case where all have a network
    assert _networks(lows, every) == [f"{ipaddress.IPv4Address(low)}/{n}" for low, n in
                                      zip(lows.tolist(), every.tolist(), strict=True)]
    assert _networks(lows[:3], np.full(3, -1)) == [None, None, None]


def test_templates_found_in_a_crowded_table_or_dropped(builtin_geo: GeoIP) -> None:
    """With 4 slots, most templates are not where the table says: they are found in the
    dictionary; with a limit of 50 templates, they are dropped and made again."""
    geo = GeoIP(builtin_geo.files, asn_table=builtin_geo.asn_table,
                asn_label=builtin_geo.asn_label, countries=builtin_geo.countries,
                countries_label=builtin_geo.countries_label)
    geo._batch = batch = Batch(geo)
    batch._templates = _Templates(slot_bits=2)
    rng = random.Random(17)
    ips = rng_v4(rng, 3000)
    assert_same(geo, ips + ips[::-1])
    assert len(batch._templates) > 1000
    batch.template_limit = 50
    assert_same(geo, ips)
    assert len(batch._templates) <= 1050  # dropped at each batch of 1,000
    assert batch._templates.slot_bits == 2


def test_columns_give_back_their_answers() -> None:
    answers = [INVALID, (None,) * 10,
               ("GB", "United Kingdom", "London", 51.5, -0.1, 1221, "Telstra", "1.128.0.0/11",
                "db", (("geo_region", "England"), ("geo_accuracy_km", 10))),
               (None,) * 9 + ((("geo", "private"),),)]
    columns = Columns.of(answers)
    assert columns.answers() == answers
    assert columns.invalid == 1
    assert [p[5] for p in columns.place] == [
        {"geo": "invalid"}, None, {"geo_region": "England", "geo_accuracy_km": 10},
        {"geo": "private"}]
    assert columns.answers(slice(1, None, 2)) == answers[1::2]
    merged = Columns.merged(6, [([5, 0], Columns.of(answers[:2])),
                                ([1, 2, 3, 4], Columns.of(answers))])
    assert merged.answers() == [answers[1], *answers, answers[0]]
    assert merged.invalid == 2


def test_rows_of_a_block_of_many_ranges(tmp_path: Path) -> None:
    """Up to 300 ranges in one block: every address bisected to its row."""
    base = int(ipaddress.IPv4Address("11.0.0.0"))
    lines = [f"{base + 16 * i},{base + 16 * i + 9},{64500 + i},AS{i}" for i in range(300)]
    lines.append(f"{base + 65536},{base + 65536 + 255},64999,Alone")
    v4 = tmp_path / "v4.csv"
    v4.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ranges = _Ranges(AsnTable.load(v4, None))
    rng = np.random.default_rng(18)
    nums = np.concatenate((np.arange(base - 3, base + 16 * 300 + 3),
                           rng.integers(base, base + 70_000, 3000),
                           rng.integers(0, 1 << 32, 3000)))
    expected = np.searchsorted(ranges.starts, nums, side="right") - 1
    for size in (1, 7, 1000):
        found = np.concatenate([ranges.rows(nums[i:i + size])
                                for i in range(0, len(nums), size)])
        assert (found == expected).all()


def test_templates_share_coordinates_but_keep_their_sign() -> None:
    templates = _Templates()
    first = templates.coordinate(float("48.1"))
    assert templates.coordinate(float("48.1")) is first
    zero, negative = templates.coordinate(0.0), templates.coordinate(-0.0)
    assert str(zero) == "0.0" and str(negative) == "-0.0"
    assert str(templates.coordinate(-0.0)) == "-0.0" and templates.coordinate(None) is None
