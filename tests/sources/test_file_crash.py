"""kill -9 in the middle of tailing: after a restart no line is lost and none is stored
twice. A real `portolan run` process, a real SQLite database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

LINES = 30_000


def line(n: int) -> bytes:
    return f"Nov 23 10:00:00 h sshd[{n}]: Invalid user u{n} from 192.0.2.1 port 22\n".encode()


def count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def wait_for(condition: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "portolan", "-c", str(config), "run"],
                                stdout=subprocess.DEVNULL, stderr=err)


def test_kill_9_loses_nothing_and_stores_nothing_twice(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    db = tmp_path / "portolan.db"
    config = tmp_path / "portolan.toml"
    config.write_text(f"""
data_dir = "{tmp_path / 'data'}"
sensor = "crash-test"
[store]
url = "sqlite:///{db}"
[pipeline]
batch_size = 500
batch_delay = 0.05
write_max = 1000
[[sources]]
type = "file"
name = "auth.log"
paths = ["{log}"]
start_at = "beginning"
poll_interval = 0.05
format_options = {{ timezone = "UTC" }}
""")
    stderr = tmp_path / "stderr.txt"
    log.write_bytes(b"".join(line(n) for n in range(LINES // 3)))
    proc = start(config, stderr)
    try:
        # Kill it hard while it is busy: some events stored, not all.
        with log.open("ab") as f:
            f.write(b"".join(line(n) for n in range(LINES // 3, 2 * LINES // 3)))
        wait_for(lambda: count(db) > 2000)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stored_at_kill = count(db)
        assert 0 < stored_at_kill < 2 * LINES // 3, stored_at_kill
        # More lines while it is down, one of them cut in half at the end of the file.
        with log.open("ab") as f:
            f.write(b"".join(line(n) for n in range(2 * LINES // 3, LINES - 1)))
            f.write(line(LINES - 1)[:15])
        proc = start(config, stderr)
        time.sleep(0.5)
        with log.open("ab") as f:
            f.write(line(LINES - 1)[15:])
        wait_for(lambda: count(db) >= LINES)
        time.sleep(1.0)  # anything more would be a line stored twice
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, stderr.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(db) as conn:
        users = [r[0] for r in conn.execute("SELECT user FROM events")]
    assert len(users) == LINES
    assert sorted(users) == sorted(f"u{n}" for n in range(LINES))
    assert os.path.exists(tmp_path / "data" / "state" / "file")
