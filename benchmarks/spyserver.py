"""Throughput of the spyserver format against the old monitor's way of reading the console.

    python benchmarks/spyserver.py [LINES] [RUNS]

Both read the same synthetic console (connects with SDR#, SDR++ and other names,
disconnects, rtl-sdr noise, sleep/wake lines) held in memory. "old monitor" is
SpyserverMonitor's loop: its two noise regexes, its connect regex (SDR# only) and its
disconnect regex per line, with its in-memory session dict; it understands fewer lines
(every non-SDR# client is lost). "portolan" is the real parser, read boundaries on
(as under the process source), producing full events with sessions and durations.
Prints the median of RUNS runs and the ratio.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import statistics
import sys
import time

from portolan.formats.base import ParseContext
from portolan.formats.spyserver import SpyserverParser

NAMES = ["SDR# 1700.0.0.1 on Windows", "SDR++", "SpyClient for Python v1.0",
         "SDR# 1.0.0.1716 on Linux", "SDR Console 3.0.26"]


def console(lines: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    open_: list[tuple[str, int]] = []
    while len(out) < lines:
        roll = rng.random()
        if roll < 0.4 or not open_:
            ip = ".".join(str(rng.randint(1, 223 if i == 0 else 254)) for i in range(4))
            port = rng.randint(1024, 65535)
            if not open_:
                out.append("Device was sleeping. Wake up!")
            out.append(f"Accepted client {ip}:{port} running {rng.choice(NAMES)}")
            open_.append((ip, port))
        elif roll < 0.8:
            ip, port = open_.pop(rng.randrange(len(open_)))
            out.append(f"Client disconnected: {ip}:{port}")
            if not open_:
                out.append("No clients using the device. Sleeping...")
        else:
            out.append(rng.choice(["[R82XX] PLL not locked!", "Found Rafael Micro R820T tuner"]))
    return out[:lines]


def old_monitor(lines: list[str]) -> int:
    """SpyserverMonitor's per-line work (its regexes, as in SpyServerMonitor.py)."""
    noise = [re.compile(r"\[R82XX\] PLL not locked!"),
             re.compile(r"Found Rafael Micro R820T tuner")]
    connect = re.compile(
        r"Accepted client (\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\:(\d+) running SDR# (.+) on (.+)")
    disconnect = re.compile(r"Client disconnected: (\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\:(\d+).*")
    sessions: dict[str, dict[str, object]] = {}
    found = 0
    for line in lines:
        if any(n.search(line) for n in noise):
            continue
        m = connect.search(line)
        if m:
            key = f"{m[1]}:{m[2]}#hf.config"
            sessions[key] = {"ip": m[1], "port": m[2], "sdr_version": m[3], "os": m[4],
                             "start": dt.datetime.now(dt.UTC)}
            found += 1
            continue
        m = disconnect.search(line)
        if m:
            session = sessions.pop(f"{m[1]}:{m[2]}#hf.config", None)
            if session is not None:
                end = dt.datetime.now(dt.UTC)
                session["duration"] = (end - session["start"]).total_seconds()  # type: ignore[operator]
                found += 1
    return found


def portolan(lines: list[str]) -> int:
    ctx = ParseContext(sensor="bench", source="spyserver:hf", options={"instance": "hf"})
    parser = SpyserverParser(ctx)
    found = 0
    for start in range(0, len(lines), 8):  # a few lines per read, as on a busy pty
        parser.start_read()
        for line in lines[start : start + 8]:
            found += len(parser.parse(line) or [])
        found += len(parser.end_read())
    return found + len(parser.finish())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    lines = console(n)
    results: dict[str, tuple[float, int]] = {}
    for name, fn in (("old monitor", old_monitor), ("portolan", portolan)):
        times = []
        events = 0
        for _ in range(runs):
            started = time.perf_counter()
            events = fn(lines)
            times.append(time.perf_counter() - started)
        results[name] = (statistics.median(times), events)
    for name, (seconds, events) in results.items():
        print(f"{name:12} {n / seconds:12,.0f} lines/s  ({events} connects+disconnects kept)")
    ratio = results["old monitor"][0] / results["portolan"][0]
    print(f"portolan / old monitor speed: {ratio:.2f}x (median of {runs} runs, {n:,} lines)")


if __name__ == "__main__":
    main()
