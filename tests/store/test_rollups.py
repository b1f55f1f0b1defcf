"""Rollups give the same answers as counting the events themselves, on all three
databases, for ranges that do and do not fall on bucket edges."""

from __future__ import annotations

import collections
import datetime as dt
import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from portolan.event import Event, make_id
from portolan.store import EventFilter, Store, rollups

T0 = dt.datetime(2026, 11, 20, 22, 59, 30, 250000, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)


def events(n: int = 1500, seed: int = 7) -> list[Event]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ts = T0 + dt.timedelta(seconds=rnd.uniform(0, 3 * 86400), microseconds=rnd.randrange(10))
        direction = "outbound" if rnd.random() < 0.1 else "inbound"
        ip = f"198.51.100.{rnd.randrange(40)}"
        out.append(Event(
            id=make_id("r", i), ts=ts, sensor=rnd.choice(["a", "b"]), source="x",
            service=rnd.choice(["ssh", "http", "spyserver"]),
            action=rnd.choice(["connect", "auth_failure", "request"]), direction=direction,
            src_ip=ip if direction == "inbound" else "192.0.2.1",
            dst_ip="192.0.2.1" if direction == "inbound" else ip,
            dst_port=rnd.choice([22, 80, 5555, None]),
            user=rnd.choice(["root", "admin", None, "x" * 300]),
            country=rnd.choice(["NL", "DE", "US", None]), city=rnd.choice(["Oslo", None]),
            asn=rnd.choice([64500, 64501, None]), as_org="Example AS",
            attrs=rnd.choice([{}, {"host": "example.org"}, {"instance": "hf"}]),
        ))
    return out


def item(e: Event, dim: str) -> object:
    """What the API counts an event under, written out independently of the rollups."""
    value: object = {
        "ip": e.src_ip if e.direction == "inbound" else e.dst_ip,
        "host": e.attrs.get("host"), "instance": e.attrs.get("instance"),
    }.get(dim, getattr(e, dim, None))
    if isinstance(value, str):
        return value[:200] or None  # items are cut at 200 characters; '' counts as none
    return value


def truth(evs: list[Event], dim: str, f: EventFilter) -> dict[object, int]:
    from portolan.server.hub import matches

    return dict(collections.Counter(item(e, dim) for e in evs if matches(f, e)))


@pytest.fixture
def filled(db_url: str) -> Iterator[tuple[Store, list[Event]]]:
    store = Store(db_url)
    store.migrate()
    evs = events()
    for start in range(0, len(evs), 400):
        store.write(evs[start:start + 400])
    store.write(evs[:300])  # a replay adds nothing
    yield store, evs
    store.close()


RANGES = [
    (None, None),
    (T0, None),
    (None, T0 + dt.timedelta(days=2)),
    (T0 + dt.timedelta(hours=1, seconds=17.5), T0 + dt.timedelta(days=2, minutes=7, seconds=3)),
    (dt.datetime(2026, 11, 21, tzinfo=dt.UTC), dt.datetime(2026, 11, 23, tzinfo=dt.UTC)),
    (T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=50)),
]


@pytest.mark.parametrize(("since", "until"), RANGES)
def test_counts_match_the_events(filled: tuple[Store, list[Event]], since: dt.datetime | None,
                                 until: dt.datetime | None) -> None:
    store, evs = filled
    with store.connect() as conn:
        for dim in rollups.DIMS:
            for service in (None, "ssh"):
                f = EventFilter(since=since, until=until, service=service)
                expected = truth(evs, dim, f)
                got = rollups.counts(conn, dim, f, limit=1000)
                assert {k: n for k, _, n in got.top} == expected, (dim, service)
                assert got.total == sum(expected.values())
                top2 = rollups.counts(conn, dim, f, limit=2)
                assert [n for _, _, n in top2.top] == sorted(expected.values(), reverse=True)[:2]
                assert top2.other == got.total - sum(n for _, _, n in top2.top)


def test_counts_with_other_filters_use_the_events(filled: tuple[Store, list[Event]]) -> None:
    store, evs = filled
    f = EventFilter(country="NL", since=T0 + dt.timedelta(hours=3))
    with store.connect() as conn:
        got = rollups.counts(conn, "user", f, limit=100)
    assert {k: n for k, _, n in got.top} == truth(evs, "user", f)


def test_labels_name_countries_and_networks(filled: tuple[Store, list[Event]]) -> None:
    store, _ = filled
    with store.connect() as conn:
        got = rollups.counts(conn, "asn", EventFilter(), limit=10)
    labels = {k: lab for k, lab, _ in got.top}
    assert labels[64500] == "Example AS"
    assert labels[None] is None or labels[None] == "Example AS"


