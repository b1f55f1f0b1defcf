"""Both back ends give the same answers on the same store: the store's query layer, and a
real server's API (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from portolan.server.tokens import Tokens
from portolan.store import Store
from portolan.tui.feeds import ApiFeed, FeedError, StoreFeed
from tests.server.conftest import Running, make_runtime, start_server
from tests.tui.conftest import EVIL_USER, recent_events


@pytest.fixture
def feeds(filled_store: Store, api_server: Running) -> Iterator[tuple[StoreFeed, ApiFeed]]:
    api = ApiFeed(api_server.url)
    yield StoreFeed(filled_store), api
    api.close()


def test_same_counts_series_events_sessions_and_story(feeds: tuple[StoreFeed, ApiFeed],
                                                      now: dt.datetime) -> None:
    store, api = feeds
    since = now - dt.timedelta(hours=1)
    for field in ("country", "asn", "ip", "user", "service", "dst_port", "host", "action"):
        assert store.counts(field, since, 50) == api.counts(field, since, 50), field
        assert store.counts(field, None, 50) == api.counts(field, None, 50), field
    users = {i.key: i.count for i in store.counts("user", since, 50).items}
    assert users[EVIL_USER] == sum(e.user == EVIL_USER for e in recent_events(now))

    series = store.series(since, 60, now)
    assert series == api.series(since, 60, now)
    assert series.total == len(recent_events(now))

    mine = store.events(since, 100)
    assert [e.id for e in mine] == [e.id for e in api.events(since, 100)]
    assert mine[0].ts >= mine[-1].ts
    assert store.active(10) == api.active(10)
    assert [s.src_ip for s in store.active(10)] == ["203.0.113.9"]

    story = store.story("198.51.100.7")
    assert story is not None
    assert story == api.story("198.51.100.7")
    assert {i.key: i.count for i in story.users} == {EVIL_USER: 5, "deploy": 1}
    assert store.story("192.0.2.250") is None
    assert api.story("192.0.2.250") is None


def test_star_through_either_feed(feeds: tuple[StoreFeed, ApiFeed]) -> None:
    store, api = feeds
    assert api.star("203.0.113.5", True) is True
    found = store.story("203.0.113.5")
    assert found is not None and found.address.starred
    assert store.star("203.0.113.5", False) is True
    found = api.story("203.0.113.5")
    assert found is not None and not found.address.starred
    assert api.star("192.0.2.250", True) is False
    assert store.star("192.0.2.250", True) is False


def test_api_feed_sends_its_token(tmp_path: Path, sqlite_url: str,
                                  filled_store: Store) -> None:
    runtime = make_runtime(tmp_path, sqlite_url, server={"read_token_required": True})
    token, _ = Tokens(runtime.store()).create("read", "top")
    for running in start_server(runtime):
        without = ApiFeed(running.url)
        with pytest.raises(FeedError, match=r"401.*token"):
            without.counts("country", None, 10)
        without.close()
        reader = ApiFeed(running.url, token)
        assert reader.counts("country", None, 10).total == len(
            recent_events(dt.datetime.now(dt.UTC)))
        with pytest.raises(FeedError, match="403"):  # starring needs an admin token
            reader.star("203.0.113.5", True)
        reader.close()


def test_api_feed_refuses_what_is_not_an_http_url() -> None:
    with pytest.raises(FeedError, match="not an http"):
        ApiFeed("collector:8080")
