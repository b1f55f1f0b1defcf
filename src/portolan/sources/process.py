"""``process``: start programs, keep them running, and parse what they print.

Each ``[[sources]]`` table of type ``process`` is one program (a spyserver instance with
its config file, for example). The program runs on a pseudo-terminal, so that a program
which never flushes its output when it is not on a terminal (spyserver) still writes each
line as it happens; stdout and stderr arrive together, line by line, through the format
the table names. Every line of a read is parsed before the events are handed on, and a
format that cares where reads begin and end is told (:class:`ReadBoundaries`).

Supervision:

- a program that exits is started again after a back-off that doubles from
  ``backoff_initial`` up to ``backoff_max`` (and starts over once a run has lasted
  ``backoff_max``); each exit is logged with its status or signal;
- on stop, the program's process group gets SIGTERM, then SIGKILL after ``stop_grace``
  seconds; what it prints meanwhile is still parsed, and the parser's ``finish`` (spyserver:
  every open session ends) runs on each exit;
- the program gets ``PR_SET_PDEATHSIG`` = SIGKILL (set by a small launcher that then
  executes it), so it dies with Portolan even when Portolan itself is killed with SIGKILL
  and cannot stop it: no orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable

import msgspec

from portolan.event import Event, make_id
from portolan.formats.base import Parser
from portolan.sources.base import SOURCES, Emitter, SourceContext, SourceOptions, SourceSpec
from portolan.sources.filters import AddressFilter
from portolan.sources.lines import LINE_MAX, LineStats, decode_line
from portolan.text import printable

log = logging.getLogger(__name__)

READ_SIZE = 65536
#: While sessions are open, how often (seconds) the saved state notes that all is well.
HEARTBEAT = 30.0


@runtime_checkable
class ReadBoundaries(Protocol):
    """A parser that wants to know which lines arrived in one read of the output."""

    def start_read(self) -> None:
        """The lines parsed next arrived together, in one read."""

    def end_read(self) -> list[Event]:
        """The read is over; return events held back while it lasted."""
        ...


@runtime_checkable
class Resumable(Protocol):
    """A parser whose open sessions are kept across a crash of Portolan."""

    def snapshot(self) -> list[dict[str, Any]]:
        """What is open, as plain data (saved once the events before it are stored)."""
        ...

    def restore(self, saved: list[dict[str, Any]], ended: dt.datetime) -> list[Event]:
        """Events that end what a previous run left open (it ended at ``ended``)."""
        ...


class ProcessOptions(SourceOptions, kw_only=True, forbid_unknown_fields=True):
    """A program to start, supervise and parse (``type = "process"``)."""

    command: list[str] = msgspec.field(default_factory=list)
    """The program and its arguments, e.g. ``["/opt/spyserver/spyserver", "hf.config"]``."""
    cwd: str = ""
    """Working directory of the program; empty: Portolan's own."""
    env: dict[str, str] = msgspec.field(default_factory=dict)
    """Environment variables to set for the program (added to Portolan's environment)."""
    instance: str = ""
    """Name of this instance in events (``attrs.instance``); empty: the base name of the
    last argument (``hf.config``), or of the program when it has no argument."""
    format: str = "spyserver"
    """Format of the program's output (``spyserver``, or any line format)."""
    echo: bool = False
    """Copy each line the program prints to Portolan's console, prefixed with the
    instance name (control characters shown escaped)."""
    pty: bool = True
    """Run the program on a pseudo-terminal, so that it writes each line at once (and each
    message in one write, which the spyserver format uses to tell a forged line inside a
    client name from a real one). With false, a pipe: wrap the command in ``stdbuf -oL``
    if the program buffers its output."""
    restart: bool = True
    """Start the program again when it exits."""
    backoff_initial: float = 1.0
    """Seconds to wait before the first restart; doubled after each quick exit."""
    backoff_max: float = 60.0
    """Longest wait between restarts; a run that lasts this long resets the back-off."""
    stop_grace: float = 5.0
    """Seconds between SIGTERM and SIGKILL when stopping the program."""
    skip_private: bool = False
    """Drop events from addresses that are not public (private, loopback, link-local,
    shared, documentation ranges)."""
    exclude: list[str] = msgspec.field(default_factory=list)
    """Drop events from these addresses: ``203.0.113.7``, ``10.0.0.0/8`` or ``192.168.*.*``."""


