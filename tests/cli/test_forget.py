"""``portolan forget IP``, run as a user runs it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner

from portolan.cli.app import main
from portolan.event import Event, make_id
from portolan.store import EventFilter, Store


def filled(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    store = Store(url)
    store.migrate()
    ts = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    store.write([Event(id=make_id("f", i), ts=ts, src_ip=ip, service="ssh", action="connect")
                 for i, ip in enumerate(["198.51.100.4", "198.51.100.4", "192.0.2.8"])])
    store.close()
    return url


def remaining(url: str) -> list[str | None]:
    store = Store(url)
    try:
        return sorted(e.src_ip or "" for e in store.events(EventFilter(), limit=10))
    finally:
        store.close()


def test_forget_deletes(cli: CliRunner, tmp_path: Path) -> None:
    url = filled(tmp_path)
    result = cli.invoke(main, ["forget", "198.51.100.4", "--db", url, "--yes"])
    assert result.exit_code == 0, result.output
    assert "2 events" in result.stdout
    assert remaining(url) == ["192.0.2.8"]


def test_forget_anonymises(cli: CliRunner, tmp_path: Path) -> None:
    url = filled(tmp_path)
    result = cli.invoke(main, ["forget", "198.51.100.4", "--anonymise", "--db", url, "--yes"])
    assert result.exit_code == 0, result.output
    assert "replaced by 198.51.100.0/24" in result.stdout
    assert remaining(url) == ["192.0.2.8", "198.51.100.0/24", "198.51.100.0/24"]


def test_forget_asks_first_and_refuses_non_addresses(cli: CliRunner, tmp_path: Path) -> None:
    url = filled(tmp_path)
    declined = cli.invoke(main, ["forget", "198.51.100.4", "--db", url], input="n\n")
    assert declined.exit_code == 1
    assert len(remaining(url)) == 3
    bad = cli.invoke(main, ["forget", "example.com", "--db", url, "--yes"])
    assert bad.exit_code == 2
    assert "is not an IP address" in bad.stderr
