"""The read side of the REST API (``/api/v1``): events, counts, time series, sessions,
addresses and the watch list, sensors, traffic per AS.

Every handler checks access, parses its query parameters into an
:class:`~portolan.store.EventFilter` (a bad value is a 400 that names the parameter),
reads through the store's query layer or the rollups, and shows addresses as the privacy
mode says. Handlers are plain functions: Starlette runs them in its thread pool, so a slow
query never blocks the event loop.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Callable
from typing import Any, Final, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from portolan import __version__
from portolan.server import shapes
from portolan.server.context import Need, ServerState, json_response, problem
from portolan.store import EventFilter, QueryError, StoreError, query, rollups, story, to_us
from portolan.times import parse_time

LIMIT_MAX: Final = 1000
_CURSOR = re.compile(r"^(\d{1,20})-([A-Za-z0-9_.:-]{1,64})$")
_NAMES = ("sensor", "source", "service", "action", "user")


class BadRequest(ValueError):
    """A query parameter that cannot be used; the message names it."""


def state(request: Request) -> ServerState:
    st: ServerState = request.app.state.portolan
    return st


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: {text[:40]!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: must be between {lo} and {hi}")
    return value


def _time(request: Request, name: str, now: dt.datetime) -> dt.datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        value = parse_time(text, now)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name}: {text[:40]!r} is not a time; use an age like 30m, 2h, 7d "
                         "or a date like 2026-11-23T05:00:00Z") from None
    if not dt.datetime(1970, 1, 1, tzinfo=dt.UTC) <= value <= dt.datetime(
            9999, 1, 1, tzinfo=dt.UTC):
        raise BadRequest(f"{name}: out of range")
    return value


def event_filter(request: Request, st: ServerState, *, default_since: str | None = None
                 ) -> EventFilter:
    """The filter that the query parameters describe."""
    now = st.runtime.now()
    params = request.query_params
    kw: dict[str, Any] = {}
    since = _time(request, "since", now)
    if since is None and default_since is not None:
        since = parse_time(default_since, now)
    kw["since"], kw["until"] = since, _time(request, "until", now)
    for name in _NAMES:
        value = params.get(name)
        if value:
            kw[name] = value[:1024]
    direction = params.get("direction")
    if direction:
        if direction not in ("inbound", "outbound"):
            raise BadRequest("direction: allowed: inbound, outbound")
        kw["direction"] = direction
    country = params.get("country")
    if country:
        if not re.fullmatch(r"[A-Za-z]{2}", country):
            raise BadRequest("country: a two-letter code (NL, DE...)")
        kw["country"] = country.upper()
    if params.get("asn"):
        kw["asn"] = _int(request, "asn", 0, 0, 4294967295)
    ip = params.get("ip")
    if ip:
        kw["ip"] = _ip_param(st, ip[:64])
    text = params.get("q")
    if text:
        if st.privacy.mode != "full" and _ADDRESS_CHARS.fullmatch(text):
            # such text could only find addresses: an oracle for what privacy hides
            raise BadRequest(f"q: addresses cannot be searched in privacy mode "
                             f"{st.privacy.mode!r}")
        kw["text"] = text[:256]
    return EventFilter(**kw)


Handler = Callable[[Request, ServerState], Response]
Endpoint = Callable[[Request], Response]


_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f.:/]+")


def _ip_param(st: ServerState, value: str) -> str:
    """The ``ip`` filter as the store needs it, under the privacy mode: in ``hash`` mode
    a hash the API showed (anything else matches nothing, so that a client cannot ask
    whether an address is stored); in ``truncate`` mode a network no narrower than the
    ones shown."""
    mode = st.privacy.mode
    if mode == "hash":
        if "/" in value:
            raise BadRequest("ip: networks cannot be searched when addresses are hashed")
        real = st.resolver.real(value)
        return real if real is not None else "unknown:" + value
    if mode == "truncate":
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise BadRequest(f"ip: {value!r} is not a network") from None
        if net.prefixlen > (24 if net.version == 4 else 48):
            raise BadRequest("ip: in privacy mode 'truncate' give a network of /24 (IPv4) "
                             "or /48 (IPv6) or wider")
        return str(net)
    return value


def guarded(need: Need = "read") -> Callable[[Handler], Endpoint]:
    """Wraps a handler: access check, then 400 for bad parameters and store questions
    that cannot be answered, 503 when the database is unavailable."""

    def wrap(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        def endpoint(request: Request) -> Response:
            st = state(request)
            denied = st.deny(request, need)
            if denied is not None:
                return denied
            try:
                return handler(request, st)
            except (BadRequest, QueryError) as exc:
                return problem(400, str(exc))
            except StoreError as exc:
                return problem(503, f"the store is unavailable: {exc}")

        return endpoint

    return wrap


# -- events ----------------------------------------------------------------------------


@guarded()
def events(request: Request, st: ServerState) -> Response:
    """Events matching the filters, newest first, a page at a time."""
    f = event_filter(request, st)
    limit = _int(request, "limit", 100, 1, LIMIT_MAX)
    before = None
    cursor = request.query_params.get("cursor")
    if cursor:
        m = _CURSOR.match(cursor)
        if m is None or int(m[1]) > 253402300799999999:
            raise BadRequest("cursor: not a cursor this server gave out")
        from portolan.store import from_us

        ts = from_us(int(m[1]))
        assert ts is not None
        before = (ts, m[2])
    found = st.store.events(f, limit=limit, before=before)
    nxt = None
    if len(found) == limit:
        last = found[-1]
        nxt = f"{to_us(last.ts)}-{last.id}"
    return json_response(shapes.EventPage(events=[st.shown(e) for e in found], next=nxt))


# -- counts and series -----------------------------------------------------------------


@guarded()
def counts(request: Request, st: ServerState) -> Response:
    """The most frequent items of one field, with the total of the others."""
    field = request.path_params["field"]
    if field not in rollups.DIMS:
        return problem(404, f"cannot count by {field[:40]!r}; allowed: "
                            f"{', '.join(rollups.DIMS)}")
    f = event_filter(request, st)
    limit = _int(request, "limit", 10, 1, LIMIT_MAX)
    merge = field == "ip" and st.privacy.mode == "truncate"
    with st.store.connect() as conn:
        # truncated addresses share their network: count more, then add up per network
        result = rollups.counts(conn, field, f, limit=limit * 20 if merge else limit)
    merged: dict[Any, list[Any]] = {}
    for key, label, n in result.top:
        if field == "ip" and isinstance(key, str):
            key = st.privacy.address(key)
        row = merged.setdefault(key, [label, 0])
        row[1] += n
    ordered = sorted(merged.items(), key=lambda kv: -kv[1][1])[:limit]
    items = [shapes.CountItem(key=k, label=lab, count=n) for k, (lab, n) in ordered]
    return json_response(shapes.Counts(
        field=field, items=items, other=result.total - sum(i.count for i in items),
        total=result.total))


@guarded()
def series(request: Request, st: ServerState) -> Response:
    """Counts per time bucket (a minute to a day) over a range, with the same filters."""
    f = event_filter(request, st, default_since="24h")
    step = _int(request, "step", 3600, 1, 86400)
    with st.store.connect() as conn:
        points = rollups.series(conn, f, step, now=st.runtime.now())
    return json_response(shapes.Series(
        step=step, points=[shapes.Point(t=t, count=n) for t, n in points],
        total=sum(n for _, n in points)))


# -- sessions --------------------------------------------------------------------------


def _sessions(request: Request, st: ServerState, active: bool) -> Response:
    now = st.runtime.now()
    since = None if active else _time(request, "since", now)
    limit = _int(request, "limit", 100, 1, LIMIT_MAX)
    service = request.query_params.get("service") or None
    sensor = request.query_params.get("sensor") or None
    with st.store.connect() as conn:
        rows = query.sessions(conn, since=since, active=active, service=service,
                              sensor=sensor, limit=limit)
    out = []
    for row in rows:
        s = msgspec.convert({str(k): v for k, v in row.items()}, shapes.Session)
        if st.privacy.mode != "full":
            s.src_ip = st.privacy.address(s.src_ip)
            s.dst_ip = st.privacy.address(s.dst_ip)
            s.session = st.privacy.hash_ip(s.session)
        out.append(s)
    return json_response(shapes.Sessions(sessions=out))


@guarded()
def sessions(request: Request, st: ServerState) -> Response:
    """Sessions (a connect paired with its disconnect), newest first."""
    return _sessions(request, st, active=False)


@guarded()
def active(request: Request, st: ServerState) -> Response:
    """Active connections: sessions that started and have not ended."""
    return _sessions(request, st, active=True)


# -- addresses -------------------------------------------------------------------------


def _shown_address(st: ServerState, row: dict[str, Any]) -> shapes.Address:
    row = dict(row)
    row["ip"] = st.privacy.address(row["ip"])
    return msgspec.convert(row, shapes.Address)


def _real_ip(request: Request, st: ServerState) -> str | None:
    shown = request.path_params["ip"][:64]
    if st.privacy.mode == "truncate":
        raise BadRequest("single addresses are not shown in privacy mode 'truncate'")
    return st.resolver.real(shown)


def _items(pairs: list[tuple[Any, int]]) -> list[shapes.CountItem]:
    return [shapes.CountItem(key=k, count=n) for k, n in pairs]


@guarded()
def ip_story(request: Request, st: ServerState) -> Response:
    """Everything known about one address."""
    ip = _real_ip(request, st)
    E = story.E
    with st.store.connect() as conn:
        row = story.address(conn, ip) if ip else None
        if ip is None or row is None:
            return problem(404, "this address has not been seen")
        result = shapes.Story(
            address=_shown_address(st, row),
            sensors=_items(story.top(conn, ip, E.c.sensor)),
            services=_items(story.top(conn, ip, E.c.service)),
            actions=_items(story.top(conn, ip, E.c.action)),
            users=_items(story.top(conn, ip, E.c.user)),
            ports=_items(story.top(conn, ip, E.c.dst_port)),
            payload_kinds=_items(list(story.payload_kinds(conn, ip))),
            recent=[st.shown(e) for e in story.recent(conn, ip)],
            links=({k: v.format(ip=ip) for k, v in story.LINKS.items()}
                   if st.privacy.mode == "full" else {}),
        )
    return json_response(result)


def _watch(request: Request, st: ServerState, change: shapes.WatchChange | None) -> Response:
    ip = _real_ip(request, st)
    with st.store.engine.begin() as conn:
        ok = ip is not None and story.set_watch(
            conn, ip, None if change is None else change.starred,
            None if change is None else change.note, clear=change is None)
        row = story.address(conn, ip) if ok and ip else None
    if row is None:
        return problem(404, "this address has not been seen")
    shown = st.privacy.address(row["ip"]) or ""
    return json_response(shapes.Watch(ip=shown, starred=row["starred"], note=row["note"]))


async def ip_put(request: Request) -> Response:
    """Star an address or write a note about it (the watch list)."""
    st = state(request)
    denied = st.deny(request, "watch")
    if denied is not None:
        return denied
    body = await request.body()
    if len(body) > 16384:
        return problem(413, "body: at most 16384 bytes")
    try:
        change = msgspec.json.decode(body, type=shapes.WatchChange)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return problem(400, f"body: {exc}")
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_guard_watch, request, st, change)


def _guard_watch(request: Request, st: ServerState, change: shapes.WatchChange | None
                 ) -> Response:
    try:
        return _watch(request, st, change)
    except BadRequest as exc:
        return problem(400, str(exc))
    except StoreError as exc:
        return problem(503, f"the store is unavailable: {exc}")


def ip_delete(request: Request) -> Response:
    """Take an address off the watch list (unstar it, drop its note)."""
    st = state(request)
    denied = st.deny(request, "watch")
    if denied is not None:
        return denied
    return _guard_watch(request, st, None)


@guarded()
def ips(request: Request, st: ServerState) -> Response:
    """Addresses, most recently seen first; ``starred=true`` gives the watch list."""
    text = request.query_params.get("starred")
    if text not in (None, "", "true", "false"):
        raise BadRequest("starred: true or false")
    starred = None if not text else text == "true"
    limit = _int(request, "limit", 100, 1, LIMIT_MAX)
    with st.store.connect() as conn:
        rows = story.addresses(conn, starred=starred, limit=limit)
    return json_response(shapes.Addresses(ips=[_shown_address(st, r) for r in rows]))


# -- sensors, AS traffic, info ---------------------------------------------------------


@guarded()
def sensors(request: Request, st: ServerState) -> Response:
    """Every sensor: last contact, events per second, lag."""
    with st.store.connect() as conn:
        rows = story.sensors(conn, st.runtime.now())
    return json_response(shapes.Sensors(sensors=[msgspec.convert(r, shapes.Sensor)
                                                 for r in rows]))


@guarded()
def asn_traffic(request: Request, st: ServerState) -> Response:
    """Traffic per remote AS (or announced network), from packet capture: bytes, packets
    and flows over a time range, largest first."""
    from portolan.sinks.asn_traffic import query as traffic

    now = st.runtime.now()
    params = request.query_params
    directions: dict[str, Literal["inbound", "outbound"] | None] = {
        "inbound": "inbound", "outbound": "outbound", "both": None}
    groupings: dict[str, Literal["asn", "network"]] = {"asn": "asn", "network": "network"}
    direction = params.get("direction") or "outbound"
    if direction not in directions:
        raise BadRequest("direction: allowed: inbound, outbound, both")
    by = params.get("by") or "asn"
    if by not in groupings:
        raise BadRequest("by: allowed: asn, network")
    private = params.get("private") or "false"
    if private not in ("true", "false"):
        raise BadRequest("private: true or false")
    with st.store.connect() as conn:
        rows = traffic(conn, since=_time(request, "since", now), until=_time(request, "until", now),
                       direction=directions[direction], include_private=private == "true",
                       sensor=params.get("sensor") or None, by=groupings[by],
                       limit=_int(request, "limit", 20, 1, LIMIT_MAX))
    return json_response(shapes.AsnTraffic(
        rows=[msgspec.convert({str(k): v for k, v in r.items()}, shapes.AsnTrafficRow)
              for r in rows]))


@guarded()
def info(request: Request, st: ServerState) -> Response:
    """About this server: version, privacy mode, map tiles, what counts and steps exist."""
    return json_response(shapes.Info(
        version=__version__, privacy=st.privacy.mode, tile_url=st.settings.tile_url or None,
        counts=list(rollups.DIMS), steps=list(rollups.STEPS)))


def health(request: Request) -> Response:
    """Whether the server runs (no access check, no database)."""
    return json_response({"status": "ok"})


ROUTES = [
    Route("/events", events, methods=["GET"]),
    Route("/counts/{field}", counts, methods=["GET"]),
    Route("/series", series, methods=["GET"]),
    Route("/sessions", sessions, methods=["GET"]),
    Route("/sessions/active", active, methods=["GET"]),
    Route("/ips", ips, methods=["GET"]),
    Route("/ips/{ip}", ip_story, methods=["GET"]),
    Route("/ips/{ip}", ip_put, methods=["PUT"]),
    Route("/ips/{ip}", ip_delete, methods=["DELETE"]),
    Route("/sensors", sensors, methods=["GET"]),
    Route("/asn-traffic", asn_traffic, methods=["GET"]),
    Route("/info", info, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]

__all__ = ["ROUTES", "BadRequest", "event_filter"]
