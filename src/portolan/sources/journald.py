"""``journald``: follow the systemd journal (for systems where sshd logs nowhere else).

It runs ``journalctl --follow --output=json`` with the configured matches (by default
sshd's identifiers) and hands each entry to the format as a syslog line (ISO time, host,
``identifier[pid]: message``), so the ``sshd`` format reads journal entries exactly as it
reads ``auth.log``. Each entry's event id comes from its journal cursor, and the cursor
of the last stored entry is saved in ``state/journald/`` (from the checkpoint callback):
after a restart, even after ``kill -9``, reading goes on right after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from portolan.event import Event
from portolan.sources.base import SOURCES, Emitter, SourceContext, SourceOptions, SourceSpec
from portolan.sources.file import SSHD_LOGS
from portolan.sources.lines import LineFeeder, LineStats

log = logging.getLogger(__name__)

#: Entries handed to the pipeline at a time (or whatever came within BATCH_WAIT).
BATCH_ENTRIES = 1000
BATCH_WAIT = 0.2
#: Longest message kept from one entry, in bytes.
MESSAGE_MAX = 65536


class JournaldOptions(SourceOptions, kw_only=True, forbid_unknown_fields=True):
    """Follow the systemd journal."""

    matches: list[str] = msgspec.field(
        default_factory=lambda: ["SYSLOG_IDENTIFIER=sshd", "SYSLOG_IDENTIFIER=sshd-session"])
    """journalctl matches (``FIELD=value``); several of one field are alternatives."""
    format: str = "sshd"
    """Format of the messages."""
    format_options: dict[str, Any] = {}
    """Options of the format."""
    syslog_line: bool = True
    """Give the format a syslog line (time, host, ``identifier[pid]:``, message), as the
    ``sshd`` format expects; false: the bare message."""
    files: list[str] = []
    """Journal files to read instead of the system journal (``journalctl --file``)."""
    directory: str = ""
    """A journal directory to read instead of the system journal (``journalctl -D``)."""
    start_at: Literal["end", "beginning"] = "end"
    """Where to start the first time (no saved cursor): new entries only, or all."""
    journalctl: str = "journalctl"
    """The journalctl program."""


class JournaldSource:
    """See the module docstring."""

    def __init__(self, options: JournaldOptions, ctx: SourceContext) -> None:
        self.options = options
        self.ctx = ctx
        self.name = options.name or "journald"
        key = hashlib.blake2b(self.name.encode(), digest_size=8).hexdigest()
        self.state = ctx.state_dir("journald") / f"{key}.json"
        self.stats = LineStats()
        parser = ctx.parser(options.format, self.name, dict(options.format_options))
        self.feeder = LineFeeder(parser, ctx.sensor, "journal", self.stats)

    def cursor(self) -> str | None:
        try:
            value = json.loads(self.state.read_text(encoding="utf-8")).get("cursor")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    def command(self) -> list[str]:
        o = self.options
        cmd = [o.journalctl, "--follow", "--merge", "--output=json", "--no-pager", "--quiet"]
        cursor = self.cursor()
        if cursor:
            cmd += [f"--after-cursor={cursor}", "--no-tail"]
        elif o.start_at == "beginning":
            cmd.append("--no-tail")
        else:
            cmd.append("--lines=0")
        cmd += [f"--file={f}" for f in o.files]
        if o.directory:
            cmd.append(f"--directory={o.directory}")
        cmd += o.matches
        return cmd

    async def run(self, out: Emitter) -> None:
        delay = 1.0
        while True:
            started = asyncio.get_running_loop().time()
            try:
                code, err = await self._follow(out)
            except OSError as exc:  # journalctl missing, not executable
                code, err = None, f"cannot run {self.options.journalctl}: {exc.strerror}"
            log.warning("journalctl ended (status %s): %s; starting it again in %.0f s",
                        code, err or "no message", delay)
            if asyncio.get_running_loop().time() - started > 60:
                delay = 1.0
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _follow(self, out: Emitter) -> tuple[int | None, str]:
        proc = await asyncio.create_subprocess_exec(
            *self.command(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, limit=4 * MESSAGE_MAX)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            pending: list[bytes] = []
            while True:
                try:
                    async with asyncio.timeout(BATCH_WAIT if pending else None):
                        raw = await proc.stdout.readline()
                except TimeoutError:
                    await self._emit(pending, out)
                    pending = []
                    continue
                except ValueError:  # an entry beyond the reader's limit
                    self.ctx.counters["journald: entry too long"] += 1
                    continue
                if not raw:
                    break
                pending.append(raw)
                if len(pending) >= BATCH_ENTRIES:
                    await self._emit(pending, out)
                    pending = []
            await self._emit(pending, out)
            err = (await proc.stderr.read()).decode("utf-8", "replace").strip()
            return await proc.wait(), err.splitlines()[-1] if err else ""
        finally:
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.wait_for(proc.wait(), 5)

    async def _emit(self, raws: list[bytes], out: Emitter) -> None:
        events: list[Event] = []
        cursor = None
        for raw in raws:
            try:
                entry = json.loads(raw)
            except ValueError:
                self.ctx.counters["journald: not JSON"] += 1
                continue
            cursor = entry.get("__CURSOR") or cursor
            line = self._line(entry)
            if line is not None and cursor:
                events.extend(self.feeder.feed(cursor, line))
        if cursor is not None:
            await out.emit(events, self._checkpoint(cursor))

    def _line(self, entry: dict[str, Any]) -> bytes | None:
        message = _text(entry.get("MESSAGE"))
        if message is None:
            return None
        message = message[:MESSAGE_MAX].replace("\n", " ")
        if not self.options.syslog_line:
            return message.encode("utf-8", "replace")
        try:
            micros = int(entry["__REALTIME_TIMESTAMP"])
            when = dt.datetime.fromtimestamp(micros / 1e6, dt.UTC).isoformat()
        except (KeyError, ValueError, OverflowError, OSError):
            when = ""
        host = _text(entry.get("_HOSTNAME")) or "-"
        ident = _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM")) or "-"
        pid = _text(entry.get("SYSLOG_PID")) or _text(entry.get("_PID"))
        tag = f"{ident}[{pid}]" if pid and pid.isdigit() else ident
        text = f"{when} {host} {tag}: {message}" if when else f"{host} {tag}: {message}"
        return text.encode("utf-8", "replace")

    def _checkpoint(self, cursor: str) -> Callable[[], None]:
        def save() -> None:
            tmp = self.state.with_suffix(".tmp")
            tmp.write_text(json.dumps({"cursor": cursor}), encoding="utf-8")
            os.replace(tmp, self.state)
        return save


def _text(value: Any) -> str | None:
    """A journal field as text: JSON strings as they are, byte arrays (what journalctl
    writes for fields that are not UTF-8) decoded with replacement."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def _make(options: JournaldOptions, ctx: SourceContext) -> JournaldSource:
    return JournaldSource(options, ctx)


