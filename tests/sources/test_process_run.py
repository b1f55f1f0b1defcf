"""``portolan run`` supervising several spyserver instances (the stand-in), with real
clients, kills and restarts; the sessions checked in the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from portolan.store import Store
from tests.sources.spyserver_kit import (
    alive,
    client,
    command,
    local_port,
    pid_of,
    port_of,
    wait_sync,
    write_config,
)


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"'
                           for i in items) + "]"


def write_portolan_config(tmp_path: Path, db: str, configs: dict[str, Path],
                          extra: str = "") -> Path:
    text = [f'data_dir = "{tmp_path / "data"}"', "[store]", f'url = "{db}"']
    for instance, config in configs.items():
        text += [
            "[[sources]]", 'type = "process"', f'instance = "{instance}"',
            f"command = {toml_list(command(config))}",
            "backoff_initial = 0.2", "stop_grace = 5.0", extra,
        ]
    path = tmp_path / "portolan.toml"
    path.write_text("\n".join(text) + "\n")
    return path


@contextmanager
def portolan_run(cfg: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "run.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "portolan", "-c", str(cfg), "run"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        log.close()


def sessions(store: Store) -> dict[int, dict[str, Any]]:
    return {s["src_port"]: s for s in store.sessions(service="spyserver", limit=1000)}


def test_three_instances_with_kills_and_restarts(tmp_path: Path, sqlite_url: str) -> None:
    configs = {name: write_config(tmp_path, f"{name}.config") for name in ("hf", "one", "two")}
    cfg = write_portolan_config(tmp_path, sqlite_url, configs)
    store = Store(sqlite_url)
    with portolan_run(cfg, tmp_path) as proc:
        ports = {n: wait_sync(lambda c=c: port_of(c), what=f"{n} listening")
                 for n, c in configs.items()}
        a = client(ports["hf"], b"SDR# 1700.0.0.1 on Windows")
        b = client(ports["hf"], b"SDR++")
        c = client(ports["one"], b"SpyClient for Python v1.0")
        d = client(ports["two"], b"")
        pa, pb, pc, pd = map(local_port, (a, b, c, d))
        wait_sync(lambda: {pa, pb, pc, pd} <= set(sessions(store)), what="four sessions")
        a.close()
        wait_sync(lambda: sessions(store)[pa]["end"] is not None, what="a ended")

        # instance "one" dies: its open session ends with it, and it comes back
        first_one = pid_of(configs["one"])
        assert first_one is not None
        os.unlink(f"{configs['one']}.port")
        os.kill(first_one, signal.SIGKILL)
        wait_sync(lambda: sessions(store)[pc]["end"] is not None, what="c ended by the exit")
        new_port = wait_sync(lambda: port_of(configs["one"]), what="one restarted")
        assert pid_of(configs["one"]) != first_one
        e = client(new_port, b"SDR# 1716.0.0.2 on Linux")
        pe = local_port(e)
        wait_sync(lambda: pe in sessions(store), what="e connected after the restart")

        # "hf" loses its device: its open sessions end, with no disconnect line each
        hf = pid_of(configs["hf"])
        assert hf is not None
        os.kill(hf, signal.SIGUSR1)
        wait_sync(lambda: sessions(store)[pb]["end"] is not None, what="b ended")

        children = [pid_of(c) for c in configs.values()]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    for sock in (b, c, d, e):
        sock.close()
    for pid in children:
        assert pid is not None and not alive(pid)
    found = sessions(store)
    store.close()
    reasons = {p: found[p]["attrs"]["reason"] for p in (pa, pb, pc, pd, pe)}
    assert reasons == {pa: "client", pb: "device_lost", pc: "exit", pd: "shutdown",
                       pe: "shutdown"}
    for port in (pa, pb, pc, pd, pe):
        s = found[port]
        assert s["start"] is not None and s["end"] is not None, s
        assert s["duration"] == (s["end"] - s["start"]).total_seconds()
        assert s["src_ip"] == "127.0.0.1" and s["service"] == "spyserver"
    assert [found[pa]["attrs"][k] for k in ("instance", "client", "software", "version", "os")] \
        == ["hf", "SDR# 1700.0.0.1 on Windows", "SDR#", "1700.0.0.1", "Windows"]
    assert found[pc]["attrs"]["software"] == "SpyClient for Python"
    assert found[pd]["attrs"]["instance"] == "two" and found[pd]["attrs"]["client"] is None
    assert found[pe]["attrs"]["instance"] == "one" and found[pe]["attrs"]["os"] == "Linux"
    log = (tmp_path / "run.log").read_text()
    assert "spyserver:one: killed by signal 9 (SIGKILL)" in log


def test_no_orphans_when_portolan_is_killed_and_no_session_left_open(
        tmp_path: Path, sqlite_url: str) -> None:
    configs = {name: write_config(tmp_path, f"{name}.config") for name in ("hf", "one")}
    cfg = write_portolan_config(tmp_path, sqlite_url, configs)
    store = Store(sqlite_url)
    with portolan_run(cfg, tmp_path) as proc:
        port = wait_sync(lambda: port_of(configs["hf"]), what="hf listening")
        wait_sync(lambda: port_of(configs["one"]), what="one listening")
        children = [pid_of(c) for c in configs.values()]
        c = client(port, b"SDR++")
        pc = local_port(c)
        wait_sync(lambda: pc in sessions(store), what="session stored")
        # the open session is noted in the source's state once it is stored
        state = tmp_path / "data" / "state" / "process"
        wait_sync(lambda: any(f'"port": {pc}' in f.read_text() for f in state.glob("*.json")),
                  what="open session saved")
        proc.kill()  # SIGKILL: Portolan cannot stop anything itself
        proc.wait(30)
    for pid in children:
        assert pid is not None
        wait_sync(lambda p=pid: not alive(p), what=f"pid {pid} gone")
    c.close()
    assert sessions(store)[pc]["end"] is None  # nobody saw it end...
    for config in configs.values():
        os.unlink(f"{config}.port")
    with portolan_run(cfg, tmp_path) as proc:
        # ...so the next start ends it, as lost, when the last Portolan was last alive
        wait_sync(lambda: sessions(store)[pc]["end"] is not None, what="stale session ended")
        wait_sync(lambda: port_of(configs["hf"]), what="hf listening again")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    s = sessions(store)[pc]
    store.close()
    assert s["attrs"]["reason"] == "lost"
    assert s["end"] >= s["start"] and s["duration"] == (s["end"] - s["start"]).total_seconds()
