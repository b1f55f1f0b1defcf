"""``portolan serve`` and the server inside ``portolan run``, as real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def wait_until(check: object, seconds: float) -> None:
    """Poll until ``check()`` is true (the server may not answer yet)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (httpx.TransportError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, "the server did not answer in time"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def portolan(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "portolan", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode()


def test_serve_answers_and_stops_cleanly(sqlite_url: str) -> None:
    port = free_port()
    proc = portolan("serve", "--db", sqlite_url, "--listen", f"127.0.0.1:{port}")
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code
                   == 200, 30)
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/events")
        assert r.json() == {"events": [], "next": None}
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert f"127.0.0.1:{port}" in err


def test_serve_says_when_the_port_is_taken(sqlite_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = portolan("serve", "--db", sqlite_url, "--listen", f"127.0.0.1:{port}")
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "server.listen" in err.decode() and str(port) in err.decode()


def test_bad_listen_value(sqlite_url: str) -> None:
    proc = portolan("serve", "--db", sqlite_url, "--listen", "localhost")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "HOST:PORT" in err.decode()


def test_run_starts_the_server(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    config = tmp_path / "portolan.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[server]\nlisten = "127.0.0.1:{port}"\n'
                      f'[store]\nurl = "{sqlite_url}"\n')
    proc = portolan("-c", str(config), "run")
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/api/v1/info").json()["version"],
                   30)
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "service: server" in err
