"""``portolan watch``, run as a user runs it, supervising the spyserver stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
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

PORTOLAN = [sys.executable, "-m", "portolan"]


class Lines:
    """Reads a pipe in a thread, so the test can wait for what it expects."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def join(self) -> None:
        self._thread.join(10)


def test_watch_prints_stores_and_stops_cleanly(tmp_path: Path, sqlite_url: str) -> None:
    config = write_config(tmp_path, "hf.config")
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [*PORTOLAN, "watch", "--instance", "hf", "--json", "--db", sqlite_url, "--",
         *command(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        port = wait_sync(lambda: port_of(config), what="listening")
        c = client(port, b"SDR# 1700.0.0.1 on Windows")
        mine = local_port(c)
        wait_sync(lambda: any('"connect"' in line for line in out.lines), what="connect")
        c.close()
        wait_sync(lambda: any('"disconnect"' in line for line in out.lines), what="disconnect")
        # the program's console is echoed with the instance name
        wait_sync(lambda: f"hf| Client disconnected: 127.0.0.1:{mine}" in err.lines,
                  what="echo")
        still = client(port, b"SDR++")
        still_port = local_port(still)
        wait_sync(lambda: sum('"connect"' in line for line in out.lines) == 2, what="2nd")
        child = pid_of(config)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        out.join()
        err.join()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert child is not None and not alive(child)
    events = [json.loads(line) for line in out.lines]
    assert [(e["action"], e["attrs"]["reason"] if e["action"] == "disconnect" else None)
            for e in events] == [("connect", None), ("disconnect", "client"),
                                 ("connect", None), ("disconnect", "shutdown")]
    assert events[0]["attrs"]["software"] == "SDR#" and events[0]["src_port"] == mine
    store = Store(sqlite_url)
    sessions = {s["src_port"]: s for s in store.sessions(service="spyserver")}
    assert sessions[mine]["duration"] is not None and sessions[mine]["end"] is not None
    assert sessions[mine]["attrs"]["instance"] == "hf"
    assert sessions[mine]["attrs"]["client"] == "SDR# 1700.0.0.1 on Windows"
    assert sessions[still_port]["attrs"]["reason"] == "shutdown"
    assert store.sessions(active=True) == []
    store.close()
    still.close()


def test_watch_says_what_is_wrong(tmp_path: Path) -> None:
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path)}
    done = subprocess.run([*PORTOLAN, "watch", "--no-store", "--", "no-such-program-here"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "'no-such-program-here' is not an executable program" in done.stderr
    done = subprocess.run([*PORTOLAN, "watch", "--help"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0 and "--exclude PATTERN" in done.stdout
