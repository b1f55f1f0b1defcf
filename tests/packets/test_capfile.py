"""Reading pcap and pcapng files: byte orders, time resolutions, interfaces, damage."""

from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from portolan.packets.capfile import CaptureError, CaptureFile


def _frames(path: Path) -> list[tuple[int, int, int, int, bytes]]:
    return list(CaptureFile(path))


@pytest.mark.parametrize(("order", "nano"), [("<", False), (">", False), ("<", True),
                                             (">", True)])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, build: SimpleNamespace,
                                          order: str, nano: bool) -> None:
    data = [build.eth(build.ipv4("10.0.0.1", "10.0.0.2", 17, build.udp(1, 2, b"x" * n)))
            for n in (1, 2, 3)]
    path = build.write_pcap(tmp_path / "t.pcap", 1, [(1700000000_250000_000, data[0]),
                                                     (1700000001_000001_999, data[1]),
                                                     (1700000002_500000_000, data[2])],
                            order=order, nano=nano)
    frames = _frames(path)
    assert [f[0] for f in frames] == [1, 2, 3]
    assert [f[1] for f in frames] == [1700000000_250000, 1700000001_000001, 1700000002_500000]
    assert {f[2] for f in frames} == {1}
    assert [f[4] for f in frames] == data
    assert [f[3] for f in frames] == [len(d) for d in data]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_with_their_own_link_and_clock(tmp_path: Path,
                                                          build: SimpleNamespace,
                                                          order: str) -> None:
    ip = build.ipv4("10.0.0.1", "10.0.0.2", 17, build.udp(1, 2, b"hi"))
    path = build.write_pcapng(
        tmp_path / "t.pcapng",
        [(1, None), (101, 9), (101, 0x80 | 10)],  # µs; ns; 2^-10 s
        [(0, 1700000000_000001, build.eth(ip)),
         (1, 1700000000_123456789, ip),
         (2, 3 * 1024 + 512, ip)],
        order=order,
    )
    capture = CaptureFile(path)
    frames = list(capture)
    assert capture.kind == "pcapng"
    assert [(f[0], f[1], f[2]) for f in frames] == [
        (1, 1700000000_000001, 1), (2, 1700000000_123456, 101), (3, 3_500000, 101)]
    assert capture.link_types == {1, 101}


def test_truncated_last_record_is_counted(tmp_path: Path, build: SimpleNamespace) -> None:
    ip = build.ipv4("10.0.0.1", "10.0.0.2", 17, build.udp(1, 2, b"payload"))
    path = build.write_pcap(tmp_path / "t.pcap", 101, [(10**9, ip), (2 * 10**9, ip)])
    path.write_bytes(path.read_bytes()[:-5])
    counters: collections.Counter[str] = collections.Counter()
    frames = list(CaptureFile(path, counters))
    assert len(frames) == 1
    assert counters == {"truncated file: last record cut short": 1}


def test_truncated_pcapng_block(tmp_path: Path, build: SimpleNamespace) -> None:
    ip = build.ipv4("10.0.0.1", "10.0.0.2", 17, build.udp(1, 2, b"payload"))
    path = build.write_pcapng(tmp_path / "t.pcapng", [(101, None)], [(0, 1, ip), (0, 2, ip)])
    path.write_bytes(path.read_bytes()[:-9])
    counters: collections.Counter[str] = collections.Counter()
    assert len(list(CaptureFile(path, counters))) == 1
    assert counters == {"truncated file: last block cut short": 1}


def test_corrupt_record_length_stops_reading(tmp_path: Path, build: SimpleNamespace) -> None:
    ip = build.ipv4("10.0.0.1", "10.0.0.2", 17, build.udp(1, 2))
    path = build.write_pcap(tmp_path / "t.pcap", 101, [(10**9, ip)])
    raw = bytearray(path.read_bytes())
    raw += b"\0" * 8 + b"\xff\xff\xff\x7f" + b"\0" * 20  # a record claiming ~2 GB
    path.write_bytes(bytes(raw))
    counters: collections.Counter[str] = collections.Counter()
    assert len(list(CaptureFile(path, counters))) == 1
    assert counters["corrupt record (length too large)"] == 1


@pytest.mark.parametrize("content", [b"", b"GIF89a....", b"\xd4\xc3"])
def test_not_a_capture(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=r"x\.pcap: not a pcap or pcapng file"):
        CaptureFile(path)


def test_header_only_pcap_has_no_frames(tmp_path: Path, build: SimpleNamespace) -> None:
    path = build.write_pcap(tmp_path / "empty.pcap", 1, [])
    counters: collections.Counter[str] = collections.Counter()
    assert list(CaptureFile(path, counters)) == []
    assert not counters


def test_fingerprint_follows_content_not_name(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "pcap" / "zeek_wikipedia.pcap"
    copy = tmp_path / "renamed.pcap"
    shutil.copyfile(src, copy)
    other = shared_data / "pcap" / "zeek_workshop_2011_browse.pcap"
    assert CaptureFile(copy).fingerprint == CaptureFile(src).fingerprint
    assert CaptureFile(other).fingerprint != CaptureFile(src).fingerprint


@pytest.mark.parametrize("name", ["ndpi_sites.pcapng", "zeek_wikipedia.pcap"])
@pytest.mark.parametrize("target", ["nsecpcap", "pcap", "pcapng"])
def test_same_frames_as_editcap_writes_them(tmp_path: Path, shared_data: Path, name: str,
                                            target: str) -> None:
    """Wireshark's editcap rewrites a real capture in another format; the frames read
    back must be the same (nanosecond times cut to microseconds)."""
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (Debian package wireshark-common, from tshark) is not installed")
    src = shared_data / "pcap" / name
    out = tmp_path / f"converted.{target}"
    subprocess.run([editcap, "-F", target, str(src), str(out)], check=True,
                   capture_output=True)
    before, after = _frames(src), _frames(out)
    assert len(before) > 100
    assert [(f[0], f[1], f[3], f[4]) for f in after] == [(f[0], f[1], f[3], f[4]) for f in before]
