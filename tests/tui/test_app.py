"""The terminal view driven headless by Textual's pilot, on an 80x24 screen, against a real
SQLite store and a real server; what reaches the screen is read back from the rendered
lines."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from portolan.store import Store, story
from portolan.tui.app import TopApp
from portolan.tui.export import SELECTION_FILE, TSV_FILE
from portolan.tui.feeds import ApiFeed, Feed, StoreFeed
from portolan.tui.screens import HelpScreen, StoryScreen
from tests.server.conftest import Running
from tests.tui.conftest import EVIL_HOST, EVIL_USER, recent_events
from tests.waiting import eventually

SIZE = (80, 24)
ESCAPED_USER = "\\x1b[31m[bold red]pwn[/]"


def screen_lines(app: TopApp) -> list[str]:
    """The screen as the terminal would get it, one string per line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def screen(app: TopApp) -> str:
    return "\n".join(screen_lines(app))


async def on_screen(app: TopApp, needle: str, within: float = 10) -> bool:
    """Wait until ``needle`` is on the rendered screen."""
    return await eventually(lambda: needle in screen(app), within=within)


async def shows(app: TopApp, table: str, rows: int = 1) -> None:
    """Wait until the table is on screen with at least ``rows`` rows."""
    ok = await eventually(lambda: app.snapshot is not None and app.snapshot.table == table
                          and len(app.shown_rows) >= rows, within=15)
    assert ok, f"table {table} not shown; error: {app.snapshot and app.snapshot.error}"


def make_app(feed: Feed, data_dir: Path, **kw: Any) -> TopApp:
    kw.setdefault("metrics", None)
    return TopApp(feed, data_dir, refresh=0.5, **kw)


@pytest.fixture(params=["store", "server"])
def feed(request: pytest.FixtureRequest, filled_store: Store) -> Any:
    """The same data through each back end: the store, and a real server's API."""
    if request.param == "store":
        yield StoreFeed(Store(filled_store.url.render_as_string(hide_password=False)))
        return
    running: Running = request.getfixturevalue("api_server")
    api = ApiFeed(running.url)
    yield api
    api.close()


