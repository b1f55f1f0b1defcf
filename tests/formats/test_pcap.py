"""The ``pcap`` format against tshark's figures for every real capture of the shared data."""

from __future__ import annotations

import collections
import csv
import json
from pathlib import Path

import pytest

from portolan.event import Event
from portolan.formats.base import FORMATS, ParseContext
from portolan.formats.pcap import read_file

CAPTURES = [
    "chrissanders_http_google.pcapng",
    "chrissanders_http_ip4and6.pcapng",
    "chrissanders_http_post.pcapng",
    "chrissanders_ppa1e_http.cap",
    "chrissanders_synscan.pcapng",
    "forensicscontest_evidence05.pcap",
    "ndpi_android.pcap",
    "ndpi_netflix.pcap",
    "ndpi_sites.pcapng",
    "zeek_wikipedia.pcap",
    "zeek_workshop_2011_browse.pcap",
]


def _read(path: Path) -> tuple[list[Event], ParseContext]:
    ctx = ParseContext(sensor="test", source=path.name)
    return [e for batch in read_file(path, ctx) for e in batch], ctx


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def test_every_capture_of_the_shared_data_is_checked(shared_data: Path) -> None:
    found = sorted(p.name for p in (shared_data / "pcap").iterdir()
                   if p.suffix in (".pcap", ".pcapng", ".cap"))
    assert found == sorted(CAPTURES)


@pytest.mark.parametrize("name", CAPTURES)
def test_matches_tshark(shared_data: Path, name: str) -> None:
    path = shared_data / "pcap" / name
    truth = json.loads((path.parent / f"{name}.truth.json").read_text())
    events, ctx = _read(path)
    flows = [e for e in events if e.action == "flow"]
    tcp = [e for e in flows if e.proto == "tcp"]

    # TCP conversations: how many, and frames and bytes of each (address/port pairs).
    assert len(tcp) == truth["tcp"]["conversations_conv_table"] == truth["tcp"]["streams"]
    mine: collections.Counter[frozenset[tuple[str, int]]] = collections.Counter()
    mine_bytes: collections.Counter[frozenset[tuple[str, int]]] = collections.Counter()
    for e in tcp:
        assert e.src_ip and e.dst_ip and e.src_port is not None and e.dst_port is not None
        pair = frozenset({(e.src_ip, e.src_port), (e.dst_ip, e.dst_port)})
        mine[pair] += e.packets or 0
        mine_bytes[pair] += (e.bytes_in or 0) + (e.bytes_out or 0)
    theirs: collections.Counter[frozenset[tuple[str, int]]] = collections.Counter()
    theirs_bytes: collections.Counter[frozenset[tuple[str, int]]] = collections.Counter()
    for row in _tsv(path.parent / f"{name}.truth.tcp_streams.tsv"):
        pair = frozenset({_endpoint(row["first_src"]), _endpoint(row["first_dst"])})
        theirs[pair] += int(row["frames"])
        theirs_bytes[pair] += int(row["frame_bytes"])
    assert mine == theirs
    assert mine_bytes == theirs_bytes
    assert sum(e.packets or 0 for e in tcp) == truth["tcp"]["tcp_frames"]

    # Every IP packet is in exactly one flow; the others are counted as not IP.
    assert sum(e.packets or 0 for e in flows) == truth["ip_packets"]
    not_ip = sum(n for reason, n in ctx.counters.items() if reason.startswith("not IP"))
    assert not_ip == truth["packets"] - truth["ip_packets"]

    # HTTP requests over TCP: host, method and URI of each, as a multiset.
    requests = [e for e in events if e.action == "request" and e.service == "http"]
    got = collections.Counter((e.attrs.get("host", ""), e.attrs["method"], e.attrs["uri"])
                              for e in requests)
    want = collections.Counter((r["host"], r["method"], r["uri"])
                               for r in _tsv(path.parent / f"{name}.truth.http_requests.tsv")
                               if r["transport"] == "tcp")
    assert got == want
    assert len(requests) == truth["http"]["requests_tcp"]
    ssdp = [e for e in events if e.service == "ssdp" and e.action == "request"]
    assert len(ssdp) == truth["http"]["requests_udp"]

    # Each request is tied to a flow of the same capture.
    flow_ids = {e.id for e in flows}
    assert all(e.attrs["flow"] in flow_ids for e in events if e.action == "request")
    # Ids are unique and stable.
    assert len({e.id for e in events}) == len(events)
    again, _ = _read(path)
    assert [e.id for e in again] == [e.id for e in events]


