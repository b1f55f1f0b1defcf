"""Where the terminal view reads from: the store itself, or a Portolan server's API.

Both back ends answer the same few questions (:class:`Feed`) in the API's own JSON shapes
(:mod:`portolan.server.shapes`), so the screen cannot tell them apart. :class:`StoreFeed`
reads through the store's query layer and the rollups, exactly as the server's handlers
do; :class:`ApiFeed` asks ``/api/v1`` over HTTP with an optional bearer token.

Every question is cheap: counts and the time series come from the rollups, events and
sessions from indexed queries with a small limit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol, TypeVar

import msgspec

from portolan.event import Event
from portolan.server import shapes
from portolan.store import Store
from portolan.times import rfc3339

T = TypeVar("T")


class FeedError(Exception):
    """The store or the server cannot answer; the message says why, in one line."""


class Feed(Protocol):
    """What the terminal view asks, whichever back end answers."""

    where: str
    """The store or server, for the title bar (no password, no token)."""

    def counts(self, field: str, since: dt.datetime | None, limit: int) -> shapes.Counts:
        """The ``limit`` most frequent items of ``field`` (a rollup dimension)."""
        ...

    def series(self, since: dt.datetime, step: int, now: dt.datetime) -> shapes.Series:
        """Events per bucket of ``step`` seconds from ``since`` to ``now``."""
        ...

    def events(self, since: dt.datetime | None, limit: int) -> list[Event]:
        """The newest events."""
        ...

    def active(self, limit: int) -> list[shapes.Session]:
        """Open sessions, newest first."""
        ...

    def story(self, ip: str) -> shapes.Story | None:
        """Everything known about one address; None when it was never seen."""
        ...

    def star(self, ip: str, starred: bool) -> bool:
        """Star or unstar an address; False when it was never seen."""
        ...

    def close(self) -> None: ...


def _items(pairs: list[tuple[Any, int]]) -> list[shapes.CountItem]:
    return [shapes.CountItem(key=k, count=n) for k, n in pairs]


class StoreFeed:
    """Reads the store through its query layer and the rollups (addresses in full: whoever
    can open the database sees them anyway)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.where = store.where

    def _guard(self, call: Any, *args: Any, **kw: Any) -> Any:
        from portolan.store import QueryError, StoreError

        try:
            return call(*args, **kw)
        except (StoreError, QueryError) as exc:
            raise FeedError(str(exc)) from exc

    def counts(self, field: str, since: dt.datetime | None, limit: int) -> shapes.Counts:
        from portolan.store import EventFilter, rollups

        def run() -> shapes.Counts:
            with self.store.connect() as conn:
                found = rollups.counts(conn, field, EventFilter(since=since), limit=limit)
            return shapes.Counts(
                field=field, other=found.other, total=found.total,
                items=[shapes.CountItem(key=k, label=lab, count=n) for k, lab, n in found.top])

        result: shapes.Counts = self._guard(run)
        return result

    def series(self, since: dt.datetime, step: int, now: dt.datetime) -> shapes.Series:
        from portolan.store import EventFilter, rollups

        def run() -> shapes.Series:
            with self.store.connect() as conn:
                points = rollups.series(conn, EventFilter(since=since), step, now=now)
            return shapes.Series(step=step, points=[shapes.Point(t=t, count=n)
                                                    for t, n in points],
                                 total=sum(n for _, n in points))

        result: shapes.Series = self._guard(run)
        return result

    def events(self, since: dt.datetime | None, limit: int) -> list[Event]:
        from portolan.store import EventFilter

        found: list[Event] = self._guard(self.store.events, EventFilter(since=since),
                                         limit=limit)
        return found

    def active(self, limit: int) -> list[shapes.Session]:
        rows = self._guard(self.store.sessions, active=True, limit=limit)
        return [msgspec.convert({str(k): v for k, v in r.items()}, shapes.Session)
                for r in rows]

    def story(self, ip: str) -> shapes.Story | None:
        from portolan.store import story

        def run() -> shapes.Story | None:
            E = story.E
            with self.store.connect() as conn:
                row = story.address(conn, ip)
                if row is None:
                    return None
                return shapes.Story(
                    address=msgspec.convert(row, shapes.Address),
                    sensors=_items(story.top(conn, ip, E.c.sensor)),
                    services=_items(story.top(conn, ip, E.c.service)),
                    actions=_items(story.top(conn, ip, E.c.action)),
                    users=_items(story.top(conn, ip, E.c.user)),
                    ports=_items(story.top(conn, ip, E.c.dst_port)),
                    payload_kinds=_items(list(story.payload_kinds(conn, ip))),
                    recent=story.recent(conn, ip),
                    links={k: v.format(ip=ip) for k, v in story.LINKS.items()},
                )

        result: shapes.Story | None = self._guard(run)
        return result

    def star(self, ip: str, starred: bool) -> bool:
        from portolan.store import story

        def run() -> bool:
            with self.store.engine.begin() as conn:
                return story.set_watch(conn, ip, starred, None)

        ok: bool = self._guard(run)
        return ok

    def close(self) -> None:
        self.store.close()


