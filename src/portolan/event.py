"""The one schema: :class:`Event`, and its JSON codec.

Every source produces Events, every sink consumes them, the store keeps them as rows,
the API and the sensor-to-collector wire carry them as JSON. The type is declared once,
here. Fields are flat so that each maps to a column.

JSON conventions: times are RFC 3339 strings in UTC (``2026-11-23T05:18:00.123456Z``;
the fraction is written when it is not zero), ``payload`` travels as hex under the key
``payload_hex``, absent values are ``null``.

Events built in Python are trusted to have the right types (parsers clip attacker text
with :func:`clip`); events that arrive as JSON are validated by :func:`decode` /
:func:`decode_lines`, which reject bad types, out-of-range ports and oversized fields with
a message that names the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Final, Literal

import msgspec

__all__ = [
    "ATTRS_MAX_BYTES",
    "Event",
    "EventError",
    "Payload",
    "clip",
    "decode",
    "decode_lines",
    "decode_many",
    "encode",
    "encode_lines",
    "make_id",
    "to_builtins",
]

UTC: Final = dt.UTC

#: Longest user name, HTTP path, client name... kept in an event, in characters.
TEXT_MAX: Final = 1024
#: Longest payload kept in an event, in bytes.
PAYLOAD_MAX: Final = 65536
#: Largest ``attrs`` object accepted on the wire, in bytes of JSON.
ATTRS_MAX_BYTES: Final = 16384

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(max_length=256)]
Short = Annotated[str, msgspec.Meta(max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=TEXT_MAX)]


class Payload(bytes):
    """Bytes that a peer sent; encoded as hex in JSON (never raw, never base64)."""

    __slots__ = ()


class EventError(ValueError):
    """An event (usually from JSON) that does not fit the schema; says which field."""


class Event(msgspec.Struct, kw_only=True, omit_defaults=False, repr_omit_defaults=True,
            gc=False):
    """One thing that happened: a connection, a login attempt, a request, a flow.

    Events are not tracked by Python's cyclic garbage collector (``gc=False``): a busy
    pipeline holds a hundred thousand of them on their way to the store, and every
    collection would look at each again. An event cannot be part of a reference cycle:
    its fields hold text, numbers, times and ``attrs``, which is JSON (what the store and
    the wire carry), none of which can point back to it."""

    id: Short = ""
    """Unique and stable. Derived from the source position where there is one (file
    fingerprint + offset, pcap + frame number; see :func:`make_id`), so that a replay or a
    retry never stores the same event twice."""

    ts: dt.datetime
    """When it happened, in UTC, taken from the source (not from when it was read)."""

    sensor: Name = ""
    """Which sensor saw it (default: the host name)."""

    source: Name = ""
    """Which input of that sensor: ``auth.log``, ``listener:2222``, ``capture:eth0``..."""

    service: Short = ""
    """What was being reached: ``ssh``, ``http``, ``spyserver``, ``tcp``, ``udp``..."""

    action: Short = ""
    """``connect``, ``disconnect``, ``auth_failure``, ``auth_success``, ``invalid_user``,
    ``request``, ``flow``, ``probe``..."""

    direction: Literal["inbound", "outbound"] = "inbound"
    """``inbound`` (someone reached us) or ``outbound`` (we reached someone)."""

    proto: Short | None = None
    """Transport protocol: ``tcp``, ``udp``, ``icmp``."""

    src_ip: Short | None = None
    """The remote peer's address for inbound events (the initiator's in general). Kept as
    text: an address that does not parse is stored as written, and counted."""

    src_port: Port | None = None
    """Source port."""

    dst_ip: Short | None = None
    """Destination address."""

    dst_port: Port | None = None
    """Destination port."""

    user: Text | None = None
    """A login name, where one was given. Attacker-controlled text."""

    session: Name | None = None
    """Ties a ``connect`` to its ``disconnect`` (and what happened in between)."""

    duration: Annotated[float, msgspec.Meta(ge=0)] | None = None
    """Seconds, for closes and flows."""

    bytes_in: Count | None = None
    """Bytes received from the peer."""

    bytes_out: Count | None = None
    """Bytes sent to the peer."""

    packets: Count | None = None
    """Packets, for flows."""

    payload: Payload | None = msgspec.field(
        default=None, name="payload_hex"
    )
    """The first bytes the peer sent (bounded), for listener and capture. Hex in JSON."""

    attrs: dict[str, Any] = msgspec.field(default_factory=dict)
    """Everything else, per service: HTTP method/host/path/status/user agent, TLS SNI and
    fingerprint, SDR client software and OS, spyserver instance..."""

    country: Annotated[str, msgspec.Meta(max_length=2)] | None = None
    """ISO 3166 two-letter country code (enrichment)."""

    country_name: Name | None = None
    """Country name in English (enrichment)."""

    city: Name | None = None
    """City name (enrichment, when a city database is configured)."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    """Latitude (enrichment)."""

    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    """Longitude (enrichment)."""

    asn: Annotated[int, msgspec.Meta(ge=0, le=4294967295)] | None = None
    """Autonomous system number (enrichment)."""

    as_org: Name | None = None
    """Organisation of that AS (enrichment)."""

    network: Short | None = None
    """The announced network that contains the address, as CIDR (enrichment)."""

    geo_db: Name | None = None
    """Which database (and build) enriched this event, so history can be re-enriched."""

    received: dt.datetime | None = None
    """When the collector received it (fleet); beside ``ts``, which is the sensor's time."""

    def __post_init__(self) -> None:
        payload = self.payload
        if payload is not None and type(payload) is not Payload:
            self.payload = Payload(payload)
        if self.ts.tzinfo is None:
            raise EventError("ts: a time zone is required (times are UTC)")


