"""Capture file to flows and HTTP requests: Portolan against scapy, dpkt and tshark.

Builds a pcap of at least 1,000,000 packets from the real sample captures (every frame of
every sample, round after round, each round a day later so its flows are its own), then
times, on that same file in the same run:

- **portolan**: the analyzer behind ``formats.pcap`` with what the others do: flows with
  packets/bytes each way and HTTP requests with host/method/URI (and their events);
- **portolan +tls +dns**: the same with TLS ClientHellos (server name, JA4, JA3) and DNS
  queries recognised too, as ``portolan capture`` does by default;
- **dpkt**: a loop a user would write: Ethernet -> IP/IPv6 -> TCP/UDP, a flow dict keyed
  by the five-tuple, ``dpkt.http.Request`` on TCP payloads that start with a method;
- **scapy** (the seeds' choice): ``PcapReader``, a flow dict, the ``HTTPRequest`` layer;
  and **scapy TCPSession**, as the HTTP sniffer seed ran it (``sniff(session=TCPSession)``
  and the HTTP layer). scapy is slow, so it reads the first ``--scapy-packets`` packets
  and its rate is compared (its figure says how many it read);
- **tshark**: ``tshark -T fields`` with the same fields (addresses, ports, frame length,
  HTTP host/method/URI), output discarded.

Prints packets per second (median of ``--runs`` runs) of wall time and of CPU time (the
machine may be shared: CPU time is steadier; tshark's is its own process's), and
Portolan's ratio to each.
dpkt and scapy are installed into this environment on demand (``uv pip install``);
tshark comes from the Debian package ``tshark`` (installed with apt-get when run as root).

    .venv/bin/python benchmarks/capture.py [--packets 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "data" / "pcap"
DAY_US = 86_400_000_000
PINS = {"dpkt": "dpkt==1.9.8", "scapy": "scapy==2.6.1"}


def build(out: Path, packets: int, samples: Path) -> int:
    """Write a pcap of at least ``packets`` frames from the samples; returns its count."""
    from portolan.packets.capfile import CaptureFile

    frames: list[tuple[int, int, bytes]] = []
    for path in sorted(samples.iterdir()):
        if path.suffix not in (".pcap", ".pcapng", ".cap"):
            continue
        capture = CaptureFile(path)
        if capture.link_types - {1}:
            continue
        frames.extend((ts, size, data) for _, ts, _, size, data in capture)
    if not frames:
        raise SystemExit(f"no Ethernet sample captures in {samples}")
    rounds = -(-packets // len(frames))
    tmp = out.with_suffix(".partial")
    written = 0
    with tmp.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        rec = struct.Struct("<IIII")
        for r in range(rounds):
            shift = r * DAY_US
            chunk = []
            for ts, size, data in frames:
                sec, usec = divmod(ts + shift, 1_000_000)
                chunk.append(rec.pack(sec, usec, len(data), size))
                chunk.append(data)
            f.write(b"".join(chunk))
            written += len(frames)
    tmp.rename(out)
    return written


def count_frames(path: Path) -> int:
    from portolan.packets.capfile import CaptureFile

    return sum(1 for _ in CaptureFile(path))


# -- the contenders -----------------------------------------------------------------------


PEAK = {"flows": 0}


def run_portolan(path: Path, limit: int | None, *, everything: bool = False) -> tuple[int, str]:
    from portolan.formats.pcap import batches
    from portolan.packets.analyzer import Analyzer, AnalyzerOptions
    from portolan.packets.capfile import CaptureFile

    capture = CaptureFile(path)
    options = AnalyzerOptions(tls=everything, dns=everything)
    analyzer = Analyzer(sensor="bench", source=path.name, id_key=capture.fingerprint,
                        options=options)
    flows = requests = other = 0
    for batch in batches(capture, analyzer):
        PEAK["flows"] = max(PEAK["flows"], len(analyzer.table))
        for e in batch:
            if e.action == "flow":
                flows += 1
            elif e.service == "http":
                requests += 1
            else:
                other += 1
    note = f"{flows} flows, {requests} HTTP requests"
    if everything:
        note += f", {other} TLS/DNS/SSDP requests"
    return analyzer.frames, note


def run_portolan_all(path: Path, limit: int | None) -> tuple[int, str]:
    return run_portolan(path, limit, everything=True)


_COUNTS: dict[Path, int] = {}


def count_frames_cached(path: Path) -> int:
    if path not in _COUNTS:
        _COUNTS[path] = count_frames(path)
    return _COUNTS[path]


_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ",
            b"CONNECT ")


def run_dpkt(path: Path, limit: int | None) -> tuple[int, str]:
    import dpkt

    flows: dict[tuple[object, ...], list[int]] = {}
    requests = 0
    n = 0
    with path.open("rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            n += 1
            try:
                eth = dpkt.ethernet.Ethernet(buf)
            except (dpkt.UnpackError, IndexError):
                continue
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            sport = getattr(l4, "sport", 0)
            dport = getattr(l4, "dport", 0)
            a, b = (ip.src, sport), (ip.dst, dport)
            key = (ip.p, *min(a, b), *max(a, b))
            stats = flows.get(key)
            if stats is None:
                stats = flows[key] = [0, 0]
            stats[0] += 1
            stats[1] += len(buf)
            if isinstance(l4, dpkt.tcp.TCP) and l4.data.startswith(_METHODS):
                try:
                    req = dpkt.http.Request(l4.data)
                except (dpkt.UnpackError, ValueError):
                    continue
                requests += 1
                _ = (req.headers.get("host"), req.method, req.uri)
    return n, f"{len(flows)} flows, {requests} HTTP requests"


def run_scapy(path: Path, limit: int | None) -> tuple[int, str]:
    import logging

    logging.getLogger("scapy").setLevel(logging.ERROR)
    from scapy.layers.http import HTTPRequest
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import PcapReader

    flows: dict[tuple[object, ...], list[int]] = {}
    requests = 0
    n = 0
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            n += 1
            if limit is not None and n > limit:
                n -= 1
                break
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is None:
                continue
            l4 = pkt.getlayer(TCP) or pkt.getlayer(UDP)
            sport = l4.sport if l4 is not None else 0
            dport = l4.dport if l4 is not None else 0
            a, b = (ip.src, sport), (ip.dst, dport)
            key = (ip.proto if ip.version == 4 else ip.nh, *min(a, b), *max(a, b))
            stats = flows.setdefault(key, [0, 0])
            stats[0] += 1
            stats[1] += len(pkt)
            if pkt.haslayer(HTTPRequest):
                req = pkt[HTTPRequest]
                requests += 1
                _ = (req.Host, req.Method, req.Path)
    return n, f"{len(flows)} flows, {requests} HTTP requests (first {n} packets)"


def run_scapy_session(path: Path, limit: int | None) -> tuple[int, str]:
    """scapy as the HTTP sniffer seed used it: ``sniff(session=TCPSession)`` and the HTTP
    layer, here on the file (``offline=``) instead of an interface."""
    import logging

    logging.getLogger("scapy").setLevel(logging.ERROR)
    from scapy.layers.http import HTTPRequest
    from scapy.sendrecv import sniff
    from scapy.sessions import TCPSession

    seen = {"n": 0, "requests": 0}

    def handle(pkt: object) -> None:
        seen["n"] += 1
        if pkt.haslayer(HTTPRequest):  # type: ignore[attr-defined]
            req = pkt[HTTPRequest]  # type: ignore[index]
            seen["requests"] += 1
            _ = (req.Host, req.Method, req.Path)

    sniff(offline=str(path), session=TCPSession, store=False, prn=handle,
          count=limit or 0)
    return seen["n"], (f"{seen['requests']} HTTP requests (first {seen['n']} packets, "
                       "TCP reassembled)")


TSHARK_FIELDS = ["frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport",
                 "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.flags", "http.host",
                 "http.request.method", "http.request.uri"]


def run_tshark(path: Path, limit: int | None) -> tuple[int, str]:
    tshark = shutil.which("tshark")
    assert tshark is not None
    cmd = [tshark, "-n", "-r", str(path), "-T", "fields"]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines = 0
    while chunk := proc.stdout.read(1 << 20):
        lines += chunk.count(b"\n")
    proc.wait()
    return lines, "fields of every frame"


# -- setup --------------------------------------------------------------------------------


def ensure_module(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        pass
    uv = shutil.which("uv") or str(Path.home() / ".pyenv" / "shims" / "uv")
    print(f"  {name} is not installed: installing {PINS[name]} into this environment "
          f"({sys.prefix}) with uv", flush=True)
    result = subprocess.run([uv, "pip", "install", "--python", sys.executable, PINS[name]],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"  could not install {PINS[name]}: {result.stderr.strip()[:300]}")
        return False
    importlib.invalidate_caches()
    importlib.import_module(name)
    return True


def ensure_tshark() -> bool:
    if shutil.which("tshark"):
        return True
    import os

    if os.geteuid() != 0:
        print("  tshark is not installed (Debian package tshark); not root, so skipping it")
        return False
    print("  tshark is not installed: apt-get install -y tshark", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "tshark"],
                   env=env, capture_output=True)
    return shutil.which("tshark") is not None


def timed(fn: Callable[[Path, int | None], tuple[int, str]], path: Path, limit: int | None,
          runs: int) -> tuple[float, float, int, str]:
    """Median packets per second of wall time, and per second of CPU time (this process's,
    plus its children's for tshark): the machine may be shared, CPU time is steadier."""
    walls, cpus = [], []
    n, note = 0, ""
    for _ in range(runs):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu0 = time.process_time() + children.ru_utime + children.ru_stime
        started = time.perf_counter()
        n, note = fn(path, limit)
        wall = time.perf_counter() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() + children.ru_utime + children.ru_stime - cpu0
        walls.append(n / wall)
        cpus.append(n / cpu)
    return statistics.median(walls), statistics.median(cpus), n, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scapy-packets", type=int, default=30_000)
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--file", type=Path, default=None,
                        help="the built capture (default: in the temporary folder, reused)")
    parser.add_argument("--only", nargs="*", default=["portolan", "dpkt", "scapy", "tshark"])
    args = parser.parse_args()

    path = args.file or Path(tempfile.gettempdir()) / f"portolan-bench-{args.packets}.pcap"
    if not path.exists():
        print(f"building {path} from {args.samples} ...", flush=True)
        built = build(path, args.packets, args.samples)
        print(f"  {built:,} packets, {path.stat().st_size / 1e6:,.0f} MB")
    total = count_frames_cached(path)
    print(f"capture: {path} ({total:,} packets, {path.stat().st_size / 1e6:,.0f} MB); "
          f"median of {args.runs} runs\n")

    contenders: list[tuple[str, Callable[[Path, int | None], tuple[int, str]], int | None]] = []
    if "portolan" in args.only:
        contenders.append(("portolan", run_portolan, None))
        contenders.append(("portolan +tls +dns", run_portolan_all, None))
    if "dpkt" in args.only and ensure_module("dpkt"):
        contenders.append(("dpkt", run_dpkt, None))
    if "scapy" in args.only and ensure_module("scapy"):
        contenders.append(("scapy", run_scapy, args.scapy_packets))
        contenders.append(("scapy TCPSession", run_scapy_session, args.scapy_packets))
    if "tshark" in args.only and ensure_tshark():
        contenders.append(("tshark -T fields", run_tshark, None))

    results: dict[str, tuple[float, float]] = {}
    print(f"{'':18} {'packets/s (wall)':>17} {'packets/s (CPU)':>16}")
    for name, fn, limit in contenders:
        wall, cpu, n, note = timed(fn, path, limit, args.runs)
        results[name] = (wall, cpu)
        print(f"{name:18} {wall:>17,.0f} {cpu:>16,.0f}   ({n:,} packets; {note})", flush=True)
        if name == "portolan":
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{'':18} peak memory of the process so far: {rss:,.0f} MB (open flows, "
                  f"sampled every 5,000 packets, at most: {PEAK['flows']:,})", flush=True)
    mine = results.get("portolan")
    if mine:
        print()
        for name, (wall, cpu) in results.items():
            if not name.startswith("portolan"):
                print(f"portolan / {name:18} {mine[0] / wall:7.1f}x wall  "
                      f"{mine[1] / cpu:7.1f}x CPU")


if __name__ == "__main__":
    main()
