"""``/traffic``: traffic per autonomous system for the dashboard's chart and scripts.

``GET /traffic/asn`` answers with the totals of :func:`portolan.sinks.asn_traffic.query`
as JSON: ``{"since", "until", "direction", "by", "rows": [{"asn", "as_org", "bytes",
"bytes_in", "bytes_out", "packets", "flows", "private"[, "network"]}, ...]}``, largest
first. Parameters: ``since`` and ``until`` (an age like ``24h`` or a date), ``direction``
(``outbound``, the default, ``inbound`` or ``any``), ``private`` (``true`` to include
private and reserved destinations), ``by`` (``asn`` or ``network``), ``sensor``,
``limit`` (1-1000, default 20). A bad parameter gets a 400 that names it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from portolan.server.base import MOUNTS, MountSpec

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from portolan.runtime import Runtime


class BadParameter(ValueError):
    """A query parameter that cannot be used; the message names it."""


def _params(query: dict[str, str], now: dt.datetime) -> dict[str, Any]:
    from portolan.times import parse_time

    out: dict[str, Any] = {}
    for key in ("since", "until"):
        if query.get(key):
            try:
                out[key] = parse_time(query[key], now)
            except ValueError as exc:
                raise BadParameter(f"{key}: {exc}") from None
    direction = query.get("direction", "outbound")
    if direction not in ("outbound", "inbound", "any"):
        raise BadParameter(f"direction: {direction!r}; allowed: outbound, inbound, any")
    out["direction"] = None if direction == "any" else direction
    private = query.get("private", "false").lower()
    if private not in ("true", "false", "1", "0"):
        raise BadParameter(f"private: {private!r}; allowed: true, false")
    out["include_private"] = private in ("true", "1")
    by = query.get("by", "asn")
    if by not in ("asn", "network"):
        raise BadParameter(f"by: {by!r}; allowed: asn, network")
    out["by"] = by
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise BadParameter("limit: not a number") from None
    if not 1 <= limit <= 1000:
        raise BadParameter("limit: must be between 1 and 1000")
    out["limit"] = limit
    if query.get("sensor"):
        out["sensor"] = query["sensor"]
    return out


def make_app(runtime: Runtime) -> Any:
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route, Router

    from portolan.sinks.asn_traffic import query
    from portolan.times import rfc3339

    def rows(params: dict[str, Any]) -> list[dict[str, Any]]:
        with runtime.store().connect() as conn:
            return query(conn, **params)

    async def asn(request: Request) -> Response:
        try:
            params = _params(dict(request.query_params), runtime.now())
        except BadParameter as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        found = await run_in_threadpool(rows, params)
        return JSONResponse({
            "since": rfc3339(params.get("since")), "until": rfc3339(params.get("until")),
            "direction": params["direction"] or "any", "by": params["by"], "rows": found,
        })

    return Router(routes=[Route("/asn", asn, methods=["GET"])])


MOUNTS.add("/traffic", MountSpec("/traffic", "traffic per autonomous system (capture)",
                                 make_app))
