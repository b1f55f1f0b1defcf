"""Log parsing and ingest speed, against the tools a user would otherwise run.

    python benchmarks/logs.py [--lines 1000000] [--runs 3] [--install]

Builds, from the real sample logs of the shared data folder, a sshd log and an nginx
access log of ``--lines`` lines each, then times on the same files in the same run (median
of ``--runs``; the commands compared run in turn, so that they share the machine's load):

- ``portolan parse --format sshd`` (the summary, and the events as JSON lines) against
  ``fail2ban-regex FILE sshd``, and against a bare Python loop (:func:`bare_regex`): every
  line read, decoded, and tried against one realistic sshd pattern (``Failed password for
  ...``) anywhere in it: what one regex match per line costs in Python, with no header
  read, no state kept and no event made;
- ``portolan parse --format weblog`` against ``goaccess FILE --log-format=COMBINED -o csv``;
- ``portolan ingest`` (parse, GeoIP/enrichment, store) into a fresh SQLite database,
  with parsing in a second process (the default) and in one process (``--no-fork``).

Rates are printed per wall-clock second and per CPU second (user + system): on a machine
shared with other work, the CPU figure is the one that compares tools fairly.

Portolan runs as installed: with its bytecode compiled (kept in a temporary
``PYTHONPYCACHEPREFIX``, written by one untimed warm-up run), even where the environment
sets ``PYTHONDONTWRITEBYTECODE``, which would make every command compile its sources again.

fail2ban and GoAccess come from Debian (``apt-get install fail2ban goaccess``; ``--install``
does it). A missing tool's comparison is skipped with a message, never faked.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PORTOLAN_SHARED_DATA", REPO.parent / "shared" / "data"))
PORTOLAN = [sys.executable, "-m", "portolan"]


def sample_lines(path: Path, keep: Callable[[str], bool]) -> list[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\r\n") for line in f if keep(line)]


def build(path: Path, samples: list[str], lines: int) -> None:
    """``lines`` lines cycling through ``samples``: the real lines, in their real forms."""
    with path.open("w", encoding="utf-8") as out:
        for line in itertools.islice(itertools.cycle(samples), lines):
            out.write(line + "\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], runs: int, before: Callable[[], None] | None = None) -> Timing:
    """Median wall and CPU time of ``cmd`` (output discarded)."""
    return timed_together([cmd], runs, before)[0]


def timed_together(cmds: list[list[str]], runs: int,
                   before: Callable[[], None] | None = None) -> list[Timing]:
    """Median wall and CPU times of commands run in turn (one run of each, ``runs`` times):
    the tools compared run under the same load, even when it changes during the run."""
    walls: list[list[float]] = [[] for _ in cmds]
    cpus: list[list[float]] = [[] for _ in cmds]
    for _ in range(runs):
        for cmd, wall, cpu_times in zip(cmds, walls, cpus, strict=True):
            if before is not None:
                before()
            cpu = _children_cpu()
            started = time.perf_counter()
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  check=False)
            wall.append(time.perf_counter() - started)
            cpu_times.append(_children_cpu() - cpu)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-2000:]}")
    return [Timing(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus,
                                                                                strict=True)]


class Timing(NamedTuple):
    """Seconds of wall-clock time, and of CPU time (user + system, the process and its
    children): on a busy machine the CPU time is the fairer of the two."""

    wall: float
    cpu: float


#: The bare loop's pattern: one sshd message, wherever it starts in the line. The leading
#: ``.*?`` makes the regex engine try the pattern at every position of every line, as a
#: pattern that does not know where the message starts must. Without it, ``search`` of a
#: pattern that starts with a fixed text ("Failed ") first scans the line for that text
#: alone, and on the lines that lack it (most of them) the pattern is never tried: such a
#: loop, over three times faster, times that scan and not a match.
BARE_PATTERN = r".*?Failed password for (invalid user )?(\S+) from (\S+) port (\d+)"


def bare_regex(path: Path, runs: int) -> Timing:
    """Median wall and CPU time of the floor: each line of ``path`` read, decoded, and
    matched against :data:`BARE_PATTERN` (its groups read where it matches), in this
    process."""
    match = re.compile(BARE_PATTERN).match
    walls, cpus = [], []
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        with path.open("rb") as f:
            for raw in f:
                m = match(raw.decode("utf-8", "replace"))
                if m is not None:
                    m.groups()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return Timing(statistics.median(walls), statistics.median(cpus))


def tool(name: str, package: str, install: bool) -> str | None:
    found = shutil.which(name)
    if found is None and install:
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                       check=False)
        found = shutil.which(name)
    if found is None:
        print(f"  ({name} not found: install the Debian package {package!r}, or run with "
              "--install; its comparison is skipped)")
    return found


def row(label: str, lines: int, t: Timing, against: Timing | None = None,
        name: str = "") -> None:
    ratio = ""
    if against:
        ratio = (f"  {against.wall / t.wall:5.1f} x / {against.cpu / t.cpu:5.1f} x "
                 f"{name} (wall / CPU)")
    print(f"  {label:44} {lines / t.wall:>10,.0f} lines/s wall {lines / t.cpu:>10,.0f} "
          f"lines/s CPU{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--install", action="store_true", help="apt-get install missing tools")
    ap.add_argument("--only", choices=["sshd", "weblog", "ingest"], action="append",
                    help="run only these parts (repeatable; default: all)")
    args = ap.parse_args()
    parts = set(args.only or ["sshd", "weblog", "ingest"])
    if not DATA.is_dir():
        raise SystemExit(f"the sample data folder {DATA} is absent (PORTOLAN_SHARED_DATA)")
    n, runs = args.lines, args.runs
    with tempfile.TemporaryDirectory(prefix="portolan-bench-") as tmp:
        work = Path(tmp)
        env_dir = work / "data"
        os.environ["PORTOLAN_DATA_DIR"] = str(env_dir)
        os.environ.pop("PORTOLAN_CONFIG", None)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")

        sshd = work / "auth.log"
        ssh_samples = sample_lines(DATA / "ssh" / "fail2ban_sshd.log",
                                   lambda line: "sshd" in line and not line.startswith("#"))
        build(sshd, ssh_samples, n)
        web = work / "access.log"
        web_samples = sample_lines(DATA / "web" / "nginx_logs_first4MB.log",
                                   lambda line: line.endswith("\n"))
        build(web, web_samples, n)
        print(f"sshd log: {n:,} lines from {len(ssh_samples)} real sshd lines "
              f"({sshd.stat().st_size / 1e6:.0f} MB); nginx log: {n:,} lines from "
              f"{len(web_samples):,} real lines ({web.stat().st_size / 1e6:.0f} MB); "
              f"median of {runs} runs")
        warm = work / "warm.log"
        build(warm, ssh_samples, 10)
        subprocess.run([*PORTOLAN, "parse", str(warm), "--format", "sshd"], check=True,
                       stdout=subprocess.DEVNULL)

        if "sshd" in parts:
            sshd_part(sshd, n, runs, args.install)
        if "weblog" in parts:
            weblog_part(web, n, runs, args.install)
        if "ingest" in parts:
            ingest_part(work, sshd, web, n, runs)


def sshd_part(sshd: Path, n: int, runs: int, install: bool) -> None:
    print("sshd")
    f2b = tool("fail2ban-regex", "fail2ban", install)
    cmds = [[*PORTOLAN, "parse", str(sshd), "--format", "sshd"],
            [*PORTOLAN, "parse", str(sshd), "--format", "sshd", "--json"]]
    if f2b:
        cmds.append([f2b, str(sshd), "sshd"])
    ours, as_json, *rest = timed_together(cmds, runs)
    theirs = rest[0] if rest else None
    floor = bare_regex(sshd, runs)
    if theirs:
        row("fail2ban-regex FILE sshd", n, theirs)
    row("bare Python loop, one regex on every line", n, floor)
    row("portolan parse --format sshd", n, ours, theirs, "fail2ban-regex")
    row("portolan parse --format sshd --json", n, as_json, theirs, "fail2ban-regex")


def weblog_part(web: Path, n: int, runs: int, install: bool) -> None:
    print("nginx combined")
    goaccess = tool("goaccess", "goaccess", install)
    cmds = [[*PORTOLAN, "parse", str(web), "--format", "weblog"]]
    if goaccess:
        cmds.append([goaccess, str(web), "--log-format=COMBINED", "-o", "csv"])
    ours, *rest = timed_together(cmds, runs)
    theirs = rest[0] if rest else None
    if theirs:
        row("goaccess FILE --log-format=COMBINED -o csv", n, theirs)
    row("portolan parse --format weblog", n, ours, theirs, "goaccess")


def ingest_part(work: Path, sshd: Path, web: Path, n: int, runs: int) -> None:
    print("end to end (parse + enrichment + SQLite store)")
    db = work / "bench.db"

    def fresh() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)

    for label, path, fmt in (("sshd", sshd, "sshd"), ("weblog", web, "weblog")):
        cmd = [*PORTOLAN, "ingest", str(path), "--format", fmt, "--db", f"sqlite:///{db}",
               "--no-progress"]
        forked, alone = timed_together([cmd, [*cmd, "--no-fork"]], runs, fresh)
        row(f"portolan ingest --format {label} (SQLite)", n, forked)
        row(f"portolan ingest --format {label} --no-fork", n, alone)


if __name__ == "__main__":
    main()