def journal_readable(journalctl: str = "journalctl", where: tuple[str, ...] = ()) -> bool:
    """Whether journalctl exists and this user can read the journal (``where``: the
    journalctl arguments that name it; none: the system's)."""
    if shutil.which(journalctl) is None:
        return False
    try:
        done = subprocess.run([journalctl, "--quiet", "--lines=1", "--no-pager", "--merge",
                               *where], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and not done.stderr.strip() and bool(done.stdout.strip())


def sshd_journal_defaults(logs: tuple[str, ...] = SSHD_LOGS, journalctl: str = "journalctl",
                          where: tuple[str, ...] = ()) -> list[SourceOptions]:
    """sshd's journal, when no sshd log file is readable (the file source takes that one)
    and the journal is."""
    if any(os.path.isfile(p) and os.access(p, os.R_OK) for p in logs):
        return []
    if not journal_readable(journalctl, where):
        return []
    return [JournaldOptions(type="journald", name="journal:sshd", journalctl=journalctl)]


def _defaults(ctx: SourceContext) -> list[SourceOptions]:
    return sshd_journal_defaults()


SOURCES.add("journald", SourceSpec(
    "journald", "Follow the systemd journal (sshd on Debian 12, Ubuntu 24.04...)",
    JournaldOptions, _make, defaults=_defaults))
