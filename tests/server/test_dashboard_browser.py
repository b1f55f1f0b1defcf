"""The dashboard in a real headless Chromium, against a real server (uvicorn on 127.0.0.1)
with a real SQLite store filled through the ingest API.

Every request the page makes is logged; a request to anything but the loopback address is
refused and fails the test. Screenshots of each view go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from portolan.event import Event, encode_lines, make_id
from portolan.server.dashboard import STATIC
from portolan.server.tokens import Tokens

from . import dashboard_data as data
from .conftest import Running, make_runtime, start_server, wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.skipif(not (STATIC / "index.html").is_file(),
                       reason="the dashboard is not built (scripts/bootstrap needs npm)"),
]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Dash:
    """A server with a day of events, and a way to ingest more."""

    srv: Running
    token: str
    total: int

    def ingest(self, events: list[Event]) -> dict[str, Any]:
        r = httpx.post(f"{self.srv.url}/api/v1/ingest", content=encode_lines(events),
                       headers={"Authorization": f"Bearer {self.token}",
                                "Content-Type": "application/x-ndjson"}, timeout=30)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    tmp = tmp_path_factory.mktemp("dash")
    runtime = make_runtime(tmp, f"sqlite:///{tmp / 'portolan.db'}", sensor="collector")
    token, _ = Tokens(runtime.store()).create("ingest", "dashboard-test")
    for srv in start_server(runtime):
        d = Dash(srv, token, 0)
        t = now()
        events = data.day_of_events(t) + data.sessions(t) + data.hostile(t)
        for i in range(0, len(events), 200):
            assert d.ingest(events[i:i + 200])["stored"] == len(events[i:i + 200])
        d.total = len(events)
        yield d


@dataclass
class Browser:
    """A page in a fresh Chromium profile, with what it asked for and what it tried."""

    page: Any
    base: str
    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_selector("main[data-ready='1']", timeout=30_000)

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _launch(tmp_path: Path, base: str, **context: Any) -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=ARGS, **{"viewport": {"width": 1440, "height": 1000}, **context})
        b = Browser(ctx.pages[0] if ctx.pages else ctx.new_page(), base)

        def route(r: Any) -> None:
            url = r.request.url
            b.requests.append(url)
            host = urllib.parse.urlsplit(url).hostname or ""
            if url.startswith(("data:", "blob:")) or host in LOOPBACK:
                r.continue_()
            else:
                b.refused.append(url)
                r.abort()

        ctx.route("**/*", route)
        b.page.on("dialog", lambda d: (b.dialogs.append(d.message), d.dismiss()))
        b.page.on("pageerror", lambda e: b.errors.append(str(e)))
        try:
            yield b
        finally:
            ctx.close()
        assert b.refused == [], f"requests left for other hosts: {b.refused}"
        assert b.dialogs == [], f"a script ran and opened dialogs: {b.dialogs}"
        assert b.errors == [], f"script errors on the page: {b.errors}"


@pytest.fixture
def browser(tmp_path: Path, dash: Dash) -> Iterator[Browser]:
    yield from _launch(tmp_path, dash.srv.url)


def test_overview_loads_with_markers_counts_and_chart(browser: Browser, dash: Dash) -> None:
    browser.goto("/")
    page = browser.page
    page.wait_for_selector("#overview-map .pin")
    assert page.locator("#overview-map .pin").count() > 0
    # the counters come from the store: every event ingested is within the last day
    wait_until(lambda: page.locator("#stat-total").inner_text() == f"{dash.total:,}")
    assert int(page.locator("#overview-map").get_attribute("data-countries") or 0) > 200
    assert page.locator("canvas[aria-label='Events over time']").count() == 1
    tops = page.locator("ol.top").first.inner_text()
    assert "China" in tops
    assert page.locator("#feed tbody tr").count() > 10
    assert all(u.startswith(dash.srv.url) for u in browser.requests)
    browser.shot("overview")
    page.screenshot(path=str(SHOTS / "overview-screen.png"))  # what a screen shows first
    docs = Path(__file__).resolve().parents[2] / "docs" / "images"
    if os.environ.get("PORTOLAN_UPDATE_SCREENSHOT"):
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHOTS / "overview-screen.png", docs / "dashboard.png")


def test_filter_changes_what_is_shown_and_the_url(browser: Browser, dash: Dash) -> None:
    browser.goto("/")
    page = browser.page
    page.wait_for_selector("#feed tbody tr")
    services = {t.strip().split(":")[0] for t in
                page.locator("#feed tbody tr td:nth-child(3)").all_inner_texts()}
    assert len(services) > 1
    page.wait_for_function("() => document.querySelectorAll('#f-service option').length > 2")
    page.select_option("#f-service", "http")
    page.wait_for_url(re.compile(r"[?&]service=http"))
    page.wait_for_selector("main[data-ready='1']")
    wait_until(lambda: {t.strip().split(":")[0] for t in page.locator(
        "#feed tbody tr td:nth-child(3)").all_inner_texts()} == {"http"})
    total = int(page.locator("#stat-total").inner_text().replace(",", ""))
    assert 0 < total < dash.total
    # the URL holds the state: a reload shows the same filtered view
    page.reload()
    page.wait_for_selector("main[data-ready='1']")
    assert page.locator("#f-service").input_value() == "http"
    assert page.locator("#stat-total").inner_text() == f"{total:,}"
    # a country picked on the top list filters the map too
    page.locator("ol.top button", has_text="China").first.click()
    page.wait_for_url(re.compile(r"[?&]country=CN"))
    page.wait_for_selector("main[data-ready='1']")
    assert page.locator("#overview-map").get_attribute("data-places") == "2"  # two cities
    browser.shot("overview-filtered")


def test_live_feed_shows_an_event_ingested_during_the_test(browser: Browser,
                                                           dash: Dash) -> None:
    browser.goto("/")
    page = browser.page
    page.wait_for_selector(".status.live")
    before = page.locator("#stat-total").inner_text()
    user = f"live-{make_id('live', now().isoformat())[:8]}"
    event = Event(id=make_id("live", user), ts=now(), sensor="edge-2", source="auth.log",
                  service="ssh", action="auth_failure", src_ip="203.0.113.201",
                  dst_port=22, user=user, **data.geo(12))
    assert dash.ingest([event])["stored"] == 1
    row = page.locator("#feed tbody tr", has_text=user)
    row.wait_for(timeout=15_000)
    assert "203.0.113.201" in row.inner_text()
    assert page.locator("#stat-total").inner_text() != before
    dash.total += 1


def test_attacker_text_is_shown_as_text_and_never_runs(browser: Browser) -> None:
    browser.goto("/")
    page = browser.page
    feed = page.locator("#feed")
    feed.locator("tr", has_text="window.__pwned").first.wait_for()
    text = feed.inner_text()
    assert data.HOSTILE_USER in text
    assert data.HOSTILE_AGENT in text
    assert "<img src=y onerror=" in text  # the payload, as text
    assert data.HOSTILE_PATH in text
    browser.goto(f"/ip/{urllib.parse.quote('198.51.100.66')}")
    story = page.locator("main").inner_text()
    assert data.HOSTILE_USER in story
    for p in (page,):
        assert p.evaluate("window.__pwned === undefined")
        assert p.locator("main script, main img[src='x'], main img[src='y'], main svg[onload]"
                         ).count() == 0
    browser.shot("address-hostile")


def test_every_view_loads_and_is_saved(browser: Browser, tmp_path: Path, dash: Dash) -> None:
    page = browser.page
    browser.goto("/map")
    page.wait_for_selector("#main-map .pin")
    places = int(page.locator("#main-map").get_attribute("data-places") or 0)
    assert places >= len(data.PLACES)
    page.locator("#heat").check()
    page.wait_for_selector("#main-map canvas.leaflet-heatmap-layer")
    browser.shot("map-heat")
    page.locator("#heat").uncheck()
    # markers are reachable by keyboard: Enter opens the popup
    page.locator("#main-map .pin:not(.cluster)").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".leaflet-popup .popup a[href^='/ip/']")
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'")
    browser.shot("map")
    # replay: the last day is played back from its start, markers come back as it goes
    page.keyboard.press("Escape")
    page.locator("#replay").click()
    page.wait_for_selector("#replay[aria-pressed='true']")
    first = page.locator("#replay-clock").inner_text()
    wait_until(lambda: page.locator("#replay-clock").inner_text() != first)
    wait_until(lambda: int(page.locator("#replay-pos").input_value()) > 0)
    page.wait_for_selector("#main-map .pin")
    page.locator("#replay").click()  # pause
    page.wait_for_selector("#replay[aria-pressed='false']")

    browser.goto("/sessions")
    tables = page.locator("table.sessions")
    assert tables.nth(0).locator("tbody tr").count() == 1  # the open spyserver session
    assert "SDR#" in tables.nth(1).inner_text()
    browser.shot("sessions")

    browser.goto(f"/ip/{data.address(0, 0)}")
    assert page.locator("#ip-map .pin").count() > 0
    assert page.locator("a[href^='https://www.shodan.io/host/']").count() == 1
    page.locator("#star").click()
    page.wait_for_selector("#star[aria-pressed='true']")
    page.fill("#note", "seen in the test <b>bold</b>")
    page.get_by_role("button", name="Save note").click()
    page.get_by_text("Saved.").wait_for()
    story = dash.srv.get(f"/api/v1/ips/{data.address(0, 0)}").json()
    assert story["address"]["starred"] is True
    assert story["address"]["note"] == "seen in the test <b>bold</b>"
    browser.shot("address")

    browser.goto("/asn")
    state = page.locator("main").inner_text()
    assert "Traffic per AS" in state
    assert page.locator("canvas, .state").count() > 0
    browser.shot("asn")

    browser.goto("/sensors")
    assert "edge-1" in page.locator("table.sensors").inner_text()
    browser.shot("sensors")


def test_traffic_per_as_as_bars_and_pie_with_three_labellings(
        browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the capture sensor's per-AS query present (here: a stand-in that sums the
    outbound flows of the store, as the capture sensor is not part of this build), the page
    draws both charts and a table, labelled as asked."""
    import sys
    import types

    import sqlalchemy as sa

    from portolan.store import schema

    def query(conn: Any, *, since: Any, until: Any, direction: str | None,
              include_private: bool, sensor: str | None, by: str,
              limit: int) -> list[dict[str, Any]]:
        E = schema.events
        b_in, b_out = sa.func.coalesce(E.c.bytes_in, 0), sa.func.coalesce(E.c.bytes_out, 0)
        q = (sa.select(E.c.asn, sa.func.max(E.c.as_org), sa.func.sum(b_in + b_out).label("b"),
                       sa.func.sum(b_in), sa.func.sum(b_out), sa.func.sum(E.c.packets),
                       sa.func.count())
             .where(E.c.direction == (direction or "outbound")).group_by(E.c.asn)
             .order_by(sa.desc("b")).limit(limit))
        return [{"asn": a, "as_org": o, "private": False, "bytes": int(b), "bytes_in": int(i),
                 "bytes_out": int(out), "packets": int(p or 0), "flows": int(n)}
                for a, o, b, i, out, p, n in conn.execute(q)]

    module = types.ModuleType("portolan.sinks.asn_traffic")
    module.query = query  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "portolan.sinks.asn_traffic", module)
    browser.goto("/asn")
    page = browser.page
    assert page.locator("canvas[aria-label^='Bytes per AS']").count() == 1
    assert page.locator("canvas[aria-label^='Share of bytes']").count() == 1
    table = page.locator("main table").inner_text()
    assert "Chinanet" in table and "AS4134" in table
    said = page.locator("canvas[aria-label^='Bytes per AS'] li").all_text_contents()
    assert "AS4134: Chinanet: 1.3 kB" in said
    browser.shot("asn-charts")
    page.select_option("#asn-label", "number")
    page.wait_for_url(re.compile(r"label=number"))
    page.wait_for_selector("main[data-ready='1'] canvas")
    said = page.locator("canvas[aria-label^='Bytes per AS'] li").all_text_contents()
    assert "AS4134: 1.3 kB" in said
    page.select_option("#asn-label", "org")
    page.wait_for_url(re.compile(r"label=org"))
    page.wait_for_selector("main[data-ready='1'] canvas")
    said = page.locator("canvas[aria-label^='Bytes per AS'] li").all_text_contents()
    assert "Chinanet: 1.3 kB" in said