def test_requests_per_host_and_source(shared_data: Path) -> None:
    path = shared_data / "pcap" / "ndpi_netflix.pcap"
    truth = json.loads((path.parent / "ndpi_netflix.pcap.truth.json").read_text())
    events, _ = _read(path)
    requests = [e for e in events if e.action == "request" and e.service == "http"]
    assert collections.Counter(e.attrs.get("host") for e in requests) == truth["http"]["by_host"]
    assert collections.Counter(e.src_ip for e in requests) == truth["http"]["by_src_ip"]
    assert collections.Counter(e.dst_ip for e in requests) == truth["http"]["by_dst_ip"]
    assert collections.Counter(e.attrs["method"] for e in requests) == truth["http"]["by_method"]
    # responses were seen for most: their status is on the request
    assert sum(1 for e in requests if "status" in e.attrs) >= len(requests) // 2


def test_flow_times_and_direction(shared_data: Path) -> None:
    path = shared_data / "pcap" / "zeek_workshop_2011_browse.pcap"
    truth = json.loads((path.parent / f"{path.name}.truth.json").read_text())
    events, _ = _read(path)
    flows = [e for e in events if e.action == "flow"]
    first = min(e.ts for e in flows).timestamp()
    last = max(e.ts.timestamp() + (e.duration or 0) for e in flows)
    assert first == pytest.approx(float(truth["first_packet_epoch"]), abs=1e-6)
    assert last == pytest.approx(float(truth["last_packet_epoch"]), abs=1e-5)
    # The client 10.0.2.15 (private) opened every connection to a public server.
    assert {(e.src_ip, e.dst_ip, e.direction) for e in flows} == {
        ("10.0.2.15", "192.150.187.43", "outbound")}
    for e in flows:
        assert e.attrs["packets_in"] + e.attrs["packets_out"] == e.packets
        assert e.attrs["end"] in ("fin", "rst", "end")


def test_tls_server_names(shared_data: Path) -> None:
    events, _ = _read(shared_data / "pcap" / "ndpi_android.pcap")
    hellos = [e for e in events if e.service == "tls" and e.action == "request"]
    assert len(hellos) == 18  # the README's count of ClientHellos
    assert all(e.attrs["ja4"].startswith("t1") for e in hellos)
    assert sum(1 for e in hellos if e.attrs.get("tls_sni")) >= 15


def test_dns_queries_get_their_answers(shared_data: Path) -> None:
    events, _ = _read(shared_data / "pcap" / "zeek_wikipedia.pcap")
    queries = [e for e in events if e.service == "dns" and e.action == "request"]
    assert queries
    names = {e.attrs["dns_qname"] for e in queries}
    assert "upload.wikimedia.org" in names or "www.wikipedia.org" in names
    answered = [e for e in queries if e.attrs.get("dns_rcode") == "NOERROR"]
    assert answered and any(e.attrs.get("dns_answers") for e in answered)


def test_not_a_capture(tmp_path: Path) -> None:
    from portolan.config import ConfigError

    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"hello world, not a capture")
    with pytest.raises(ConfigError, match="not a pcap or pcapng file"):
        list(read_file(bad, ParseContext()))


def test_registered() -> None:
    spec = FORMATS.get("pcap")
    assert spec.read_file is read_file and spec.make_parser is None