#: Column names in declaration order (the store's row layout).
FIELDS: Final[tuple[str, ...]] = Event.__struct_fields__


def clip(text: str | None, limit: int = TEXT_MAX) -> str | None:
    """Bound attacker-controlled text to ``limit`` characters (marking the cut with …)."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def make_id(*parts: object) -> str:
    """A stable 32-hex-digit event id from the parts that pin an event down.

    Sources pass what identifies the position an event came from, for example
    ``(sensor, file fingerprint, offset, index)``; the same position always gives the same
    id, so storing a re-read event is a no-op.
    """
    key = "\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def _enc_hook(obj: object) -> object:
    if isinstance(obj, Payload):
        return obj.hex()
    raise TypeError(f"cannot encode {type(obj).__name__} in an event")


def _dec_hook(typ: type, obj: object) -> object:
    if typ is Payload and isinstance(obj, str):
        if len(obj) > 2 * PAYLOAD_MAX:
            raise ValueError(f"longer than {PAYLOAD_MAX} bytes")
        return Payload(bytes.fromhex(obj))
    raise NotImplementedError


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.json.Decoder(Event, dec_hook=_dec_hook)
_list_decoder = msgspec.json.Decoder(list[Event], dec_hook=_dec_hook)


def encode(event: Event) -> bytes:
    """One event as compact JSON."""
    return _encoder.encode(event)


def encode_lines(events: Iterable[Event]) -> bytes:
    """Events as JSON lines (one per line, each ending in a newline)."""
    buf = bytearray()
    for ev in events:
        _encoder.encode_into(ev, buf, -1)
        buf += b"\n"
    return bytes(buf)


def _check(event: Event) -> Event:
    if event.ts.tzinfo is None:
        raise EventError("ts: a time zone is required (times are UTC)")
    if event.attrs and len(_encoder.encode(event.attrs)) > ATTRS_MAX_BYTES:
        raise EventError(f"attrs: larger than {ATTRS_MAX_BYTES} bytes of JSON")
    if event.ts.utcoffset():
        event.ts = event.ts.astimezone(UTC)
    return event


def _error(exc: Exception) -> EventError:
    msg = str(exc)
    # msgspec says "... - at `$.src_port`"; put the field first, the way a user reads it.
    if " - at `$" in msg:
        text, _, where = msg.rpartition(" - at `$")
        field = where.rstrip("`").lstrip(".")
        return EventError(f"{field or 'event'}: {text}")
    return EventError(msg)


def decode(data: bytes | str) -> Event:
    """One event from JSON, validated. Raises :class:`EventError` naming the bad field."""
    try:
        return _check(_decoder.decode(data))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _error(exc) from None


def decode_many(data: bytes | str) -> list[Event]:
    """A JSON array of events, validated."""
    try:
        return [_check(ev) for ev in _list_decoder.decode(data)]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _error(exc) from None


def decode_lines(data: bytes) -> Iterator[Event]:
    """Events from JSON lines; blank lines are skipped. Raises :class:`EventError` with
    the line number of the first bad line."""
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield decode(line)
        except EventError as exc:
            raise EventError(f"line {number}: {exc}") from None


def to_builtins(event: Event) -> dict[str, Any]:
    """The event as a plain dict with JSON-ready values (what :func:`encode` would write)."""
    out: dict[str, Any] = msgspec.to_builtins(event, enc_hook=_enc_hook)
    return out