def instance_name(command: list[str]) -> str:
    """The default instance name of a command: its last argument's base name."""
    if not command:
        return "process"
    return Path(command[-1] if len(command) > 1 else command[0]).name or command[0]


#: Runs before the program, in its process: ask the kernel for SIGKILL when Portolan dies
#: (PR_SET_PDEATHSIG = 1, kept across exec), give up if Portolan is already gone, then
#: become the program. A separate interpreter, because code run between fork and exec in
#: a process with threads (preexec_fn) can deadlock.
LAUNCHER = (
    "import ctypes,os,sys\n"
    "ctypes.CDLL(None).prctl(1,9,0,0,0)\n"
    "if os.getppid()!=int(sys.argv[1]):os._exit(1)\n"
    "try:os.execvp(sys.argv[2],sys.argv[2:])\n"
    "except OSError as e:\n"
    " sys.stderr.write(f'portolan: cannot start {sys.argv[2]}: {e.strerror}\\n');os._exit(127)\n"
)


def launch_command(command: list[str]) -> list[str]:
    """``command`` behind the launcher that ties its life to this process."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - PR_SET_PDEATHSIG is Linux's
        return command
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, str(os.getpid()), *command]


def describe_exit(status: int) -> str:
    """``exited with status 1`` or ``killed by signal 9 (SIGKILL)``."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = "?"
        return f"killed by signal {-status} ({name})"
    return f"exited with status {status}"