@pytest.mark.parametrize("step", [60, 3600, 86400])
@pytest.mark.parametrize("extra", [{}, {"service": "http"}, {"action": "connect"},
                                   {"country": "DE"}, {"user": "root"}])
def test_series_match_the_events(filled: tuple[Store, list[Event]], step: int,
                                 extra: dict[str, str]) -> None:
    store, evs = filled
    since = T0 + dt.timedelta(hours=5, seconds=11)
    until = since + dt.timedelta(hours=30)
    f = EventFilter(since=since, until=until, **extra)  # type: ignore[arg-type]
    with store.connect() as conn:
        points = rollups.series(conn, f, step, now=NOW)
    first = points[0][0]
    assert first <= since < first + dt.timedelta(seconds=step)
    assert points[-1][0] < until <= points[-1][0] + dt.timedelta(seconds=step)
    from portolan.server.hub import matches

    wide = EventFilter(**{**extra, "since": first,  # type: ignore[arg-type]
                          "until": points[-1][0] + dt.timedelta(seconds=step)})
    expected: collections.Counter[dt.datetime] = collections.Counter()
    for e in evs:
        if matches(wide, e):
            offset = int((e.ts - first).total_seconds()) // step
            expected[first + dt.timedelta(seconds=offset * step)] += 1
    assert {t: n for t, n in points if n} == dict(expected)
    assert len(points) == len({t for t, _ in points})


def test_plan_covers_the_range_exactly() -> None:
    rnd = random.Random(1)
    grains = [60_000_000, 3_600_000_000, 86_400_000_000]
    for _ in range(500):
        lo = rnd.randrange(0, 10 * 86_400_000_000)
        hi = lo + rnd.randrange(0, 5 * 86_400_000_000)
        pieces, rests = rollups.plan(lo, hi, grains)
        spans = sorted([(a, b) for _, a, b in pieces] + rests)
        covered = lo
        for a, b in spans:
            assert a == covered and b > a
            covered = b
        assert covered == hi or (lo == hi and not spans)
        for g, a, b in pieces:
            assert a % g == 0 and b % g == 0


def test_backfill_rebuilds_the_rollups(filled: tuple[Store, list[Event]]) -> None:
    store, evs = filled
    with store.connect() as conn:
        before = rollups.counts(conn, "country", EventFilter(), limit=10)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(rollups.rollups))
        assert rollups.backfill(conn, chunk=333) == len(evs)
    with store.connect() as conn:
        after = rollups.counts(conn, "country", EventFilter(), limit=10)
    assert after == before


def test_series_refuses_too_many_points(filled: tuple[Store, list[Event]]) -> None:
    store, _ = filled
    from portolan.store import QueryError

    with store.connect() as conn, pytest.raises(QueryError, match="at most"):
        rollups.series(conn, EventFilter(since=T0 - dt.timedelta(days=30)), 60, now=NOW)


def test_attributes_of_any_json_type_are_counted_as_text() -> None:
    evs = [Event(id=make_id("j", i), ts=T0, service="http", action="request", attrs=attrs)
           for i, attrs in enumerate([{"host": ["a", 1]}, {"host": ["a", 1]}, {"host": 7},
                                      {"host": "7"}, {"instance": {"k": None}}, {}])]
    rows = rollups.aggregate(evs)
    hosts = {k[4]: v[0] for k, v in rows.items() if k[1] == "host" and k[0] == rollups.HOUR}
    assert hosts == {"['a', 1]": 2, "7": 2, "": 2}
    instances = {k[4]: v[0] for k, v in rows.items()
                 if k[1] == "instance" and k[0] == rollups.DAY}
    assert instances == {"{'k': None}": 1, "": 5}


def test_counted_together_as_one_by_one() -> None:
    """Batches counted at once give, row for row, the counts of each event added up alone:
    dimensions with one value for the whole batch (the sensor, an attribute no event has)
    included, over several minutes, hours and services."""
    evs = events(600, seed=3)
    for e in evs:
        e.sensor, e.attrs = "one", {}
    expected: collections.Counter[tuple[object, ...]] = collections.Counter()
    for e in evs:
        for key in rollups.aggregate([e]):
            expected[key] += 1
    parts = [(evs[i:i + 150], rollups.event_columns(evs[i:i + 150]))
             for i in range(0, len(evs), 150)]
    got = rollups.aggregate_parts(parts)
    assert {key: n for key, (n, _label) in got.items()} == dict(expected)
    assert sum(n for key, (n, _) in got.items() if key[:2] == (rollups.DAY, "sensor")) \
        == len(evs)
