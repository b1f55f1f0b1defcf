"""Forgetting an address, for real on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from portolan.enrich.forget import forget, forms
from portolan.event import Event, make_id
from portolan.store import EventFilter, Store, schema

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
ME = "198.18.7.9"


def ev(i: int, ip: str, **kw: object) -> Event:
    base: dict[str, object] = {
        "id": make_id("fg", i), "ts": T0 + dt.timedelta(seconds=i), "sensor": "s",
        "source": "x", "service": "ssh", "action": "connect", "src_ip": ip}
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    s.write([
        ev(0, ME, session="a", user="alice", country="NL"),
        ev(1, ME, action="auth_failure"),
        ev(2, f"::ffff:{ME}"),
        ev(3, "10.0.0.1", dst_ip=ME, direction="outbound"),
        ev(4, "203.0.113.50", session="b"),
    ])
    yield s
    s.close()


def test_forms_of_one_address() -> None:
    assert set(forms("198.18.7.9")) == {"198.18.7.9", "::ffff:198.18.7.9"}
    assert "2001:db8::1" in forms("2001:0db8::0001")
    with pytest.raises(ValueError, match="does not appear to be"):
        forms("example.com")


def test_forget_deletes_everything_about_the_address(store: Store) -> None:
    result = forget(store.engine, ME)
    assert (result.events, result.sessions, result.ips) == (4, 1, 2)  # ips: both spellings
    left = store.events(EventFilter(), limit=10)
    assert [e.src_ip for e in left] == ["203.0.113.50"]
    with store.connect() as conn:
        assert conn.execute(sa.select(schema.sessions.c.id)).scalars().all() == ["b"]
        ips = conn.execute(sa.select(schema.ips.c.ip)).scalars().all()
    assert ME not in ips and f"::ffff:{ME}" not in ips
    assert "203.0.113.50" in ips


def test_anonymise_keeps_the_events_without_the_address(store: Store) -> None:
    result = forget(store.engine, ME, anonymise=True)
    assert result.replacement == "198.18.7.0/24"
    assert (result.events, result.sessions, result.ips) == (4, 1, 2)  # ips: both spellings
    events = {e.id: e for e in store.events(EventFilter(), limit=10)}
    assert len(events) == 5
    first = events[make_id("fg", 0)]
    assert (first.src_ip, first.country) == ("198.18.7.0/24", "NL")  # geography stays
    assert events[make_id("fg", 2)].src_ip == "198.18.7.0/24"
    assert events[make_id("fg", 3)].dst_ip == "198.18.7.0/24"
    with store.connect() as conn:
        sessions = dict(conn.execute(sa.select(schema.sessions.c.id,
                                              schema.sessions.c.src_ip)).all())
        ips = conn.execute(sa.select(schema.ips.c.ip)).scalars().all()
    assert sessions["a"] == "198.18.7.0/24"
    assert not any(ME in ip for ip in ips)
