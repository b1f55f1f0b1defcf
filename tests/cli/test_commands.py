"""The command line, run as a user runs it: real files, a real SQLite store."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from portolan import __version__
from portolan.cli import _load
from portolan.cli.app import main
from portolan.event import Event, encode_lines

T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)
_load()


def sample(path: Path, n: int = 300) -> Path:
    events = [
        Event(ts=T0 + dt.timedelta(seconds=i), service="ssh",
              action=("connect", "auth_failure", "disconnect")[i % 3],
              src_ip=f"198.51.100.{i % 5}", src_port=50000 + i // 3, session=f"s{i // 3}",
              user="root" if i % 2 else "admin\x1b[2J", country="NL" if i % 4 else "DE")
        for i in range(n)
    ]
    path.write_bytes(encode_lines(events) + b"not json\n")
    return path


def cli(*args: str, db: str | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    argv = list(args) + (["--db", db] if db else [])
    result = runner.invoke(main, argv, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "portolan", "--version"],
                         capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_ingest_then_again_stores_nothing_twice(tmp_path: Path, sqlite_url: str) -> None:
    log = sample(tmp_path / "events.jsonl")
    code, _, err = cli("ingest", str(log), "-f", "jsonl", db=sqlite_url)
    assert code == 0, err
    assert "301 lines: 300 matched, 0 ignored, 1 unmatched" in err
    assert "300 stored, 0 duplicates" in err
    code, _, err = cli("ingest", str(log), "-f", "jsonl", db=sqlite_url)
    assert "0 stored, 300 duplicates" in err
    db = sqlite_url.removeprefix("sqlite:///")
    assert sqlite3.connect(db).execute("SELECT count(*) FROM events").fetchone() == (300,)


def test_parse_summary_and_json(tmp_path: Path) -> None:
    log = sample(tmp_path / "events.jsonl", 30)
    code, out, _ = cli("parse", str(log), "-f", "jsonl")
    assert code == 0
    assert "unmatched: 1" in out
    assert "not json" in out
    code, out, _ = cli("parse", str(log), "-f", "jsonl", "--json")
    lines = out.splitlines()
    assert len(lines) == 30
    assert json.loads(lines[0])["src_ip"] == "198.51.100.0"


def test_query_commands(tmp_path: Path, sqlite_url: str) -> None:
    cli("ingest", str(sample(tmp_path / "e.jsonl")), "-f", "jsonl", db=sqlite_url)
    code, out, _ = cli("query", "stats", "country", "--json", db=sqlite_url)
    rows = [json.loads(x) for x in out.splitlines()]
    assert rows == [{"key": "NL", "count": 225}, {"key": "DE", "count": 75}]
    code, out, _ = cli("query", "events", "-n", "5", "--json", "--service", "ssh", db=sqlite_url)
    assert len(out.splitlines()) == 5
    assert json.loads(out.splitlines()[0])["ts"] == "2026-11-23T05:04:59Z"
    code, out, _ = cli("query", "sessions", "--json", "-n", "200", db=sqlite_url)
    sessions = [json.loads(x) for x in out.splitlines()]
    assert len(sessions) == 100
    assert {s["duration"] for s in sessions} == {2.0}
    code, out, _ = cli("query", "active", "--json", db=sqlite_url)
    assert out == ""
    # attacker text in the terminal output comes out escaped
    _, out, _ = cli("query", "events", "-n", "300", "--user", "admin\x1b[2J", db=sqlite_url)
    assert "\x1b" not in out
    assert "\\x1b[2J" in out


def test_addresses_and_names_from_json_are_shown_escaped(tmp_path: Path, sqlite_url: str) -> None:
    hostile = Event(ts=T0, service="ssh\x1b]0;x\x07", action="connect", src_ip="\x1b[2Jx",
                    session="s-1")
    log = tmp_path / "h.jsonl"
    log.write_bytes(encode_lines([hostile]))
    cli("ingest", str(log), "-f", "jsonl", db=sqlite_url)
    for args in (("query", "events"), ("query", "sessions"), ("query", "active")):
        code, out, _ = cli(*args, db=sqlite_url)
        assert code == 0
        assert "\x1b" not in out and "\x07" not in out
    _, out, _ = cli("query", "events", db=sqlite_url)
    assert "\\x1b[2Jx" in out


def test_db_migrate_and_purge(sqlite_url: str, tmp_path: Path) -> None:
    code, out, _ = cli("db", "migrate", db=sqlite_url)
    assert "migrated to" in out
    code, out, _ = cli("db", "migrate", db=sqlite_url)
    assert "up to date" in out
    cli("ingest", str(sample(tmp_path / "e.jsonl")), "-f", "jsonl", db=sqlite_url)
    _, out, _ = cli("db", "purge", "--older-than", "2026-11-23T05:01:00Z", "--yes",
                       db=sqlite_url)
    assert out.strip() == "60 events deleted"


def test_init_writes_a_config_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "p.toml"
    code, _, _ = cli("init", str(target))
    assert code == 0
    assert target.exists()
    code, _, err = cli("-c", str(target), "query", "stats", "service",
                       db=f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 0, err
    code, _, err = cli("init", str(target))
    assert code == 2
    assert "--force" in err


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("corrupt", "not a SQLite database"),
        ("unreachable", "connection"),
        ("bad-url", "unsupported database"),
        ("typo", "unknown key 'store.ulr'"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, setup: str, expected: str) -> None:
    args = [sys.executable, "-m", "portolan"]
    if setup == "corrupt":
        bad = tmp_path / "bad.db"
        bad.write_bytes(b"this is not a database" * 100)
        args += ["query", "events", "--db", f"sqlite:///{bad}"]
    elif setup == "unreachable":
        args += ["query", "events", "--db", "postgresql://nobody@127.0.0.1:9/none"]
    elif setup == "bad-url":
        args += ["query", "events", "--db", "oracle://x/y"]
    else:
        cfg = tmp_path / "c.toml"
        cfg.write_text("[store]\nulr = 'x'\n")
        args += ["-c", str(cfg), "query", "events"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert expected in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
