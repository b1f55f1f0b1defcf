"""``/ssmon``: the HTTP API of the old spyserver monitor (SpyserverMonitor), for its users.

The same paths and response shapes, read from Portolan's spyserver sessions:

- ``GET /ssmon/api/v1/GetConnectionCounts``: ``{"server_instance": [[name, n]...],
  "country": [[country, n]...], "city": [[city, n]...], "ip": [[hash, n]...], "TOTAL": n,
  "ACTIVE": {...}}``;
- ``GET /ssmon/api/v1/active``: that ``ACTIVE`` object, ``{"TOTAL": n, "SERVER":
  {instance: ["<session as a JSON string>", ...]}}``;
- ``GET /ssmon/api/v1/GetConnectionStats``: ``{"longest": [hash, port, instance,
  sdr_version, os, start, end, duration, lat, lon, country, city], "ip": [hash, n],
  "country": [name, n], "city": [name, n], "avg": seconds, "sum": seconds}``;
- ``GET /ssmon/api/v1/country`` and ``/city``: ``[[name, n], ...]``, largest first;
- ``GET /ssmon/api/v1/location``: ``[{"count": n, "city": ..., "country": ..., "lat": ...,
  "lon": ...}, ...]``, one per place.

Every address is replaced by its keyed hash (:meth:`Privacy.hash_ip`: stable across
restarts, not reversible without the secret), in ``active`` too, where the old monitor
leaked raw addresses. Country and city are names; a connection with no known place
counts under ``"Unknown"``. An empty database answers with empty lists, zero totals and
``null`` statistics, not an error. The old ``open``/``close`` endpoints, which let anyone
inject sessions, are not offered: sessions come from Portolan's own sensors.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from portolan.server.base import MOUNTS, MountSpec

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from portolan.enrich.privacy import Privacy
    from portolan.runtime import Runtime
    from portolan.store import Store

SERVICE = "spyserver"
UNKNOWN = "Unknown"


def _old_time(us: int | None) -> str | None:
    """A time the way the old monitor wrote it: ``str(datetime)`` in UTC."""
    if us is None:
        return None
    from portolan.store import from_us

    when = from_us(us)
    assert when is not None
    return when.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


class SsmonData:
    """The queries behind the endpoints (SQLAlchemy Core on the sessions table)."""

    def __init__(self, store: Store, privacy: Privacy) -> None:
        self.store = store
        self.privacy = privacy

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _instance(conn: Connection) -> Any:
        import sqlalchemy as sa

        from portolan.store.schema import sessions as S

        dialect = conn.dialect.name
        if dialect == "sqlite":
            return sa.func.json_extract(S.c.attrs, "$.instance")
        if dialect == "postgresql":
            return sa.cast(S.c.attrs, sa.JSON)["instance"].as_string()
        return sa.func.json_unquote(sa.func.json_extract(S.c.attrs, "$.instance"))

    @staticmethod
    def _country_names(conn: Connection) -> dict[str, str]:
        """Country code -> name, as enrichment wrote them on spyserver events."""
        import sqlalchemy as sa

        from portolan.store.schema import events as E

        q = (sa.select(E.c.country, sa.func.max(E.c.country_name))
             .where(E.c.service == SERVICE, E.c.country.is_not(None),
                    E.c.country_name.is_not(None))
             .group_by(E.c.country))
        return {code: name for code, name in conn.execute(q)}

    def _counts(self, conn: Connection, column: Any) -> list[tuple[Any, int]]:
        import sqlalchemy as sa

        from portolan.store.schema import sessions as S

        n = sa.func.count().label("n")
        q = (sa.select(column.label("k"), n).where(S.c.service == SERVICE)
             .group_by(column).order_by(sa.desc("n"), column))
        return [(k, int(c)) for k, c in conn.execute(q)]

    def _named(self, pairs: list[tuple[Any, int]],
               names: dict[str, str] | None = None) -> list[list[Any]]:
        """[[name, n]...], largest first, unknown places merged under one name."""
        merged: dict[str, int] = {}
        for key, count in pairs:
            name = (names or {}).get(key, key) if key is not None else None
            label = str(name) if name else UNKNOWN
            merged[label] = merged.get(label, 0) + count
        return [[k, v] for k, v in sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))]

    def _session_json(self, row: Any, names: dict[str, str], instance: str | None) -> str:
        attrs = json.loads(row.attrs) if row.attrs else {}
        return json.dumps({
            "ip": self.privacy.hash_ip(row.src_ip) if row.src_ip else None,
            "port": str(row.src_port) if row.src_port is not None else None,
            "server_instance": instance,
            "sdr_version": _sdr_version(attrs),
            "os": attrs.get("os"),
            "start": _old_time(row.start_ts),
            "end": _old_time(row.end_ts),
            "lat": row.lat,
            "lon": row.lon,
            "country": names.get(row.country, row.country) if row.country else None,
            "city": row.city,
        })

    # -- endpoints ---------------------------------------------------------------------

    def active(self, conn: Connection | None = None) -> dict[str, Any]:
        if conn is None:
            with self.store.connect() as c:
                return self.active(c)
        import sqlalchemy as sa

        from portolan.store.schema import sessions as S

        inst = self._instance(conn).label("instance")
        q = (sa.select(S, inst).where(S.c.service == SERVICE, S.c.end_ts.is_(None),
                                      S.c.start_ts.is_not(None))
             .order_by(S.c.start_ts))
        names = self._country_names(conn)
        servers: dict[str, list[str]] = {}
        total = 0
        for row in conn.execute(q):
            total += 1
            name = row.instance or row.source
            servers.setdefault(name, []).append(self._session_json(row, names, name))
        return {"TOTAL": total, "SERVER": servers}

    def connection_counts(self) -> dict[str, Any]:
        import sqlalchemy as sa

        from portolan.store.schema import sessions as S

        with self.store.connect() as conn:
            names = self._country_names(conn)
            total = conn.execute(sa.select(sa.func.count()).select_from(S)
                                 .where(S.c.service == SERVICE)).scalar_one()
            return {
                "server_instance": self._named(self._counts(conn, self._instance(conn))),
                "country": self._named(self._counts(conn, S.c.country), names),
                "city": self._named(self._counts(conn, S.c.city)),
                "ip": [[self.privacy.hash_ip(ip), n]
                       for ip, n in self._counts(conn, S.c.src_ip) if ip],
                "TOTAL": int(total),
                "ACTIVE": self.active(conn),
            }

    def connection_stats(self) -> dict[str, Any]:
        import sqlalchemy as sa

        from portolan.store.schema import sessions as S

        with self.store.connect() as conn:
            names = self._country_names(conn)
            inst = self._instance(conn).label("instance")
            longest = conn.execute(
                sa.select(S, inst).where(S.c.service == SERVICE, S.c.duration.is_not(None))
                .order_by(S.c.duration.desc(), S.c.id).limit(1)
            ).first()
            agg = conn.execute(
                sa.select(sa.func.avg(S.c.duration), sa.func.sum(S.c.duration))
                .where(S.c.service == SERVICE, S.c.duration.is_not(None))
            ).one()
            ips = [(ip, n) for ip, n in self._counts(conn, S.c.src_ip) if ip]
            countries = self._named(self._counts(conn, S.c.country), names)
            cities = self._named(self._counts(conn, S.c.city))
        row: list[Any] | None = None
        if longest is not None:
            attrs = json.loads(longest.attrs) if longest.attrs else {}
            row = [
                self.privacy.hash_ip(longest.src_ip) if longest.src_ip else None,
                str(longest.src_port) if longest.src_port is not None else None,
                longest.instance or longest.source,
                _sdr_version(attrs), attrs.get("os"),
                _old_time(longest.start_ts), _old_time(longest.end_ts), longest.duration,
                longest.lat, longest.lon,
                names.get(longest.country, longest.country) if longest.country else None,
                longest.city,
            ]
        return {
            "longest": row,
            "ip": [self.privacy.hash_ip(ips[0][0]), ips[0][1]] if ips else None,
            "country": countries[0] if countries else None,
            "city": cities[0] if cities else None,
            "avg": float(agg[0]) if agg[0] is not None else None,
            "sum": float(agg[1]) if agg[1] is not None else 0.0,
        }

    def countries(self) -> list[list[Any]]:
        from portolan.store.schema import sessions as S

        with self.store.connect() as conn:
            return self._named(self._counts(conn, S.c.country), self._country_names(conn))

    def cities(self) -> list[list[Any]]:
        from portolan.store.schema import sessions as S

        with self.store.connect() as conn:
            return self._named(self._counts(conn, S.c.city))

    def locations(self) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        from portolan.store.schema import sessions as S

        with self.store.connect() as conn:
            names = self._country_names(conn)
            n = sa.func.count().label("n")
            q = (sa.select(S.c.lat, S.c.lon, sa.func.max(S.c.city), sa.func.max(S.c.country), n)
                 .where(S.c.service == SERVICE, S.c.lat.is_not(None), S.c.lon.is_not(None))
                 .group_by(S.c.lat, S.c.lon).order_by(sa.desc("n"), S.c.lat, S.c.lon))
            return [
                {"count": int(count), "city": city,
                 "country": names.get(country, country) if country else None,
                 "lat": lat, "lon": lon}
                for lat, lon, city, country, count in conn.execute(q)
            ]


def _sdr_version(attrs: dict[str, Any]) -> str | None:
    """What the old monitor kept as ``sdr_version``: the client's version, else its name."""
    value = attrs.get("version") or attrs.get("software") or attrs.get("client")
    return str(value)[:256] if value is not None else None


def make_app(data: SsmonData) -> Any:
    """The ASGI app (its routes are relative to where it is mounted)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, Router

    def endpoint(produce: Any) -> Any:
        def handler(request: Request) -> JSONResponse:
            return JSONResponse(produce())

        return handler

    routes = [
        Route("/api/v1/GetConnectionCounts", endpoint(data.connection_counts)),
        Route("/api/v1/GetConnectionStats", endpoint(data.connection_stats)),
        Route("/api/v1/active", endpoint(data.active)),
        Route("/api/v1/country", endpoint(data.countries)),
        Route("/api/v1/city", endpoint(data.cities)),
        Route("/api/v1/location", endpoint(data.locations)),
    ]
    return Router(routes=routes)


def _make(runtime: Runtime) -> Any:
    from portolan.enrich.privacy import Privacy, PrivacySection

    settings = runtime.config.get(PrivacySection)
    privacy = Privacy.from_settings(settings, runtime.data_dir)
    return make_app(SsmonData(runtime.store(), privacy))


MOUNTS.add("/ssmon", MountSpec("/ssmon", "the old spyserver monitor's API "
                               "(GetConnectionCounts, active, ...), with hashed addresses",
                               _make))
