"""Helpers shared by the tests that run the spyserver stand-in (``fake_spyserver.py``)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FAKE = Path(__file__).with_name("fake_spyserver.py")
_spec = importlib.util.spec_from_file_location("fake_spyserver", FAKE)
assert _spec is not None and _spec.loader is not None
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)


def write_config(folder: Path, name: str, **values: object) -> Path:
    """A spyserver-style config file for the stand-in (port 0: any free port)."""
    path = folder / name
    settings = {"bind_host": "127.0.0.1", "bind_port": 0, **values}
    path.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    for suffix in (".port", ".pid"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def command(config: Path) -> list[str]:
    return [sys.executable, str(FAKE), str(config)]


def wait_sync(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


async def wait(cond: Callable[[], Any], seconds: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def read_int(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


def port_of(config: Path) -> int | None:
    return read_int(Path(f"{config}.port"))


def pid_of(config: Path) -> int | None:
    return read_int(Path(f"{config}.pid"))


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def client(port: int, name: bytes, version: int | None = None) -> socket.socket:
    """A TCP client that connects and says HELLO with ``name``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(fake.hello(name) if version is None else fake.hello(name, version))
    return sock


def local_port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