class ProcessSource:
    """One supervised program; see the module docstring."""

    def __init__(
        self,
        options: ProcessOptions,
        ctx: SourceContext,
        *,
        echo_to: TextIO | None = None,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.options = options
        self.heartbeat = heartbeat
        self.ctx = ctx
        self.instance = options.instance or instance_name(options.command)
        self.name = options.name or f"{options.format}:{self.instance}"
        self.parser: Parser = ctx.parser(options.format, self.name, {"instance": self.instance})
        self.filter = AddressFilter.from_options(options.skip_private, options.exclude)
        self.stats = LineStats()
        self.echo_to = echo_to
        self.runs = 0
        self.pid: int | None = None
        """Process id of the running program (None between runs)."""
        self._proc: asyncio.subprocess.Process | None = None
        self._line_no = 0
        self._run_key = ""
        self._rest = b""
        parser = self.parser
        self._resumable = parser if isinstance(parser, Resumable) else None
        self._saved_open = False

    # -- the supervision loop ----------------------------------------------------------

    async def run(self, out: Emitter) -> None:
        await self._resume(out)
        failures = 0
        while True:
            started = time.monotonic()
            status = await self._run_once(out)
            if not self.options.restart:
                return
            lasted = time.monotonic() - started
            failures = 1 if lasted >= self.options.backoff_max else failures + 1
            delay = min(self.options.backoff_max,
                        self.options.backoff_initial * 2 ** (failures - 1))
            what = describe_exit(status) if status is not None else "could not start"
            log.warning("%s: %s after %.1f s; restarting in %.1f s",
                        self.name, what, lasted, delay)
            await asyncio.sleep(delay)

    async def _run_once(self, out: Emitter) -> int | None:
        try:
            proc, fd = await self._spawn()
        except OSError as exc:
            log.error("%s: cannot start %s: %s", self.name,
                      printable(" ".join(self.options.command), 200), exc.strerror or exc)
            return None
        self._proc = proc
        self.pid = proc.pid
        self.runs += 1
        self._run_key = f"{time.time_ns()}:{proc.pid}"
        self._line_no = 0
        log.info("%s: started %s (pid %d)", self.name, self.options.command[0], proc.pid)
        self._rest = b""
        try:
            await self._drain(out, fd)
        except asyncio.CancelledError:
            await self._stop(out, fd, proc)
            raise
        status = await proc.wait()
        await self._end(out, fd)
        log.info("%s: %s", self.name, describe_exit(status))
        return status

    async def _drain(self, out: Emitter, fd: int) -> None:
        """Parse the program's output until it ends."""
        while True:
            try:
                # (asyncio.timeout, not wait_for: on Python 3.11, wait_for loses a
                # cancellation that comes as the read completes, and the loop runs on)
                async with asyncio.timeout(self.heartbeat):
                    data = await _read(fd)
            except TimeoutError:
                if self._resumable is not None and self._saved_open:
                    await out.emit([], self._checkpoint())
                continue
            if not data:
                return
            self._rest = await self._chunk(out, self._rest + data)

    async def _drain_and_wait(self, out: Emitter, fd: int,
                              proc: asyncio.subprocess.Process) -> int:
        await self._drain(out, fd)
        return await proc.wait()

    async def _stop(self, out: Emitter, fd: int, proc: asyncio.subprocess.Process) -> None:
        """Stop the program (TERM, then KILL after the grace); parse its last words."""
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            status = await asyncio.wait_for(self._drain_and_wait(out, fd, proc),
                                            self.options.stop_grace)
            log.info("%s: stopped; %s", self.name, describe_exit(status))
        except TimeoutError:
            log.warning("%s: still running %.1f s after SIGTERM; sending SIGKILL",
                        self.name, self.options.stop_grace)
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                await asyncio.wait_for(self._drain_and_wait(out, fd, proc), 5.0)
            except TimeoutError:  # pragma: no cover - output held open by a stray process
                log.error("%s: output of pid %d still open after SIGKILL", self.name, proc.pid)
        await self._end(out, fd)

    async def _end(self, out: Emitter, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)
        events: list[Event] = []
        if self._rest:
            events = self._lines([self._rest])
            self._rest = b""
        final = self.parser.finish()
        for index, event in enumerate(final):
            if not event.id:
                event.id = make_id(self.ctx.sensor, self.name, self._run_key, "exit", index)
        events.extend(self._keep(final))
        self.stats.events += len(final)
        await out.emit(events, self._checkpoint())
        self._proc = None
        self.pid = None

    # -- what is open, kept across a crash ---------------------------------------------

    @property
    def state_path(self) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)[:64]
        digest = hashlib.blake2b(self.name.encode(), digest_size=4).hexdigest()
        return self.ctx.state_dir("process") / f"{safe}-{digest}.json"

    def _checkpoint(self) -> Callable[[], None] | None:
        """Saves the parser's open sessions, once the events before them are stored."""
        if self._resumable is None:
            return None
        snapshot = self._resumable.snapshot()
        if not snapshot and not self._saved_open:
            return None
        # checkpoints run in order: the last one made says what the file will hold
        self._saved_open = bool(snapshot)
        path = self.state_path

        def save() -> None:
            data = {"alive": self.ctx.now().isoformat(), "open": snapshot}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)

        return save

    async def _resume(self, out: Emitter) -> None:
        """End the sessions a previous Portolan left open when it was killed."""
        if self._resumable is None:
            return
        path = self.state_path
        try:
            saved = json.loads(path.read_text())
            alive = dt.datetime.fromisoformat(saved["alive"])
            sessions = list(saved["open"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: saved state %s unreadable (%s); ignored", self.name, path, exc)
            return
        if not sessions:
            return
        events = self._resumable.restore(sessions, alive)
        for event in events:
            if not event.id:
                event.id = make_id(self.ctx.sensor, self.name, "lost", event.session)
        log.warning("%s: %d session(s) left open by a previous run end as lost at %s",
                    self.name, len(events), alive.isoformat())
        self._saved_open = True  # so that the (empty) state is written once they are stored
        await out.emit(self._keep(events), self._checkpoint())

    # -- starting ----------------------------------------------------------------------

    async def _spawn(self) -> tuple[asyncio.subprocess.Process, int]:
        options = self.options
        env = {**os.environ, **options.env} if options.env else None
        if options.pty:
            read_fd, write_fd = os.openpty()
            # no "\n" -> "\r\n" translation: lines arrive as the program wrote them
            attrs = termios.tcgetattr(write_fd)
            attrs[1] &= ~termios.OPOST
            attrs[3] &= ~(termios.ECHO | termios.ICANON)
            termios.tcsetattr(write_fd, termios.TCSANOW, attrs)
        else:
            read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *launch_command(options.command),
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                cwd=options.cwd or None,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            os.close(write_fd)
            raise
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return proc, read_fd

    # -- lines -------------------------------------------------------------------------

    async def _chunk(self, out: Emitter, data: bytes) -> bytes:
        """Parse the complete lines of ``data`` (one read); return the unfinished rest."""
        lines = data.split(b"\n")
        rest = lines.pop()
        if len(rest) > LINE_MAX:
            lines.append(rest)
            rest = b""
        if lines:
            events = self._lines(lines)
            if events:
                await out.emit(events, self._checkpoint())
        return rest

    def _lines(self, lines: list[bytes]) -> list[Event]:
        parser = self.parser
        # on a pipe the program's buffer decides where a read ends, not its writes
        reads = parser if self.options.pty and isinstance(parser, ReadBoundaries) else None
        if reads is not None:
            reads.start_read()
        stats = self.stats
        events: list[Event] = []
        for raw in lines:
            self._line_no += 1
            stats.lines += 1
            if len(raw) > LINE_MAX:
                stats.too_long += 1
                raw = raw[:LINE_MAX]
            line = decode_line(raw)
            if self.options.echo:
                self._echo(line)
            found = parser.parse(line)
            if found is None:
                stats.note_unmatched(line)
                log.debug("%s: unmatched line: %s", self.name, printable(line, 200))
                continue
            if not found:
                stats.ignored += 1
                continue
            stats.matched += 1
            self._number(found, self._line_no)
            events.extend(found)
        if reads is not None:
            held = reads.end_read()
            # each held event is a line counted as ignored while it was held
            stats.ignored -= len(held)
            stats.matched += len(held)
            self._number(held, self._line_no, "held")
            events.extend(held)
        stats.events += len(events)
        return self._keep(events)

    def _number(self, events: list[Event], line_no: int, tag: str = "") -> None:
        for index, event in enumerate(events):
            if not event.id:
                event.id = make_id(self.ctx.sensor, self.name, self._run_key, line_no, tag,
                                   index)

    def _keep(self, events: list[Event]) -> list[Event]:
        if not self.filter.active:
            return events
        kept = [e for e in events if not self.filter.drops(e.src_ip)]
        if len(kept) != len(events):
            self.ctx.counters[f"{self.name}: filtered address"] += len(events) - len(kept)
        return kept

    def _echo(self, line: str) -> None:
        stream = self.echo_to if self.echo_to is not None else sys.stderr
        try:
            stream.write(f"{self.instance}| {printable(line)}\n")
            stream.flush()
        except (OSError, ValueError):
            pass


async def _read(fd: int) -> bytes:
    """One read of whatever the program has written (b"" at its end), waiting for it."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return os.read(fd, READ_SIZE)
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno == errno.EIO:  # pty: every writer has closed its end
                return b""
            raise
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _wake, ready)
        try:
            await ready
        finally:
            loop.remove_reader(fd)


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _make(options: ProcessOptions, ctx: SourceContext) -> ProcessSource:
    from portolan.config import ConfigError
    from portolan.plugins import UnknownName

    label = f"process source {options.name or instance_name(options.command)!r}"
    if not options.command:
        raise ConfigError(f"{label}: command: give the program and its arguments, "
                          'e.g. command = ["spyserver", "hf.config"]')
    program = options.command[0]
    cwd = Path(options.cwd) if options.cwd else Path.cwd()
    if options.cwd and not cwd.is_dir():
        raise ConfigError(f"{label}: cwd: {options.cwd!r} is not a directory")
    if shutil.which(program, path=options.env.get("PATH")) is None and not (
        os.sep in program and os.access(cwd / program, os.X_OK)
    ):
        raise ConfigError(f"{label}: command: {program!r} is not an executable program")
    for key in ("backoff_initial", "backoff_max", "stop_grace"):
        if getattr(options, key) < 0:
            raise ConfigError(f"{label}: {key}: must be 0 or more")
    try:
        AddressFilter.from_options(options.skip_private, options.exclude)
    except ValueError as exc:
        raise ConfigError(f"{label}: exclude: {exc}") from None
    try:
        return ProcessSource(options, ctx)
    except UnknownName as exc:
        raise ConfigError(f"{label}: {exc}") from None


SOURCES.add(
    "process",
    SourceSpec("process", "Programs to start and supervise, parsing their console "
               "(spyserver instances)", ProcessOptions, _make),
)
