"""The OpenAPI 3.1 document of the API, served at ``/api/v1/openapi.json``.

The schemas of the bodies are generated from the classes the server encodes
(:mod:`portolan.server.shapes` and :class:`~portolan.event.Event`), so the document and
the responses cannot drift apart; the paths and parameters are declared here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from portolan import __version__
from portolan.event import Event, Payload
from portolan.server import shapes
from portolan.store import rollups

_REF = "#/components/schemas/{name}"


def _schema_hook(typ: type) -> dict[str, Any]:
    if typ is Payload:
        return {"type": "string", "pattern": "^([0-9a-fA-F]{2})*$",
                "description": "bytes as hex"}
    raise NotImplementedError


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(name=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(name)}}}


def _param(name: str, schema: dict[str, Any], description: str, where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": schema}


_TEXT = {"type": "string", "maxLength": 1024}
_TIME = {"type": "string", "maxLength": 64,
         "description": "an age (30m, 2h, 7d) or an RFC 3339 time / date"}

FILTERS = [
    _param("since", _TIME, "Only events at or after this time."),
    _param("until", _TIME, "Only events before this time."),
    _param("sensor", _TEXT, "Only this sensor."),
    _param("source", _TEXT, "Only this input of a sensor."),
    _param("service", _TEXT, "Only this service (ssh, http, spyserver...)."),
    _param("action", _TEXT, "Only this action (auth_failure, connect...)."),
    _param("direction", {"type": "string", "enum": ["inbound", "outbound"]},
           "Only inbound or outbound events."),
    _param("country", {"type": "string", "pattern": "^[A-Za-z]{2}$"},
           "Only this country (two-letter code)."),
    _param("asn", {"type": "integer", "minimum": 0, "maximum": 4294967295},
           "Only this autonomous system."),
    _param("ip", {"type": "string", "maxLength": 64},
           "Only this address (either end), or network in CIDR notation (whole octets or "
           "at most 4096 addresses). In privacy mode hash: the hash shown by the API."),
    _param("user", _TEXT, "Only this user name."),
    _param("q", {"type": "string", "maxLength": 256},
           "Free text, found in the user name, the address or the attributes."),
]


def _limit(default: int) -> dict[str, Any]:
    return _param("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                            "default": default}, "How many at most.")


_ERRORS = {
    "400": _json("Problem", "A parameter or the body cannot be used; `error` says which."),
    "401": _json("Problem", "A bearer token is needed, or the one given is unknown."),
    "403": _json("Problem", "The token's scope does not allow this."),
    "503": _json("Problem", "The database is unavailable; retry later."),
}


def _op(summary: str, ok: dict[str, Any], params: list[dict[str, Any]] | None = None,
        errors: tuple[str, ...] = ("400", "401", "403", "503"),
        tag: str = "read", **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for code in errors:
        responses[code] = _ERRORS.get(code) or _json("Problem", "See `error`.")
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    op.update(extra)
    return op


def document() -> dict[str, Any]:
    """The whole document."""
    types: list[Any] = [Event, shapes.Problem, shapes.EventPage, shapes.Counts, shapes.Series,
                        shapes.Sessions, shapes.Addresses, shapes.Story, shapes.Watch,
                        shapes.WatchChange, shapes.Sensors, shapes.IngestResult, shapes.Info,
                        shapes.AsnTraffic]
    _, components = msgspec.json.schema_components(types, schema_hook=_schema_hook,
                                                   ref_template=_REF)
    components["Health"] = {"type": "object", "properties": {"status": {"type": "string"}},
                            "required": ["status"]}
    ip_path = _param("ip", {"type": "string", "minLength": 1, "maxLength": 64},
                     "The address as the API shows it.", where="path")
    paths: dict[str, Any] = {
        "/api/v1/events": {"get": _op(
            "Events matching the filters, newest first, a page at a time.",
            _json("EventPage", "A page of events."),
            [*FILTERS, _limit(100),
             _param("cursor", {"type": "string", "maxLength": 100},
                    "The `next` of the previous page.")])},
        "/api/v1/counts/{field}": {"get": _op(
            "The most frequent items of a field, the total of the others, and the total.",
            _json("Counts", "Counts, largest first."),
            [_param("field", {"type": "string", "enum": list(rollups.DIMS)},
                    "What to count by.", where="path"), *FILTERS, _limit(10)],
            errors=("400", "401", "403", "404", "503"))},
        "/api/v1/series": {"get": _op(
            "Counts per time bucket over a range (default: the last 24 hours).",
            _json("Series", "One point per bucket."),
            [*FILTERS, _param("step", {"type": "integer", "enum": list(rollups.STEPS),
                                       "default": 3600}, "Bucket width in seconds.")])},
        "/api/v1/sessions": {"get": _op(
            "Sessions (a connect paired with its disconnect), newest first.",
            _json("Sessions", "Sessions."),
            [FILTERS[0], FILTERS[2], FILTERS[4], _limit(100)])},
        "/api/v1/sessions/active": {"get": _op(
            "Active connections: sessions that started and have not ended.",
            _json("Sessions", "Open sessions."), [FILTERS[2], FILTERS[4], _limit(100)])},
        "/api/v1/ips": {"get": _op(
            "Addresses, most recently seen first; starred=true gives the watch list.",
            _json("Addresses", "Addresses."),
            [_param("starred", {"type": "string", "enum": ["true", "false"]},
                    "Only starred (true) or only not starred (false)."), _limit(100)])},
        "/api/v1/ips/{ip}": {
            "get": _op("Everything known about one address, with links out.",
                       _json("Story", "The address's story."), [ip_path],
                       errors=("400", "401", "403", "404", "503")),
            "put": _op("Star an address or write a note (the watch list).",
                       _json("Watch", "The new watch-list state."), [ip_path],
                       errors=("400", "401", "403", "404", "413", "503"), tag="watch",
                       requestBody={"required": True, "content": {
                           "application/json": {"schema": _ref("WatchChange")}}}),
            "delete": _op("Take an address off the watch list.",
                          _json("Watch", "The new watch-list state."), [ip_path],
                          errors=("400", "401", "403", "404", "503"), tag="watch"),
        },
        "/api/v1/sensors": {"get": _op(
            "Every sensor: last contact, events per second, lag.",
            _json("Sensors", "Sensors by name."), errors=("401", "403", "503"))},
        "/api/v1/asn-traffic": {"get": _op(
            "Traffic per remote AS (or network), from packet capture; whole hours.",
            _json("AsnTraffic", "Totals, largest first."),
            [FILTERS[0], FILTERS[1], FILTERS[2],
             _param("direction", {"type": "string", "enum": ["outbound", "inbound", "both"],
                                  "default": "outbound"}, "Which traffic."),
             _param("by", {"type": "string", "enum": ["asn", "network"], "default": "asn"},
                    "Totals per AS or per announced network."),
             _param("private", {"type": "string", "enum": ["true", "false"],
                                "default": "false"},
                    "Include private and reserved remote addresses."),
             _limit(20)], errors=("400", "401", "403", "404", "503"))},
        "/api/v1/info": {"get": _op(
            "About this server: version, privacy mode, map tiles.",
            _json("Info", "Server facts."), errors=("401", "403", "503"))},
        "/api/v1/health": {"get": _op("Whether the server runs.", _json("Health", "Running."),
                                      errors=())},
        "/api/v1/ingest": {"post": _op(
            "Store a batch of events from a remote sensor (idempotent on event id).",
            _json("IngestResult", "The batch is stored."),
            [_param("Content-Encoding", {"type": "string", "enum": ["gzip", "identity"]},
                    "gzip to send the body compressed.", where="header")],
            errors=("400", "401", "403", "413", "415", "503"), tag="ingest",
            security=[{"bearer": []}],
            requestBody={"required": True, "content": {
                "application/x-ndjson": {"schema": {"type": "string"},
                                         "description": "One event per line."},
                "application/json": {"schema": {"type": "array", "items": _ref("Event")}},
            }})},
        "/api/v1/stream": {"get": _op(
            "Server-Sent Events of new events with the filters of /events; resumable "
            "with Last-Event-ID.",
            {"description": "An endless stream: `data:` is one Event as JSON, `id:` its "
                            "place; `event: reset` means reload.",
             "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            [*FILTERS, _param("Last-Event-ID", {"type": "string", "maxLength": 64},
                              "The id of the last message received.", where="header")],
            errors=("400", "401", "403"))},
        "/metrics": {"get": {
            "summary": "Prometheus metrics.", "tags": ["metrics"],
            "responses": {
                "200": {"description": "The text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": _ERRORS["401"], "403": _ERRORS["403"], "503": _ERRORS["503"]}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portolan API",
            "version": __version__,
            "description": "Who connects to your services, from where, and what they do. "
                           "Reads are open to loopback clients unless the server requires "
                           "a read token; ingest needs a token of scope `ingest`.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
