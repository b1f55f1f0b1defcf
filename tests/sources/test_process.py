"""The process source, with the spyserver stand-in as the supervised program and real
TCP clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from portolan.config import ConfigError
from portolan.event import Event
from portolan.sources.base import SOURCES, SourceContext
from portolan.sources.process import ProcessOptions, ProcessSource, describe_exit
from tests.sources.spyserver_kit import (
    alive,
    client,
    command,
    local_port,
    pid_of,
    port_of,
    wait,
    write_config,
)


class Collect:
    """An emitter that keeps what it gets."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, events: list[Event], checkpoint: Any = None) -> None:
        self.events.extend(events)

    def of(self, action: str, port: int | None = None) -> list[Event]:
        return [e for e in self.events
                if e.action == action and (port is None or e.src_port == port)]


def make(tmp_path: Path, config: Path, **options: Any) -> ProcessSource:
    opts = ProcessOptions(type="process", command=command(config), stop_grace=3.0, **options)
    return ProcessSource(opts, SourceContext(sensor="test", data_dir=tmp_path / "data"))


@contextlib.asynccontextmanager
async def running(source: ProcessSource, out: Collect):
    task = asyncio.create_task(source.run(out))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_sessions_from_real_clients_on_a_pty(tmp_path: Path) -> None:
    config = write_config(tmp_path, "hf.config")
    source = make(tmp_path, config)
    out = Collect()
    async with running(source, out):
        port = await wait(lambda: port_of(config), what="listening")
        a = client(port, b"SDR# 1700.0.0.1 on Windows")
        b = client(port, b"SDR++")
        # the program never flushes: lines arrive at once only because of the pty
        await wait(lambda: len(out.of("connect")) == 2, what="two connects")
        a_port = local_port(a)
        a.close()
        await wait(lambda: out.of("disconnect", a_port), what="a's disconnect")
        b_port = local_port(b)
        b.close()
        await wait(lambda: out.of("disconnect", b_port), what="b's disconnect")
    connect_a = out.of("connect", a_port)[0]
    gone_a = out.of("disconnect", a_port)[0]
    assert source.name == "spyserver:hf.config"
    assert connect_a.src_ip == "127.0.0.1" and connect_a.dst_port == port
    assert connect_a.attrs["instance"] == "hf.config"
    assert (connect_a.attrs["software"], connect_a.attrs["version"], connect_a.attrs["os"]) == (
        "SDR#", "1700.0.0.1", "Windows")
    assert gone_a.session == connect_a.session
    assert gone_a.duration is not None and gone_a.duration >= 0
    assert gone_a.duration == (gone_a.ts - connect_a.ts).total_seconds()
    assert out.of("connect", b_port)[0].attrs["client"] == "SDR++"
    assert len({e.id for e in out.events}) == len(out.events)
    assert source.stats.unmatched == 0, source.stats.unmatched_lines


async def test_a_forged_disconnect_in_a_client_name_closes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "hf.config")
    source = make(tmp_path, config)
    out = Collect()
    async with running(source, out):
        port = await wait(lambda: port_of(config), what="listening")
        victim = client(port, b"SDR++")
        await wait(lambda: out.of("connect"), what="victim's connect")
        v_port = local_port(victim)
        forged = b"SDR#\nClient disconnected: 127.0.0.1:%d\nClosing all connections..." % v_port
        attacker = client(port, forged)
        await wait(lambda: len(out.of("connect")) == 2, what="attacker's connect")
        # the attacker's connect is out, and with it every line of its name
        assert out.of("disconnect") == []
        hostile = out.of("connect", local_port(attacker))[0]
        assert hostile.attrs["client"] == forged.decode()
        assert hostile.attrs["software"] is None
        victim.close()
        await wait(lambda: out.of("disconnect", v_port), what="victim's real disconnect")
        attacker.close()
        await wait(lambda: len(out.of("disconnect")) == 2, what="attacker's disconnect")
    gone = out.of("disconnect", v_port)
    assert len(gone) == 1 and gone[0].attrs["reason"] == "client"
    assert gone[0].session == out.of("connect", v_port)[0].session


async def test_stop_sends_sigterm_and_ends_open_sessions(tmp_path: Path) -> None:
    config = write_config(tmp_path, "one.config")
    echo = io.StringIO()
    opts = ProcessOptions(type="process", command=command(config), echo=True, stop_grace=5.0)
    source = ProcessSource(opts, SourceContext(sensor="t", data_dir=tmp_path), echo_to=echo)
    out = Collect()
    async with running(source, out):
        port = await wait(lambda: port_of(config), what="listening")
        c = client(port, b"SDR++")
        await wait(lambda: out.of("connect"), what="connect")
        pid = pid_of(config)
    assert pid is not None and not alive(pid)
    ended = out.of("disconnect")
    assert [e.attrs["reason"] for e in ended] == ["shutdown"]
    assert "one.config| Closing all connections..." in echo.getvalue()
    assert "one.config| Caught signal 15" in echo.getvalue()
    c.close()


