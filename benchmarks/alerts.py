"""How fast the alert rules go through events, against fail2ban on the same log.

The question an operator asks: "tell me when one address sends more than N requests
within a window". fail2ban is the tool they would otherwise reach for; ``fail2ban-regex``
runs its matching over a log file. Portolan's side here parses the same lines (a combined
log regex, as fail2ban's filter does) and runs them through the alert sink with a ``rate``
rule like fail2ban's maxretry/findtime, plus a ``first_seen`` address rule, a ``match`` rule
with a regex and a CIDR exclusion, a ``login_after_failures`` and a ``spyserver`` rule.
Channels point at a receiver on loopback; throttling keeps the messages few, as it would.

Run: ``.venv/bin/python benchmarks/alerts.py [LOG] [--repeat N] [--copies K]``
(LOG defaults to the shared sample nginx log). Prints events/s for each run, the medians and
the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.server
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from portolan import config
from portolan.alerts.sink import AlertSink
from portolan.event import Event
from portolan.runtime import Runtime

SHARED_DATA = Path(os.environ.get("PORTOLAN_SHARED_DATA",
                                 Path(__file__).resolve().parents[1].parent / "shared" / "data"))
DEFAULT_LOG = SHARED_DATA / "web" / "nginx_logs_first4MB.log"
LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)[^"]*" (\d{3}) ')
FAIL2BAN_FILTER = r'^<HOST> -.*"(GET|POST|HEAD) '


def parse(lines: list[str], shift: dt.timedelta) -> list[Event]:
    out = []
    for n, line in enumerate(lines):
        m = LINE.match(line)
        if m is None:
            continue
        ts = dt.datetime.strptime(m[2], "%d/%b/%Y:%H:%M:%S %z").astimezone(dt.UTC) + shift
        out.append(Event(id=str(n), ts=ts, service="http", action="request", src_ip=m[1],
                         attrs={"method": m[3], "path": m[4], "status": int(m[5])}))
    return out


def receiver() -> tuple[http.server.ThreadingHTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


async def portolan_run(lines: list[str], port: int, data: Path,
                       copies: int) -> tuple[float, float]:
    """(events/s parsing and alerting, events/s of the alert sink alone)."""
    toml = data / "p.toml"
    toml.write_text(
        f'data_dir = "{data}"\n[store]\nenabled = false\n[alerts]\nmax_age = 0\n'
        f'channels.hook = "json://127.0.0.1:{port}/x"\n'
        '[alerts.rules.flood]\nkind = "rate"\nthreshold = 100\nwindow = "10m"\n'
        '[alerts.rules.new-address]\nkind = "first_seen"\nfield = "src_ip"\n'
        '[alerts.rules.probe]\nregex = { "attrs.path" = "(?i)wp-(login|admin)|/product_3" }\n'
        'exclude_cidr = { src_ip = ["10.0.0.0/8", "192.168.0.0/16"] }\n'
        '[alerts.rules.login]\nkind = "login_after_failures"\n'
        '[alerts.rules.sdr]\nkind = "spyserver"\n')
    rt = Runtime(config=config.load(toml, environ={}))
    sink = next(s for s in rt.sinks() if s.name == "alerts")
    assert isinstance(sink, AlertSink)
    parsing = alerting = 0.0
    total = 0
    for copy in range(copies):
        started = time.perf_counter()
        events = parse(lines, dt.timedelta(days=30 * copy))
        parsed = time.perf_counter()
        for i in range(0, len(events), 1000):
            await sink.write(events[i:i + 1000])
        alerting += time.perf_counter() - parsed
        parsing += parsed - started
        total += len(events)
    await sink.close()
    return total / (parsing + alerting), total / alerting


def fail2ban_run(log: Path, copies: int, tmp: Path) -> float:
    path = tmp / "copies.log"
    with path.open("wb") as out:
        for _ in range(copies):
            out.write(log.read_bytes())
    lines = sum(1 for _ in path.open("rb"))
    started = time.perf_counter()
    subprocess.run(["fail2ban-regex", str(path), FAIL2BAN_FILTER], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return lines / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", nargs="?", type=Path, default=DEFAULT_LOG)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copies", type=int, default=2, help="times the log is gone through")
    args = ap.parse_args()
    lines = args.log.read_text(errors="replace").splitlines()
    server, port = receiver()
    ours, alone, theirs = [], [], []
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            rate, sink_rate = asyncio.run(portolan_run(lines, port, Path(tmp), args.copies))
            ours.append(rate)
            alone.append(sink_rate)
            print(f"run {run + 1}: portolan alerts (parse + 5 rules): {rate:,.0f} events/s "
                  f"(alert sink alone: {sink_rate:,.0f} events/s)")
            if shutil.which("fail2ban-regex"):
                other = fail2ban_run(args.log, args.copies, Path(tmp))
                theirs.append(other)
                print(f"run {run + 1}: fail2ban-regex (match only):     {other:,.0f} lines/s")
    server.shutdown()
    print(f"lines per run: {len(lines) * args.copies:,}")
    print(f"median portolan alerts: {statistics.median(ours):,.0f} events/s "
          f"(alert sink alone: {statistics.median(alone):,.0f} events/s)")
    if theirs:
        print(f"median fail2ban-regex:  {statistics.median(theirs):,.0f} lines/s")
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"ratio portolan / fail2ban: {ratio:.1f}x")
    else:
        print("fail2ban-regex not installed (Debian package fail2ban): no ratio", file=sys.stderr)


if __name__ == "__main__":
    main()
