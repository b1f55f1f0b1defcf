"""An online GeoIP provider beside the offline data: ipgeolocation.io.

Off by default (``[geoip] online = "ipgeolocation"`` and ``online_key`` turn it on). It
never blocks or slows the pipeline: the enricher asks :meth:`OnlineProvider.overlay`,
which answers from what the provider already knows and otherwise queues the address for
a worker thread and returns the offline answer unchanged. The worker asks the API at
most ``online_rate`` times a second, with a time-out; answers are kept in a bounded
cache, and a failed address is not asked again for a while. When the provider fails,
the offline result stands. The API key never appears in logs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portolan.event import clip

if TYPE_CHECKING:
    from portolan.enrich.geoip import GeoipSection, Result

log = logging.getLogger(__name__)

#: Seconds before an address whose lookup failed is asked again.
RETRY_FAILED = 600.0


@dataclass(frozen=True)
class OnlineHit:
    """A place as the online provider gave it."""

    country: str | None
    country_name: str | None
    city: str | None
    region: str | None
    lat: float | None
    lon: float | None
    label: str


def parse_ipgeolocation(data: Any, day: dt.date) -> OnlineHit | None:
    """An ipgeolocation.io ``/ipgeo`` answer (JSON object), or None when it has no place."""
    if not isinstance(data, dict):
        return None

    def text(key: str) -> str | None:
        value = data.get(key)
        return clip(value, 256) if isinstance(value, str) and value else None

    def number(key: str, low: float, high: float) -> float | None:
        raw = data.get(key)  # the API sends coordinates as strings
        try:
            value = float(raw) if isinstance(raw, (str, int, float)) else None
        except ValueError:
            return None
        if value is None:
            return None
        return value if low <= value <= high else None

    code = text("country_code2")
    country = code.upper() if code and len(code) == 2 and code.isalpha() else None
    lat, lon = number("latitude", -90, 90), number("longitude", -180, 180)
    if lat is None or lon is None:
        lat = lon = None
    if country is None and lat is None:
        return None
    return OnlineHit(country, text("country_name"), text("city"), text("state_prov"), lat, lon,
                     f"ipgeolocation.io@{day:%Y-%m-%d}")


class OnlineProvider:
    """ipgeolocation.io, asked from a worker thread; see the module docstring."""

    def __init__(self, key: str, base_url: str, *, rate: float = 1.0, timeout: float = 5.0,
                 cache_size: int = 50_000, queue_size: int = 1000,
                 clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date()) -> None:
        self.key = key
        self.base_url = base_url.rstrip("/")
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.timeout = timeout
        self.cache_size = max(1, cache_size)
        self.clock = clock
        self.today = today
        self._cache: OrderedDict[str, OnlineHit | None] = OrderedDict()
        self._failed: dict[str, float] = {}
        self._pending: set[str] = set()
        self._queue: queue.Queue[str | None] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.requests = 0
        self.failures = 0
        self.dropped = 0

    # -- what the enricher calls (in the pipeline's thread; never waits) -----------------

    def overlay(self, ip: str, offline: Result) -> Result:
        """The offline answer with the online place over it when one is known; else the
        offline answer, and the address is queued to be asked."""
        with self._lock:
            if ip in self._cache:
                hit = self._cache[ip]
                self._cache.move_to_end(ip)
            else:
                self._submit(ip)
                return offline
        if hit is None:
            return offline
        extra = dict(offline[9] or {})
        extra.pop("geo", None)
        extra.pop("geo_accuracy_km", None)
        if hit.region:
            extra["geo_region"] = hit.region
        else:
            extra.pop("geo_region", None)
        return (hit.country, hit.country_name, hit.city, hit.lat, hit.lon, offline[5],
                offline[6], offline[7],
                f"{offline[8]}+{hit.label}"[:256] if offline[8] else hit.label, extra or None)

    def _submit(self, ip: str) -> None:
        if ip in self._pending:
            return
        failed = self._failed.get(ip)
        if failed is not None and self.clock() - failed < RETRY_FAILED:
            return
        try:
            self._queue.put_nowait(ip)
        except queue.Full:
            self.dropped += 1
            return
        self._pending.add(ip)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="geoip-online",
                                            daemon=True)
            self._thread.start()

    def known(self, ip: str) -> bool:
        """Whether the provider has answered (or refused) for ``ip``."""
        with self._lock:
            return ip in self._cache

    # -- the worker ------------------------------------------------------------------

    def _work(self) -> None:
        next_at = 0.0
        while not self._closed.is_set():
            ip = self._queue.get()
            if ip is None:
                return
            wait = next_at - self.clock()
            if wait > 0 and self._closed.wait(wait):
                return
            next_at = self.clock() + self.interval
            hit: OnlineHit | None = None
            ok = False
            try:
                hit = self.fetch(ip)
                ok = True
            except Exception as exc:  # the offline result stands
                self.failures += 1
                log.warning("GeoIP online provider: %s: %s", ip, exc)
            with self._lock:
                self._pending.discard(ip)
                if ok:
                    self._cache[ip] = hit
                    if len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
                else:
                    self._failed[ip] = self.clock()
                    if len(self._failed) > self.cache_size:
                        self._failed.clear()

    def fetch(self, ip: str) -> OnlineHit | None:
        """Ask the API about one address (blocking; the worker calls it)."""
        query = urllib.parse.urlencode({"apiKey": self.key, "ip": ip})
        url = f"{self.base_url}/ipgeo?{query}"
        if not url.startswith(("http://", "https://")):
            raise ValueError("online_url must start with http:// or https://")
        self.requests += 1
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                body = resp.read(1 << 20)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise RuntimeError(f"unreachable: {exc.reason}") from None
        except TimeoutError:
            raise RuntimeError(f"no answer within {self.timeout} s") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise RuntimeError("answer is not JSON") from None
        return parse_ipgeolocation(data, self.today())

    def close(self) -> None:
        """Stop the worker (what is queued is dropped)."""
        self._closed.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)


def make_provider(settings: GeoipSection) -> OnlineProvider:
    """The provider ``[geoip] online`` names."""
    return OnlineProvider(settings.online_key, settings.online_url, rate=settings.online_rate,
                          timeout=settings.online_timeout,
                          cache_size=settings.online_cache_size)
