"""``jsonl``: JSON lines, from Portolan itself and from other sensors.

Each line is one JSON object; what it is comes from its keys:

- a Portolan event (the ``--json`` output, the wire format): decoded and validated as is;
- a record of the TCP catch-all sensor Spip (``source_ip``, ``destination_port``,
  ``payload_hex``, ``session_id``...): a ``probe`` of service ``tcp`` with the payload;
- Zeek ``conn.log`` in JSON (``id.orig_h``, ``conn_state``...): a ``flow`` with bytes,
  packets and duration; Zeek ``http.log`` (``method``, ``uri``, ``status_code``): a
  ``request`` of service ``http``;
- Suricata EVE ``flow``, ``http`` and ``alert`` records (``event_type``): a ``flow``, a
  ``request``, an ``alert``; other EVE types (dns, tls, stats...) are recognised and
  skipped.

Other sensors' identifiers (Zeek ``uid``, Suricata ``flow_id``, Spip ``session_id``) go
to ``attrs``. Anything else is unmatched, with the reason counted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from portolan.event import PAYLOAD_MAX, Event, EventError, Payload, clip, decode
from portolan.formats.base import FORMATS, FormatSpec, LineParser, ParseContext

_TEXT = 1024
_json = msgspec.json.Decoder()


class JsonLinesParser(LineParser):
    """One event per line; see the module docstring."""

    def parse(self, line: str) -> list[Event] | None:
        if not line.strip():
            return []
        try:
            obj = _json.decode(line)
        except msgspec.DecodeError:
            obj = None
        if not isinstance(obj, dict):
            return self._portolan(line)  # says why, as for any invalid event
        if "event_type" in obj:
            return self._other("suricata", _suricata, obj)
        if "id.orig_h" in obj:
            return self._other("zeek", _zeek, obj)
        if "source_ip" in obj and "destination_port" in obj:
            return self._other("spip", _spip, obj)
        return self._portolan(line)

    def _portolan(self, line: str) -> list[Event] | None:
        try:
            event = decode(line)
        except EventError as exc:
            self.ctx.counters[f"invalid event: {str(exc).partition(':')[0]}"] += 1
            return None
        if not event.sensor:
            event.sensor = self.ctx.sensor
        if not event.source:
            event.source = self.ctx.source
        return [event]

    def _other(self, kind: str, convert: Any, obj: dict[str, Any]) -> list[Event] | None:
        try:
            fields = convert(obj)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            self.ctx.counters[f"jsonl: bad {kind} record: {type(exc).__name__}"] += 1
            return None
        if fields is None:
            return []
        fields.setdefault("attrs", {})["sensor_type"] = kind
        return [Event(sensor=self.ctx.sensor, source=self.ctx.source, **fields)]


# -- other sensors' records --------------------------------------------------------------


def _time(value: Any) -> dt.datetime:
    if isinstance(value, bool):
        raise TypeError("a time cannot be true or false")
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        text = value.replace("Z", "+00:00")
        if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # Suricata: +0000
            text = text[:-2] + ":" + text[-2:]
        parsed = dt.datetime.fromisoformat(text)
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(
            dt.UTC)
    raise TypeError(f"not a time: {type(value).__name__}")


def _ip(value: Any) -> str | None:
    return str(value)[:64] if value not in (None, "", "-") else None


def _port(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return value
    return None


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _text(value: Any, limit: int = _TEXT) -> str | None:
    if value is None or value == "-":
        return None
    return clip(str(value), limit)


def _sum(*values: Any) -> int | None:
    counts = [c for c in map(_count, values) if c is not None]
    return sum(counts) if counts else None


def _http_attrs(method: Any, host: Any, target: Any, status: Any, agent: Any,
                referrer: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if method:
        attrs["method"] = _text(method, 32)
    if host:
        attrs["host"] = _text(host, 256)
    if isinstance(target, str):
        path, sep, query = target.partition("?")
        attrs["path"] = clip(path, _TEXT)
        if sep:
            attrs["query"] = clip(query, _TEXT)
    if _count(status) is not None:
        attrs["status"] = status
    for key, value in (("user_agent", agent), ("referrer", referrer)):
        if value not in (None, "", "-"):
            attrs[key] = _text(value)
    return attrs


def _spip(r: dict[str, Any]) -> dict[str, Any]:
    """The seed TCP sensor: one record per chunk a peer sent."""
    payload_hex = r.get("payload_hex")
    payload = None
    if isinstance(payload_hex, str) and payload_hex:
        payload = Payload(bytes.fromhex(payload_hex[: 2 * PAYLOAD_MAX]))
    attrs: dict[str, Any] = {}
    if r.get("session_id"):
        attrs["session_id"] = _text(r["session_id"], 64)
    return {
        "ts": _time(r["timestamp"]), "service": "tcp", "action": "probe", "proto": "tcp",
        "src_ip": _ip(r["source_ip"]), "src_port": _port(r.get("source_port")),
        "dst_ip": _ip(r.get("destination_ip")), "dst_port": _port(r.get("destination_port")),
        "payload": payload, "bytes_in": len(payload) if payload is not None else None,
        "attrs": attrs,
    }


def _zeek(r: dict[str, Any]) -> dict[str, Any] | None:
    """Zeek conn.log and http.log records (JSON writer)."""
    base: dict[str, Any] = {
        "ts": _time(r["ts"]), "proto": "tcp",
        "src_ip": _ip(r["id.orig_h"]), "src_port": _port(r.get("id.orig_p")),
        "dst_ip": _ip(r.get("id.resp_h")), "dst_port": _port(r.get("id.resp_p")),
    }
    attrs: dict[str, Any] = {"uid": _text(r.get("uid"), 64)}
    if "method" in r or "status_code" in r or "uri" in r:
        attrs.update(_http_attrs(r.get("method"), r.get("host"), r.get("uri"),
                                 r.get("status_code"), r.get("user_agent"), r.get("referrer")))
        return {**base, "service": "http", "action": "request", "attrs": attrs,
                "bytes_in": _count(r.get("request_body_len")),
                "bytes_out": _count(r.get("response_body_len"))}
    if "conn_state" not in r and "proto" not in r:
        return None  # another Zeek log (dns, ssl...): recognised, not ours to report
    proto = str(r.get("proto") or "tcp")[:16]
    attrs["conn_state"] = _text(r.get("conn_state"), 16)
    if r.get("history"):
        attrs["history"] = _text(r["history"], 64)
    duration = r.get("duration")
    outbound = r.get("local_orig") is True and r.get("local_resp") is not True
    return {
        **base, "proto": proto, "service": _text(r.get("service"), 64) or proto,
        "action": "flow", "direction": "outbound" if outbound else "inbound",
        "duration": float(duration) if isinstance(duration, (int, float)) and duration >= 0
        else None,
        "bytes_in": _count(r.get("orig_bytes")), "bytes_out": _count(r.get("resp_bytes")),
        "packets": _sum(r.get("orig_pkts"), r.get("resp_pkts")),
        "attrs": {k: v for k, v in attrs.items() if v is not None},
    }


def _suricata(r: dict[str, Any]) -> dict[str, Any] | None:
    """Suricata EVE flow, http and alert records; other types are skipped."""
    kind = r["event_type"]
    if kind not in ("flow", "http", "alert"):
        return None
    proto = str(r.get("proto") or "").lower()[:16] or None
    base: dict[str, Any] = {
        "ts": _time(r["timestamp"]), "proto": proto,
        "src_ip": _ip(r.get("src_ip")), "src_port": _port(r.get("src_port")),
        "dst_ip": _ip(r.get("dest_ip")), "dst_port": _port(r.get("dest_port")),
    }
    attrs: dict[str, Any] = {}
    if r.get("flow_id") is not None:
        attrs["flow_id"] = _text(r["flow_id"], 32)
    app = _text(r.get("app_proto"), 32)
    if kind == "http":
        h = r.get("http") or {}
        attrs.update(_http_attrs(h.get("http_method"), h.get("hostname"), h.get("url"),
                                 h.get("status"), h.get("http_user_agent"),
                                 h.get("http_refer")))
        return {**base, "service": "http", "action": "request", "attrs": attrs,
                "bytes_out": _count(h.get("length"))}
    if kind == "alert":
        a = r.get("alert") or {}
        attrs.update({"signature": _text(a.get("signature"), 512),
                      "signature_id": _count(a.get("signature_id")),
                      "category": _text(a.get("category"), 256),
                      "severity": _count(a.get("severity")),
                      "alert_action": _text(a.get("action"), 32)})
        return {**base, "service": app or proto or "ip", "action": "alert",
                "attrs": {k: v for k, v in attrs.items() if v is not None}}
    f = r.get("flow") or {}
    duration = None
    if f.get("start") and f.get("end"):
        duration = max(0.0, (_time(f["end"]) - _time(f["start"])).total_seconds())
    if f.get("state"):
        attrs["state"] = _text(f["state"], 32)
    return {
        **base, "service": app or proto or "ip", "action": "flow", "duration": duration,
        "bytes_in": _count(f.get("bytes_toserver")), "bytes_out": _count(f.get("bytes_toclient")),
        "packets": _sum(f.get("pkts_toserver"), f.get("pkts_toclient")), "attrs": attrs,
    }


def _make(ctx: ParseContext) -> JsonLinesParser:
    return JsonLinesParser(ctx)


FORMATS.add(
    "jsonl",
    FormatSpec("jsonl", "JSON lines: Portolan events (the --json output), Spip, Zeek conn/http, "
                        "Suricata EVE flow/http/alert", make_parser=_make),
)