def test_keyboard_dark_mode_and_phone(tmp_path: Path, dash: Dash) -> None:
    for b in _launch(tmp_path, dash.srv.url, color_scheme="dark",
                     viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True):
        b.goto("/")
        page = b.page
        page.wait_for_selector("#overview-map .pin")
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(11, 18, 32)"
        # nothing wider than the phone's screen
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        b.shot("overview-phone-dark")
        # the first Tab reaches the skip link, Enter moves focus to the content
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "◎Portolan"
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.getAttribute('href')")
        assert focused.startswith("/map")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/map"))
        page.wait_for_selector("main[data-ready='1'] #main-map")
        b.shot("map-phone-dark")


def test_unknown_path_gets_the_page_and_says_not_found(browser: Browser) -> None:
    browser.page.goto(browser.base + "/no/such/view")
    browser.page.get_by_role("heading", name="Not found").wait_for()


def _png() -> bytes:
    """A 1x1 PNG, made here (a tile)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00\x90\xc0\xe0")) + chunk(b"IEND", b""))


def test_tiles_come_only_from_the_configured_tile_server(tmp_path: Path) -> None:
    import http.server
    import threading

    asked: list[str] = []
    tile = _png()

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(tile)))
            self.end_headers()
            self.wfile.write(tile)

        def log_message(self, *args: Any) -> None:
            pass

    tiles = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{tiles.server_address[1]}/t/{{z}}/{{x}}/{{y}}.png"
        runtime = make_runtime(tmp_path, f"sqlite:///{tmp_path / 't.db'}",
                               server={"tile_url": url})
        for srv in start_server(runtime):
            for b in _launch(tmp_path, srv.url):
                b.goto("/map")
                b.page.wait_for_selector("#main-map img.leaflet-tile-loaded")
                assert asked
                assert all(re.fullmatch(r"/t/\d+/-?\d+/\d+\.png", p) for p in asked)
    finally:
        tiles.shutdown()
        tiles.server_close()


def test_hashed_addresses_are_shown_and_linked_as_hashes(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, f"sqlite:///{tmp_path / 'h.db'}",
                           privacy={"mode": "hash"})
    runtime.store().write(data.day_of_events(now(), n=60))
    for srv in start_server(runtime):
        for b in _launch(tmp_path, srv.url):
            b.goto("/")
            page = b.page
            link = page.locator("#feed a[href^='/ip/']").first
            shown = link.inner_text()
            assert not re.fullmatch(r"[\d.]+", shown)  # not an address
            assert "192.0.2." not in page.locator("main").inner_text()
            link.click()
            page.wait_for_url(re.compile(r"/ip/"))
            page.wait_for_selector("main[data-ready='1']")
            assert page.locator("h1").inner_text() == shown
            assert "shown in full" in page.locator("main").inner_text()
            b.shot("address-hashed")