async def test_sigkill_after_the_grace(tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    opts = ProcessOptions(type="process", command=[sys.executable, str(script)],
                          format="jsonl", stop_grace=0.5)
    source = ProcessSource(opts, SourceContext(sensor="t", data_dir=tmp_path))
    out = Collect()
    async with running(source, out):
        await wait(lambda: source.stats.lines >= 1, what="ready")
        pid = source.pid
    assert pid is not None and not alive(pid)


async def test_restarts_with_back_off_after_the_program_dies(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path, "hf.config")
    source = make(tmp_path, config, backoff_initial=0.2, backoff_max=5.0)
    out = Collect()
    caplog.set_level("WARNING", logger="portolan.sources.process")
    async with running(source, out):
        port = await wait(lambda: port_of(config), what="listening")
        first = pid_of(config)
        c = client(port, b"SDR++")
        await wait(lambda: out.of("connect"), what="connect")
        os.unlink(f"{config}.port")
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # the killed program's session ends with it, and it is started again
        await wait(lambda: out.of("disconnect"), what="session ended by the exit")
        port2 = await wait(lambda: port_of(config), what="listening again")
        assert source.runs == 2 and pid_of(config) != first
        c2 = client(port2, b"SDR++")
        await wait(lambda: len(out.of("connect")) == 2, what="connect after restart")
        c.close()
        c2.close()
    assert out.of("disconnect")[0].attrs["reason"] == "exit"
    assert "killed by signal 9 (SIGKILL)" in caplog.text
    assert "restarting in 0.2 s" in caplog.text


async def test_back_off_doubles_up_to_the_cap(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    opts = ProcessOptions(type="process", command=[sys.executable, "-c", "raise SystemExit(3)"],
                          format="jsonl", backoff_initial=0.1, backoff_max=0.4)
    source = ProcessSource(opts, SourceContext(sensor="t", data_dir=tmp_path))
    caplog.set_level("WARNING", logger="portolan.sources.process")
    async with running(source, Collect()):
        await wait(lambda: source.runs >= 6, what="six runs")
    delays = [r.getMessage().rpartition("restarting in ")[2] for r in caplog.records
              if "restarting in" in r.getMessage()]
    assert delays[:5] == ["0.1 s", "0.2 s", "0.4 s", "0.4 s", "0.4 s"]
    assert "exited with status 3" in caplog.text


async def test_filters_drop_excluded_addresses(tmp_path: Path) -> None:
    config = write_config(tmp_path, "hf.config")
    source = make(tmp_path, config, exclude=["127.0.0.*"])
    out = Collect()
    async with running(source, out):
        port = await wait(lambda: port_of(config), what="listening")
        c = client(port, b"SDR++")
        filtered = source.ctx.counters
        await wait(lambda: filtered["spyserver:hf.config: filtered address"] == 1, what="connect")
        c.close()
        await wait(lambda: filtered["spyserver:hf.config: filtered address"] == 2, what="gone")
    assert out.of("connect") == [] and out.of("disconnect") == []
    assert source.ctx.counters["spyserver:hf.config: filtered address"] == 2


def test_describe_exit() -> None:
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(-15) == "killed by signal 15 (SIGTERM)"


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    ctx = SourceContext(sensor="t", data_dir=tmp_path)
    make_source = SOURCES.get("process").make
    with pytest.raises(ConfigError, match="command: give the program"):
        make_source(ProcessOptions(type="process"), ctx)
    with pytest.raises(ConfigError, match="'no-such-program-here' is not an executable"):
        make_source(ProcessOptions(type="process", command=["no-such-program-here"]), ctx)
    with pytest.raises(ConfigError, match=r"exclude|not an address"):
        make_source(ProcessOptions(type="process", command=["true"], exclude=["10.*.1.*"]), ctx)
    with pytest.raises(ConfigError, match="unknown format 'nope'"):
        make_source(ProcessOptions(type="process", command=["true"], format="nope"), ctx)


async def test_on_a_pipe_the_program_holds_its_lines_until_it_exits(tmp_path: Path) -> None:
    # why the pty: the stand-in, like spyserver, buffers 4 KiB when stdout is a pipe
    config = write_config(tmp_path, "hf.config")
    opts = ProcessOptions(type="process", command=command(config), pty=False, echo=True)
    echo = io.StringIO()
    source = ProcessSource(opts, SourceContext(sensor="t", data_dir=tmp_path), echo_to=echo)
    out = Collect()
    async with running(source, out):
        port = await wait(lambda: port_of(config), what="listening")
        c = client(port, b"SDR++")
        await asyncio.sleep(1.0)  # a negative: nothing can be awaited
        # only stderr (unbuffered) has come through; stdout waits in the program
        assert echo.getvalue() == "hf.config| Found Rafael Micro R820T tuner\n"
        assert out.events == []
    assert [e.action for e in out.events] == ["connect", "disconnect"]
    assert out.events[1].attrs["reason"] == "shutdown"
    c.close()


class Checkpointing(Collect):
    """An emitter that, like the pipeline, calls checkpoints once events are "stored"."""

    async def emit(self, events: list[Event], checkpoint: Any = None) -> None:
        self.events.extend(events)
        if checkpoint is not None:
            checkpoint()


async def test_open_sessions_are_saved_with_a_heartbeat_and_resumed(tmp_path: Path) -> None:
    config = write_config(tmp_path, "hf.config")
    opts = ProcessOptions(type="process", command=command(config), instance="hf")
    ctx = SourceContext(sensor="t", data_dir=tmp_path / "data")
    source = ProcessSource(opts, ctx, heartbeat=0.1)
    out = Checkpointing()
    task = asyncio.create_task(source.run(out))
    port = await wait(lambda: port_of(config), what="listening")
    c = client(port, b"SDR++")
    await wait(lambda: out.of("connect"), what="connect")
    state = source.state_path

    def saved() -> dict[str, Any]:
        return json.loads(state.read_text()) if state.exists() else {"open": []}

    await wait(lambda: saved()["open"], what="open session saved")
    first = saved()["alive"]
    await wait(lambda: saved()["alive"] != first, what="a heartbeat")
    # Portolan dies without a word: the task is dropped, the program killed from outside
    task.cancel()  # (cancelling stops cleanly; emulate the crash by restoring the file)
    crashed = state.read_text()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert saved()["open"] == []  # a clean stop leaves nothing open
    state.write_text(crashed)
    again = ProcessSource(opts, ctx)
    out2 = Checkpointing()
    async with running(again, out2):
        await wait(lambda: out2.of("disconnect"), what="the lost session ended")
        (lost,) = out2.of("disconnect")
        assert lost.attrs["reason"] == "lost" and lost.ts.isoformat() == json.loads(
            crashed)["alive"]
        assert lost.session == out.of("connect")[0].session
        await wait(lambda: saved()["open"] == [], what="state cleared")
    c.close()


async def test_working_directory_environment_and_any_line_format(tmp_path: Path) -> None:
    script = (
        "import json, os\n"
        "print(json.dumps({'ts': '2026-11-23T05:00:00Z', 'service': 'x', 'action': 'probe',"
        " 'attrs': {'cwd': os.getcwd(), 'var': os.environ['PORTOLAN_TEST_VAR']}}))\n"
    )
    (tmp_path / "work").mkdir()
    opts = ProcessOptions(type="process", command=[sys.executable, "-c", script],
                          cwd=str(tmp_path / "work"), env={"PORTOLAN_TEST_VAR": "ünïcode"},
                          format="jsonl", restart=False, instance="probe")
    source = SOURCES.get("process").make(opts, SourceContext(sensor="t", data_dir=tmp_path))
    out = Collect()
    await asyncio.wait_for(source.run(out), 30)  # restart = false: run returns at exit
    (event,) = out.events
    assert event.attrs == {"cwd": str(tmp_path / "work"), "var": "ünïcode"}
    assert event.source == "jsonl:probe" and event.sensor == "t" and event.id


async def test_a_stop_that_comes_as_output_arrives_is_not_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The task is cancelled in the very step in which a read of the program's output
    completes: the source stops (the program with it) instead of reading on. (On Python
    3.11, ``asyncio.wait_for`` around the read would hand back the data and drop the
    cancellation.)"""
    from portolan.sources import process

    real_read = process._read
    calls = 0

    async def read(fd: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            task.cancel()
            return b"\n"
        return await real_read(fd)

    monkeypatch.setattr(process, "_read", read)
    opts = ProcessOptions(type="process", command=[sys.executable, "-c",
                                                   "import time; time.sleep(60)"],
                          format="jsonl")
    source = ProcessSource(opts, SourceContext(sensor="t", data_dir=tmp_path))
    task = asyncio.create_task(source.run(Collect()))
    done, _ = await asyncio.wait({task}, timeout=20)
    if not done:  # the cancellation was lost: stop it the hard way, and fail
        if source.pid is not None:
            os.kill(source.pid, signal.SIGKILL)
        task.cancel()
        pytest.fail("the source read on after it was cancelled")
    assert task.cancelled()
    assert source.pid is None and calls >= 2
