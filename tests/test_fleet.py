"""A fleet, for real: three sensor processes forward to two collector processes on one
PostgreSQL; collectors are killed with SIGKILL and restarted mid-stream, a sensor too, and
the database is restarted once. At the end every event produced is stored exactly once,
and every spool is empty.

The PostgreSQL here is a private cluster the test creates (``initdb``) on a port of its
own, so that restarting it disturbs nothing else on the machine.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.waiting import eventually_sync

LINES_PER_SENSOR = 1500
CONNECTIONS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivatePostgres:
    bindir: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bindir / "pg_ctl"), "-D",
             str(self.data), "-w", "-t", "60", *args], check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c max_connections=100", "-l", str(self.data / "log"), "start")

    def restart(self) -> None:
        self._ctl("-m", "fast", "stop")
        self.start()

    def stop(self) -> None:
        self._ctl("-m", "immediate", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("needs root and PostgreSQL's initdb to make a private database cluster")
    bindir = Path(found[-1]).parent
    top = Path(tempfile.mkdtemp(prefix="portolan-pg-"))
    top.chmod(0o755)
    data = top / "data"
    data.mkdir()
    pg = pwd.getpwnam("postgres")
    os.chown(data, pg.pw_uid, pg.pw_gid)
    subprocess.run(["runuser", "-u", "postgres", "--", str(bindir / "initdb"), "-D", str(data),
                    "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    server = PrivatePostgres(bindir, data, free_port())
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(top, ignore_errors=True)


def portolan(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A portolan process; what it says goes to ``log`` (read it when a test fails)."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "portolan", "-q", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=out)


@dataclass
class Collector:
    db_url: str
    home: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PORTOLAN_DATA_DIR": str(self.home)}
        self.home.mkdir(exist_ok=True)
        self.proc = portolan("serve", "--db", self.db_url, "--listen", f"127.0.0.1:{self.port}",
                             env=env, log=self.home / "collector.log")

        def up() -> bool:
            try:
                return httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert eventually_sync(up, 60), "collector did not start"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@dataclass
class Sensor:
    name: str
    home: Path
    collector: Collector
    token: str
    listen_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.home / "auth.log"

    def config(self) -> Path:
        path = self.home / "sensor.toml"
        listener = ""
        if self.listen_port is not None:
            listener = (f'\n[[sources]]\ntype = "listener"\nports = [{self.listen_port}]\n'
                        'bind = ["127.0.0.1"]\nread_timeout = 1.0\npayload_gap = 0.2\n')
        path.write_text(
            f'sensor = "{self.name}"\ndata_dir = "{self.home}"\n'
            '[store]\nenabled = false\n'
            f'[forward]\nurl = "{self.collector.url}"\ntoken = "{self.token}"\n'
            'batch_size = 200\nretry_max_seconds = 0.5\ntimeout = 5\n'
            '[server]\nenabled = false\n'
            '[pipeline]\nbatch_size = 200\nbatch_delay = 0.05\n'
            f'[[sources]]\ntype = "file"\npaths = ["{self.log}"]\nformat = "sshd"\n'
            'start_at = "beginning"\npoll_interval = 0.05\n' + listener)
        return path

    def start(self) -> None:
        self.proc = portolan("-c", str(self.config()), "run", env=dict(os.environ),
                             log=self.home / "sensor.log")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def spool_depth(self) -> int:
        path = self.home / "spool.db"
        if not path.exists():
            return 0
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])


def append_lines(sensor: Sensor, done: threading.Event) -> None:
    """sshd lines, a few at a time, as a busy sshd writes them."""
    with sensor.log.open("a") as f:
        for i in range(LINES_PER_SENSOR):
            f.write(f"Nov 23 05:{i // 60 % 60:02d}:{i % 60:02d} {sensor.name} sshd[{1000 + i}]: "
                    f"Failed password for root from 198.51.100.{i % 200} port {20000 + i} ssh2\n")
            if i % 25 == 24:
                f.flush()
                time.sleep(0.02)
    done.set()


def connect_clients(port: int, done: threading.Event) -> None:
    """Real TCP clients on loopback: each sends a line and closes."""
    for _ in range(CONNECTIONS):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"hello portolan\r\n")
        time.sleep(0.03)
    done.set()


def counts(db_url: str) -> dict[str, tuple[int, int]]:
    try:
        with psycopg.connect(db_url, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT sensor || ':' || action, count(*), count(DISTINCT id) FROM events "
                "GROUP BY 1").fetchall()
    except psycopg.OperationalError:
        return {}
    return {k: (n, d) for k, n, d in rows}


def test_fleet_stores_every_event_exactly_once(private_postgres: PrivatePostgres,
                                               tmp_path: Path) -> None:
    db = private_postgres.url
    env = {**os.environ, "PORTOLAN_DATA_DIR": str(tmp_path / "admin")}
    subprocess.run([sys.executable, "-m", "portolan", "-q", "db", "migrate", "--db", db],
                   env=env, check=True, capture_output=True)
    token = subprocess.run([sys.executable, "-m", "portolan", "-q", "token", "create",
                            "--scope", "ingest", "--db", db], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    a = Collector(db, tmp_path / "ca")
    b = Collector(db, tmp_path / "cb")
    a.start()
    b.start()
    listen_port = free_port()
    sensors = [Sensor(f"s{i}", tmp_path / f"s{i}", (a, a, b)[i], token,
                      listen_port if i == 0 else None) for i in range(3)]
    for s in sensors:
        s.home.mkdir()
        s.log.touch()
        s.start()
    # one probe connection gets through once the listener is up: it is logged like any
    assert eventually_sync(lambda: _listening(listen_port), 60)
    expected_connections = CONNECTIONS + 1

    done = [threading.Event() for _ in range(4)]
    threads = [threading.Thread(target=append_lines, args=(s, d))
               for s, d in zip(sensors, done, strict=False)]
    threads.append(threading.Thread(target=connect_clients, args=(listen_port, done[3])))
    for t in threads:
        t.start()
    try:
        # mid-stream: collector A dies and comes back, then the database restarts,
        # then collector B dies and sensor s1 is killed, and both come back
        assert eventually_sync(lambda: sum(n for n, _ in counts(db).values()) > 500, 60)
        a.kill()
        time.sleep(0.5)
        a.start()
        private_postgres.restart()
        b.kill()
        sensors[1].kill()
        time.sleep(0.5)
        b.start()
        sensors[1].start()
        for d in done:
            assert d.wait(120)

        def complete() -> bool:
            c = counts(db)
            files = all(c.get(f"{s.name}:auth_failure", (0, 0))[0] >= LINES_PER_SENSOR
                        for s in sensors)
            listener = c.get("s0:disconnect", (0, 0))[0] >= expected_connections
            return files and listener and all(s.spool_depth() == 0 for s in sensors)

        assert eventually_sync(complete, 180, step=0.5), counts(db)
    finally:
        for t in threads:
            t.join(timeout=60)
        for s in sensors:
            if s.proc is not None and s.proc.poll() is None:
                s.stop()
        for c in (a, b):
            if c.proc is not None and c.proc.poll() is None:
                c.kill()

    c = counts(db)
    for s in sensors:
        assert c[f"{s.name}:auth_failure"] == (LINES_PER_SENSOR, LINES_PER_SENSOR)
        assert s.spool_depth() == 0
    assert c["s0:connect"] == (expected_connections, expected_connections)
    assert c["s0:disconnect"] == (expected_connections, expected_connections)
    with psycopg.connect(db) as conn:
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        ports = conn.execute("SELECT count(DISTINCT src_port) FROM events "
                             "WHERE sensor = 's0' AND action = 'connect'").fetchone()[0]
    assert total == distinct
    assert ports == expected_connections


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
