"""Listener throughput and memory against minimal accept-read-close servers, on loopback.

Throughput: a load generator (its own process, uvloop) makes CONNECTIONS connections,
CONCURRENCY at a time; each sends 20 bytes and closes its side, and counts as done when
the server has closed it too (so the generator never has more than CONCURRENCY
connections outstanding at the server). Three servers take them in turn,
in the same run: a minimal uvloop accept-read-close server written here (the near-limit in
Python), the same on plain asyncio, and ``portolan listen --json`` writing every event to
a file. For Portolan a connection counts once its ``disconnect`` event is written, and the
run checks that every connection has its ``connect``, ``payload`` and ``disconnect``.
Rate = connections / (time from the first connection to the last one logged).

Idle: IDLE connections are opened and held without sending; the server's resident memory
grows by so much per connection; then one more connection is made and must be logged
while they are all held.

    python benchmarks/listener.py                      # the issue's sizes
    python benchmarks/listener.py --connections 5000 --runs 1 --idle 2000   # quick

Prints medians of --runs runs and the ratio of Portolan to the bare uvloop server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PYTHON = sys.executable
PORTOLAN = str(Path(PYTHON).with_name("portolan"))
PAYLOAD = b"0123456789abcdefghij"  # 20 bytes

BARE_SERVER = textwrap.dedent("""
    import asyncio, os, signal, sys, time
    kind, port = sys.argv[1], int(sys.argv[2])
    done = 0
    last = 0.0

    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
        def data_received(self, data):
            pass
        def eof_received(self):
            return False
        def connection_lost(self, exc):
            global done, last
            done += 1
            last = time.time()

    async def main():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(Conn, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        await stop.wait()
        server.close()
        print(done, last, flush=True)

    if kind == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
""")

LOAD = textwrap.dedent("""
    import asyncio, sys, time, uvloop
    mode = sys.argv[1]
    port, total, concurrency = (int(a) for a in sys.argv[2:5])
    PAYLOAD = b"0123456789abcdefghij"

    async def burst():
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        state = {"started": 0, "done": 0, "failed": 0}

        class Client(asyncio.Protocol):
            # sends its 20 bytes, closes its side, and is done when the server has closed
            # too: at most `concurrency` connections are outstanding at the server
            def connection_made(self, transport):
                transport.write(PAYLOAD)
                transport.write_eof()
            def connection_lost(self, exc):
                state["done"] += 1
                more()

        def failed(fut):
            if fut.exception() is not None:
                state["failed"] += 1
                state["done"] += 1
                more()

        def more():
            if state["started"] < total:
                state["started"] += 1
                fut = asyncio.ensure_future(loop.create_connection(Client, "127.0.0.1", port))
                fut.add_done_callback(failed)
            elif state["done"] >= total:
                finished.set()

        start = time.time()
        for _ in range(min(concurrency, total)):
            more()
        await finished.wait()
        print(start, time.time(), state["failed"], flush=True)

    async def hold():
        loop = asyncio.get_running_loop()
        held = []
        start = time.time()
        for i in range(0, total, concurrency):
            batch = [loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
                     for _ in range(min(concurrency, total - i))]
            held.extend(await asyncio.gather(*batch))
        print("held", len(held), time.time() - start, flush=True)
        sys.stdin.readline()
        for transport, _ in held:
            transport.close()

    uvloop.run(burst() if mode == "burst" else hold())
""")


def _more_files() -> None:
    # room for the idle test's connections (root may raise the hard limit too)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(mode: str, port: int, total: int, concurrency: int) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, "-c", LOAD, mode, str(port), str(total), str(concurrency)],
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
                            preexec_fn=_more_files)


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) if match else 0


def _start_portolan(port: int, out: Path, extra: list[str]) -> subprocess.Popen[str]:
    args = [PORTOLAN, "-q", "listen", "--port", str(port), "--bind", "127.0.0.1", "--json",
            "--set", "accept_rate=0", "--set", "max_per_source=0",
            "--set", "max_connections=100000", *extra]
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(out.parent)}
    proc = subprocess.Popen(args, stdout=out.open("wb"), stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=_more_files)
    _wait_port(port)
    return proc


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def _stable(path: Path, quiet: float = 1.0) -> None:
    size, since = -1, time.monotonic()
    while True:
        now_size = path.stat().st_size
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_run(kind: str, total: int, concurrency: int) -> tuple[float, float]:
    """Connections per second, and server CPU microseconds per connection."""
    port = _free_port()
    server = subprocess.Popen([PYTHON, "-c", BARE_SERVER, kind, str(port)],
                              stdout=subprocess.PIPE, text=True, preexec_fn=_more_files)
    assert server.stdout is not None
    server.stdout.readline()
    cpu = _cpu_seconds(server.pid)
    load = _load("burst", port, total, concurrency)
    out, _ = load.communicate()
    start, _end, failed = out.split()
    time.sleep(0.5)
    cpu = _cpu_seconds(server.pid) - cpu
    server.send_signal(signal.SIGTERM)
    done, last = server.communicate(timeout=30)[0].split()
    if int(failed) or int(done) != total:
        print(f"  {kind}: {done} of {total} connections handled, {failed} failed")
    return total / (float(last) - float(start)), cpu / total * 1e6


def portolan_run(total: int, concurrency: int, workdir: Path
                 ) -> tuple[float, float, dict[str, int]]:
    """Connections per second (to the last event written), server CPU microseconds per
    connection, and the events counted in the output."""
    port = _free_port()
    out = workdir / "events.jsonl"
    server = _start_portolan(port, out, [])
    # the readiness probe above is a connection too: it is logged, and left out below
    _stable(out, 0.5)
    before = out.stat().st_size
    cpu = _cpu_seconds(server.pid)
    load = _load("burst", port, total, concurrency)
    stdout, _ = load.communicate()
    start, _end, failed = stdout.split()
    _stable(out)
    last = out.stat().st_mtime
    cpu = _cpu_seconds(server.pid) - cpu
    server.send_signal(signal.SIGINT)
    server.communicate(timeout=60)
    counts: dict[str, int] = {}
    sessions: dict[str, set[str]] = {}
    with out.open("rb") as f:
        f.seek(before)
        for line in f:
            event = json.loads(line)
            action = event["action"]
            counts[action] = counts.get(action, 0) + 1
            sessions.setdefault(action, set()).add(event["session"])
    whole = sessions.get("connect", set()) & sessions.get("payload", set()) & sessions.get(
        "disconnect", set())
    counts["whole sessions"] = len(whole)
    counts["failed client connections"] = int(failed)
    out.unlink()
    return total / (last - float(start)), cpu / total * 1e6, counts


def idle_run(kind: str, total: int, workdir: Path) -> tuple[float, bool]:
    """KiB of server memory per idle connection, and whether a new one was logged."""
    port = _free_port()
    out = workdir / "idle.jsonl"
    if kind == "portolan":
        server = _start_portolan(port, out, ["--set", "read_timeout=600"])
        _stable(out, 0.5)
    else:
        server = subprocess.Popen([PYTHON, "-c", BARE_SERVER, kind, str(port)],
                                  stdout=subprocess.PIPE, text=True, preexec_fn=_more_files)
        assert server.stdout is not None
        server.stdout.readline()
    hold: subprocess.Popen[str] | None = None
    try:
        time.sleep(0.5)
        base = _rss_kib(server.pid)
        hold = _load("hold", port, total, 200)
        assert hold.stdout is not None and hold.stdin is not None
        line = hold.stdout.readline().split()
        if len(line) < 2:
            raise SystemExit(f"the load generator could not hold {total} connections")
        held = int(line[1])
        if kind == "portolan":
            _stable(out, 1.0)  # every connect event written
        else:
            time.sleep(1.0)
        grown = _rss_kib(server.pid) - base
        logged = True
        if kind == "portolan":
            mark = out.stat().st_size
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                probe.sendall(b"still-logged-probe\n")
            deadline = time.monotonic() + 10
            logged = False
            while time.monotonic() < deadline and not logged:
                with out.open("rb") as f:
                    f.seek(mark)
                    logged = b"still-logged-probe" in f.read()
                if not logged:
                    time.sleep(0.05)
        hold.stdin.write("\n")
        hold.stdin.flush()
        hold.wait(timeout=120)
        server.send_signal(signal.SIGINT if kind == "portolan" else signal.SIGTERM)
        server.communicate(timeout=120)
    finally:
        for proc in (hold, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    if out.exists():
        out.unlink()
    if held != total:
        print(f"  {kind}: only {held} of {total} idle connections were opened")
    return grown / held, logged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=int, default=20000)
    args = parser.parse_args()
    _more_files()
    rates: dict[str, list[float]] = {"uvloop": [], "asyncio": [], "portolan": []}
    cpus: dict[str, list[float]] = {"uvloop": [], "asyncio": [], "portolan": []}
    with tempfile.TemporaryDirectory(prefix="portolan-bench-") as tmp:
        workdir = Path(tmp)
        print(f"{args.connections} connections of 20 bytes, {args.concurrency} at a time, "
              f"{args.runs} runs; medians")
        for run in range(args.runs):
            for kind in ("uvloop", "asyncio"):
                rate, cpu = bare_run(kind, args.connections, args.concurrency)
                rates[kind].append(rate)
                cpus[kind].append(cpu)
            rate, cpu, counts = portolan_run(args.connections, args.concurrency, workdir)
            rates["portolan"].append(rate)
            cpus["portolan"].append(cpu)
            print(f"  run {run + 1}: " + ", ".join(
                f"{k} {rates[k][-1]:,.0f}/s ({cpus[k][-1]:.1f} us CPU each)" for k in rates)
                + "; portolan events: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            if counts.get("whole sessions") != args.connections:
                print("  NOT every connection was accounted for")
        med = {k: statistics.median(v) for k, v in rates.items()}
        cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
        print(f"bare uvloop server : {med['uvloop']:>9,.0f} connections/s, "
              f"{cpu_med['uvloop']:5.1f} us of server CPU per connection")
        print(f"bare asyncio server: {med['asyncio']:>9,.0f} connections/s, "
              f"{cpu_med['asyncio']:5.1f} us of server CPU per connection")
        print(f"portolan listen    : {med['portolan']:>9,.0f} connections/s logged, "
              f"{cpu_med['portolan']:5.1f} us of server CPU per connection "
              f"(3 events each, JSON lines to a file)")
        print(f"portolan / bare uvloop: {med['portolan'] / med['uvloop']:.2f} of the rate, "
              f"{cpu_med['uvloop'] / cpu_med['portolan']:.2f} of the connections per CPU "
              "second")
        idle = args.idle
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if idle > hard - 500:
            idle = hard - 500
            print(f"(open files are limited to {hard} per process here: {idle} idle "
                  f"connections instead of {args.idle})")
        if idle > 0:
            print(f"{idle} idle connections held at once; server memory per connection")
            for kind in ("asyncio", "uvloop", "portolan"):
                per, logged = idle_run(kind, idle, workdir)
                extra = ("; a new connection was logged meanwhile" if logged
                         else "; a new connection was NOT logged") if kind == "portolan" else ""
                print(f"  {kind:9}: {per:5.2f} KiB{extra}")


if __name__ == "__main__":
    main()