async def test_counters_tables_and_escaped_attacker_text(feed: Feed, tmp_path: Path,
                                                         now: dt.datetime) -> None:
    events = recent_events(now)
    app = make_app(feed, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await shows(app, "events", len(events))
        assert await on_screen(app, f"events {len(events)}")
        text = screen(app)
        failed = sum(e.action in ("auth_failure", "invalid_user") for e in events)
        assert f"failed {failed}" in text
        assert "active 1" in text
        assert len(app.shown_rows) == len(events)

        await pilot.press("5")
        await shows(app, "users")
        assert await on_screen(app, ESCAPED_USER)
        lines = screen_lines(app)
        text = "\n".join(lines)
        users = Counter(e.user for e in events if e.user)
        # the escape sequence is shown escaped, and the markup stays literal
        assert ESCAPED_USER in text
        assert "\x1b" not in text
        row = next(r for r in app.shown_rows if r.key == EVIL_USER)
        assert row.values[-2] == users[EVIL_USER]
        assert all(not span.style or "red" not in str(span.style)
                   for cell in row.cells for span in cell.spans)
        assert all(len(line) <= SIZE[0] for line in lines)
        assert len(lines) == SIZE[1]

        await pilot.press("8")
        await shows(app, "hosts", 2)
        hosts = {r.key: r.values[-2] for r in app.shown_rows}
        assert hosts == {"www.example.test": 4, EVIL_HOST: 2}
        assert await on_screen(app, "[link=x]evil\\x07.test")

        await pilot.press("9")
        await shows(app, "active")
        assert [r.address for r in app.shown_rows] == ["203.0.113.9"]

        await pilot.press("q")
    assert not app.is_running


async def test_filter_sort_and_window(filled_store: Store, tmp_path: Path,
                                      now: dt.datetime) -> None:
    addresses = {e.src_ip for e in recent_events(now)}
    app = make_app(StoreFeed(filled_store), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await shows(app, "ips", len(addresses))
        counts = [r.values[-2] for r in app.shown_rows]
        assert counts == sorted(counts, reverse=True)

        await pilot.press("slash", "1", "9", "8")
        assert [r.key for r in app.shown_rows] == ["198.51.100.7"]
        assert await eventually(lambda: "198" in screen_lines(app)[-2])  # the filter box
        await pilot.press("enter")  # keeps the filter, back to the table
        assert [r.key for r in app.shown_rows] == ["198.51.100.7"]
        await pilot.press("slash", "escape")
        assert {r.key for r in app.shown_rows} == addresses

        await pilot.press("s")  # from the counts to the next column: the address, A-Z
        keys = [r.key for r in app.shown_rows]
        assert keys == sorted(keys)
        await pilot.press("r")
        assert [r.key for r in app.shown_rows] == sorted(keys, reverse=True)

        assert await on_screen(app, "window 1h")
        await pilot.press("W")
        assert await on_screen(app, "window 5m")
        await pilot.press("w", "w", "w", "w")
        assert await on_screen(app, "window all")

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert await on_screen(app, "select a row for export")
        await pilot.press("x")
        assert await eventually(lambda: not isinstance(app.screen, HelpScreen))


async def _select(app: TopApp, pilot: Any, table_key: str, table: str, key: Any) -> None:
    await pilot.press(table_key)
    await shows(app, table)
    index = next(i for i, r in enumerate(app.shown_rows) if r.key == key)
    app.query_one("#table").move_cursor(row=index)
    await pilot.press("space")
    assert await eventually(lambda: any(r.key == key and r.values[0] == "*"
                                        for r in app.shown_rows))


async def scrape(port: int) -> dict[tuple[str, str, str], float]:
    """``portolan_top_selected_events_total`` as scraped over HTTP: labels -> value."""
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "portolan_top_selected_events_total":
                labels = sample.labels
                out[(labels["kind"], labels["key"], labels["name"])] = sample.value
    return out


async def scrapes(port: int, expected: dict[tuple[str, str, str], float],
                  within: float = 15) -> bool:
    """Wait until a scrape gives ``expected``."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await scrape(port)
        if found == expected:
            return True
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"scraped {found}, expected {expected}")
        await asyncio.sleep(0.05)


async def test_selection_exported_and_restored(filled_store: Store, tmp_path: Path,
                                               now: dt.datetime) -> None:
    events = recent_events(now)
    by_ip = Counter(e.src_ip for e in events)
    by_host = Counter(e.attrs.get("host") for e in events if e.attrs.get("host"))
    by_country = Counter(e.country for e in events)
    by_asn = Counter(e.asn for e in events)
    expected = {
        ("ip", "198.51.100.7", ""): by_ip["198.51.100.7"],
        ("host", "[link=x]evil\\x07.test", ""): by_host[EVIL_HOST],
        ("country", "DE", "Germany"): by_country["DE"],
        ("asn", "64500", "Example Net"): by_asn[64500],
    }

    app = make_app(StoreFeed(filled_store), tmp_path, metrics=("127.0.0.1", 0))
    async with app.run_test(size=SIZE) as pilot:
        await shows(app, "events")
        assert app.metrics_port
        port = app.metrics_port
        await _select(app, pilot, "4", "ips", "198.51.100.7")
        await _select(app, pilot, "8", "hosts", EVIL_HOST)
        await _select(app, pilot, "2", "countries", "DE")
        await _select(app, pilot, "3", "asns", 64500)
        assert await on_screen(app, "selected 4")
        # the metrics, over real HTTP on 127.0.0.1
        assert await scrapes(port, expected)

        tsv = (tmp_path / TSV_FILE).read_text(encoding="utf-8").splitlines()
        assert tsv[0].split("\t")[:5] == ["kind", "key", "name", "events_total",
                                          "events_window"]
        rows = {(f[0], f[1]): (int(f[3]), int(f[4])) for f in (x.split("\t") for x in tsv[1:])}
        assert rows == {(k, key): (n, n) for (k, key, _), n in expected.items()}

        # space on a table whose rows cannot be exported changes nothing
        await pilot.press("5")
        await shows(app, "users")
        await pilot.press("space")
        assert len(app.selection) == 4

    saved = json.loads((tmp_path / SELECTION_FILE).read_text(encoding="utf-8"))
    assert {(i["kind"], i["key"]) for i in saved["items"]} == {
        ("ip", "198.51.100.7"), ("host", EVIL_HOST), ("country", "DE"), ("asn", 64500)}
    with pytest.raises(httpx.TransportError):  # the endpoint ends with the app
        await scrape(port)

    # a second run starts with the same selection, marked, and exports it at once
    again = make_app(StoreFeed(filled_store), tmp_path, metrics=("127.0.0.1", 0))
    async with again.run_test(size=SIZE) as pilot:
        assert len(again.selection) == 4
        assert again.metrics_port
        assert await scrapes(again.metrics_port, expected)
        await pilot.press("3")
        await shows(again, "asns", 2)
        marked = {r.key for r in again.shown_rows if r.values[0] == "*"}
        assert marked == {64500}
        assert await on_screen(again, "●")
        # unselecting saves at once
        index = next(i for i, r in enumerate(again.shown_rows) if r.key == 64500)
        again.query_one("#table").move_cursor(row=index)
        await pilot.press("space")
        assert ("asn", 64500) not in again.selection
    saved = json.loads((tmp_path / SELECTION_FILE).read_text(encoding="utf-8"))
    assert len(saved["items"]) == 3


async def test_story_and_star(feed: Feed, filled_store: Store, tmp_path: Path) -> None:
    app = make_app(feed, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await shows(app, "ips", 4)
        await pilot.press("slash", *"198.51", "enter")
        assert [r.key for r in app.shown_rows] == ["198.51.100.7"]
        await pilot.press("enter")
        assert isinstance(app.screen, StoryScreen)
        screen_ = app.screen
        assert await eventually(lambda: screen_.story is not None, within=10)
        assert await on_screen(app, "successful logins 1")
        text = screen(app)
        assert "198.51.100.7" in text
        assert ESCAPED_USER in text
        assert "\x1b" not in text

        await pilot.press("space", "w")  # keys of the tables do nothing here
        assert len(app.selection) == 0
        assert app.window[0] == "1h"
        await pilot.press("asterisk")

        def starred() -> bool:
            with filled_store.connect() as conn:
                row = story.address(conn, "198.51.100.7")
            return bool(row and row["starred"])

        assert await eventually(starred, within=10)
        assert await on_screen(app, "★ starred")
        await pilot.press("escape")
        assert await eventually(lambda: not isinstance(app.screen, StoryScreen))
        await pilot.press("9")
        await shows(app, "active")
        await pilot.press("enter")
        assert isinstance(app.screen, StoryScreen)
        assert app.screen.ip == "203.0.113.9"


async def test_unreachable_server_is_shown_not_fatal(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    feed = ApiFeed(f"http://127.0.0.1:{port}", timeout=2)
    app = make_app(feed, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        assert await eventually(lambda: app.snapshot is not None
                                and app.snapshot.error is not None, within=15)
        assert await on_screen(app, f"127.0.0.1:{port}")
        await pilot.press("q")
    feed.close()


async def test_metrics_port_taken_is_reported(filled_store: Store, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = make_app(StoreFeed(filled_store), tmp_path, metrics=("127.0.0.1", port))
        async with app.run_test(size=SIZE) as pilot:
            await shows(app, "events")
            assert app.metrics_port is None
            assert app.metrics_error and str(port) in app.metrics_error
            await pilot.press("question_mark")
            assert await on_screen(app, str(port))


async def test_keys_typed_before_the_filter_has_the_focus_go_to_it(
        filled_store: Store, tmp_path: Path) -> None:
    from textual.widgets import Input

    app = make_app(StoreFeed(filled_store), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await shows(app, "ips", 4)
        box = app.query_one("#filter", Input)
        box.display = True  # what "/" does first; the focus follows a moment later
        app.filter_pending = True
        assert not box.has_focus
        await pilot.press("2", "0", "3", "q")
        assert box.value == "203q"
        assert app.is_running
        assert app.spec.name == "ips"
        box.focus()  # as it comes
        await pilot.press("backspace")
        assert box.value == "203"
        assert not app.filter_pending
        assert {r.key for r in app.shown_rows} == {"203.0.113.5", "203.0.113.9"}