class ApiFeed:
    """Reads a Portolan server's ``/api/v1`` (addresses as that server's privacy mode shows
    them)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 10.0) -> None:
        import httpx

        base = url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise FeedError(f"--url: {url!r} is not an http:// or https:// URL")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.where = base
        self.client = httpx.Client(base_url=base + "/api/v1", headers=headers,
                                   timeout=timeout)

    def _get(self, path: str, shape: type[T], params: dict[str, Any] | None = None,
             *, missing_ok: bool = False) -> T | None:
        import httpx

        from portolan.event import _dec_hook

        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise FeedError(f"{self.where}: {exc}") from exc
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            raise FeedError(f"{self.where}{path}: HTTP {response.status_code}: "
                            f"{_error_of(response.content)}")
        try:
            return msgspec.json.decode(response.content, type=shape, dec_hook=_dec_hook)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise FeedError(f"{self.where}{path}: unexpected answer: {exc}") from exc

    def counts(self, field: str, since: dt.datetime | None, limit: int) -> shapes.Counts:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = rfc3339(since)
        found = self._get(f"/counts/{field}", shapes.Counts, params)
        assert found is not None
        return found

    def series(self, since: dt.datetime, step: int, now: dt.datetime) -> shapes.Series:
        found = self._get("/series", shapes.Series, {
            "since": rfc3339(since), "until": rfc3339(now), "step": step})
        assert found is not None
        return found

    def events(self, since: dt.datetime | None, limit: int) -> list[Event]:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = rfc3339(since)
        found = self._get("/events", shapes.EventPage, params)
        assert found is not None
        return found.events

    def active(self, limit: int) -> list[shapes.Session]:
        found = self._get("/sessions/active", shapes.Sessions, {"limit": limit})
        assert found is not None
        return found.sessions

    def story(self, ip: str) -> shapes.Story | None:
        from urllib.parse import quote

        return self._get(f"/ips/{quote(ip, safe='')}", shapes.Story, missing_ok=True)

    def star(self, ip: str, starred: bool) -> bool:
        from urllib.parse import quote

        import httpx

        try:
            response = self.client.put(f"/ips/{quote(ip, safe='')}",
                                       json={"starred": starred})
        except httpx.HTTPError as exc:
            raise FeedError(f"{self.where}: {exc}") from exc
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise FeedError(f"starring {ip}: HTTP {response.status_code}: "
                            f"{_error_of(response.content)}")
        return True

    def close(self) -> None:
        self.client.close()


def _error_of(body: bytes) -> str:
    """The ``error`` of a problem answer, else the start of the body (made printable)."""
    from portolan.text import printable

    try:
        problem = msgspec.json.decode(body, type=shapes.Problem)
        text = problem.error
    except (msgspec.ValidationError, msgspec.DecodeError):
        text = body[:200].decode("utf-8", "replace")
    return printable(text, 200)
