"""Events as JSON lines in other tools' shapes: Spip's records and Elastic Common Schema.

``--format spip`` writes what the Spip agent wrote, field for field (``timestamp`` in
Unix seconds, ``payload`` as lossy UTF-8, ``payload_hex``, ``source_ip``, ``source_port``,
``destination_ip``, ``destination_port``, ``session_id`` as a UUID), so that a pipeline
built for Spip (Filebeat into an ``spip-agent-logs-*`` index) keeps working. Spip wrote one
record per payload; so does this shape, plus one record with an empty payload for each
connection that sent nothing (which Spip lost), written when it closes. Other events are
left out.

``--format ecs`` writes one Elastic Common Schema document per event: ``@timestamp``,
``event.*``, ``source.*`` (with ``geo`` and ``as``), ``destination.*``, ``network.*``,
``tls.*``, ``http.*``, ``url.*``, ``user_agent.*``, and what ECS has no field for under
``portolan.*``. Where Spip-Go (Spip's successor) chose names outside ECS, the same ones are
used (``tls.client.hash.ja4``, ``ssh.client.hash.hassh``, ``event.original_payload_hex``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from portolan.event import Event
from portolan.sinks.jsonl import Shape


def spip_record(event: Event) -> dict[str, Any] | None:
    """The Spip record for a payload or datagram event, or for the close of a connection
    that sent nothing; None for the other events."""
    if event.action in ("payload", "datagram"):
        data = bytes(event.payload or b"")
    elif event.action == "disconnect" and event.bytes_in == 0:
        data = b""
    else:
        return None
    session = event.session or event.id
    try:
        session_id = str(uuid.UUID(hex=session))
    except ValueError:
        session_id = session
    return {
        "timestamp": int(event.ts.timestamp()),
        "payload": data.decode("utf-8", "replace"),
        "payload_hex": data.hex(),
        "source_ip": event.src_ip,
        "source_port": event.src_port,
        "destination_ip": event.dst_ip,
        "destination_port": event.dst_port,
        "session_id": session_id,
    }


def _rfc3339(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    if value is None or value == [] or value == "":
        return
    *parents, last = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


_EVENT_TYPES = {"connect": ["connection", "start"], "disconnect": ["connection", "end"]}

#: attrs key -> ECS (or Spip-Go) field.
_ATTR_FIELDS = {
    "tls_sni": "tls.client.server_name",
    "ja3": "tls.client.ja3",
    "ja4": "tls.client.hash.ja4",
    "tls_alpn": "tls.alpn",
    "tls_versions": "tls.client.supported_protocols",
    "method": "http.request.method",
    "path": "url.path",
    "uri": "url.original",
    "host": "url.domain",
    "user_agent": "user_agent.original",
    "hassh": "ssh.client.hash.hassh",
    "ssh_banner": "ssh.client.banner",
}


def ecs_document(event: Event) -> dict[str, Any]:
    """One ECS document for any event."""
    doc: dict[str, Any] = {"@timestamp": _rfc3339(event.ts)}
    _put(doc, "event.id", event.id)
    _put(doc, "event.kind", "event")
    _put(doc, "event.category", ["network"])
    _put(doc, "event.type", _EVENT_TYPES.get(event.action, ["info"]))
    _put(doc, "event.action", event.action)
    _put(doc, "event.dataset", f"portolan.{event.source.split(':', 1)[0]}" if event.source
         else None)
    if event.duration is not None:
        _put(doc, "event.duration", int(event.duration * 1e9))
    if event.payload is not None:
        _put(doc, "event.original_payload_hex", bytes(event.payload).hex())
    _put(doc, "observer.hostname", event.sensor)
    _put(doc, "host.name", event.sensor)
    _put(doc, "source.ip", event.src_ip)
    _put(doc, "source.port", event.src_port)
    _put(doc, "source.bytes", event.bytes_in)
    _put(doc, "source.geo.country_iso_code", event.country)
    _put(doc, "source.geo.country_name", event.country_name)
    _put(doc, "source.geo.city_name", event.city)
    if event.lat is not None and event.lon is not None:
        _put(doc, "source.geo.location", {"lat": event.lat, "lon": event.lon})
    _put(doc, "source.as.number", event.asn)
    _put(doc, "source.as.organization.name", event.as_org)
    _put(doc, "destination.ip", event.dst_ip)
    _put(doc, "destination.port", event.dst_port)
    _put(doc, "destination.bytes", event.bytes_out)
    _put(doc, "network.transport", event.proto)
    _put(doc, "network.protocol", event.service)
    _put(doc, "network.direction", event.direction)
    _put(doc, "network.packets", event.packets)
    _put(doc, "user.name", event.user)
    attrs = dict(event.attrs)
    version = attrs.pop("http_version", None)
    if isinstance(version, str):
        _put(doc, "http.version", version.removeprefix("HTTP/"))
    for key, path in _ATTR_FIELDS.items():
        if key in attrs:
            _put(doc, path, attrs.pop(key))
    _put(doc, "portolan.source", event.source)
    _put(doc, "portolan.session", event.session)
    if attrs:
        doc.setdefault("portolan", {})["attrs"] = attrs
    return doc


#: Shapes by the name ``--format`` takes.
SHAPES: dict[str, Shape | None] = {
    "portolan": None,
    "spip": spip_record,
    "ecs": ecs_document,
}
