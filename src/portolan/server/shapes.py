"""The JSON shapes of the API, declared once: the server encodes these, and the OpenAPI
document describes them (generated from the same classes).

Times are RFC 3339 strings in UTC; absent values are ``null``; addresses are shown as
the privacy mode says (as they are, truncated to their network, or a keyed hash).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from portolan.event import Event


class Problem(msgspec.Struct, kw_only=True):
    """An error: what is wrong, in one line."""

    error: str
    """What is wrong and, where it helps, what is allowed."""
    line: int | None = None
    """For ingest: the number of the offending line (or array item, from 1)."""
    text: str | None = None
    """For ingest: the start of the offending line, as received."""


class EventPage(msgspec.Struct, kw_only=True):
    """Events, newest first."""

    events: list[Event]
    next: str | None
    """Pass as ``cursor`` to get the following (older) page; null on the last page."""


class CountItem(msgspec.Struct, kw_only=True):
    """One item of a count and how many events it had."""

    key: str | int | None
    """The country code, ASN, address, user name...; null for events without one."""
    label: str | None = None
    """A name for the key where there is one: country name, AS organisation, the city's
    country."""
    count: int


class Counts(msgspec.Struct, kw_only=True):
    """The most frequent items of a field, the total of the others, and the total."""

    field: str
    items: list[CountItem]
    other: int
    """Events whose item is not among ``items``."""
    total: int


class Point(msgspec.Struct, kw_only=True):
    """One bucket of a time series."""

    t: dt.datetime
    """Start of the bucket."""
    count: int


class Series(msgspec.Struct, kw_only=True):
    """Counts per bucket; every bucket of the range is present, zero or not."""

    step: int
    """Width of a bucket, in seconds."""
    points: list[Point]
    total: int


class Session(msgspec.Struct, kw_only=True):
    """A connect paired with its disconnect; ``end`` is null while it is open."""

    session: str
    sensor: str
    source: str
    service: str
    proto: str | None
    src_ip: str | None
    src_port: int | None
    dst_ip: str | None
    dst_port: int | None
    user: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    duration: float | None
    bytes_in: int | None
    bytes_out: int | None
    attrs: dict[str, Any]
    country: str | None
    city: str | None
    lat: float | None
    lon: float | None
    asn: int | None
    as_org: str | None


class Sessions(msgspec.Struct, kw_only=True):
    """Sessions, newest first."""

    sessions: list[Session]


class Watch(msgspec.Struct, kw_only=True):
    """The watch-list state of an address."""

    ip: str
    starred: bool
    note: str | None


class WatchChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A change to the watch list: fields left out stay as they are."""

    starred: bool | None = None
    note: str | None = msgspec.field(default=None)
    """Free text, at most 2000 characters; an empty string clears it."""


class Address(msgspec.Struct, kw_only=True):
    """An address as the ``ips`` table keeps it."""

    ip: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    events: int
    failures: int
    """Failed logins (``auth_failure``, ``invalid_user``)."""
    successes: int
    """Successful logins."""
    country: str | None
    asn: int | None
    as_org: str | None
    starred: bool
    note: str | None


class Addresses(msgspec.Struct, kw_only=True):
    """Addresses, most recently seen first."""

    ips: list[Address]


class Story(msgspec.Struct, kw_only=True):
    """Everything known about one address."""

    address: Address
    sensors: list[CountItem]
    """Every sensor that saw it."""
    services: list[CountItem]
    actions: list[CountItem]
    users: list[CountItem]
    """User names it tried (the 50 most used)."""
    ports: list[CountItem]
    """Destination ports it reached (the 50 most used)."""
    payload_kinds: list[CountItem]
    """What its first payloads looked like (``tls``, ``ssh``, ``http``, ``text``,
    ``binary``), from its newest 1000 events with a payload."""
    recent: list[Event]
    """Its newest events."""
    links: dict[str, str]
    """Pages about it elsewhere (Shodan, Censys, AbuseIPDB, whois); empty unless addresses
    are shown in full."""


class Sensor(msgspec.Struct, kw_only=True):
    """A sensor that has reported events."""

    name: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    """Last contact: when events from it were last stored."""
    last_event_ts: dt.datetime | None
    """Time of its newest event."""
    events: int
    events_per_second: float
    """Over the last five minutes."""
    lag_seconds: float | None
    """How far its newest event was behind the time it was stored."""


class Sensors(msgspec.Struct, kw_only=True):
    sensors: list[Sensor]


class IngestResult(msgspec.Struct, kw_only=True):
    """What an ingest request did."""

    received: int
    stored: int
    duplicates: int
    """Events already stored (same id): ingest is idempotent, so retries are safe."""


class Info(msgspec.Struct, kw_only=True):
    """About this server, for clients (the dashboard)."""

    version: str
    privacy: str
    """``full``, ``truncate`` or ``hash``: how addresses are shown."""
    tile_url: str | None
    """Map tile URL template, or null (no tiles)."""
    counts: list[str]
    """Fields that ``/counts/{field}`` accepts."""
    steps: list[int]
    """Bucket widths that ``/series`` accepts, in seconds."""


class AsnTrafficRow(msgspec.Struct, kw_only=True):
    """Traffic with one remote AS (or one of its announced networks)."""

    asn: int
    """0 for addresses no ASN database knows (and for private ones)."""
    as_org: str | None
    network: str | None = None
    """The announced network, when counted ``by=network``."""
    private: bool
    """Private or reserved remote addresses (only with ``private=true``)."""
    bytes: int
    """Both ways."""
    bytes_in: int
    bytes_out: int
    packets: int
    flows: int


class AsnTraffic(msgspec.Struct, kw_only=True):
    """Traffic per remote AS, as the capture sensor counts it, largest first."""

    rows: list[AsnTrafficRow]
