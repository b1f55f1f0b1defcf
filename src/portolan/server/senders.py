"""What a forwarding sensor says about itself when it sends a batch, and where it is kept.

The forwarder (:mod:`portolan.sinks.forward`) sends, with every batch, its name, version,
the depth of its spool and its clock (``X-Portolan-Sensor``, ``-Version``, ``-Spool-Depth``,
``-Sent-At``). The collector keeps them in the sensor's row, with the offset between the
sensor's clock and its own; events from a sensor whose clock is off by more than
:data:`SKEW_LIMIT` seconds are flagged with ``attrs.clock_skew_s`` (their ``ts`` stays the
sensor's; ``received`` is the collector's).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from portolan.event import Event
from portolan.store import Store, schema

#: Seconds of clock difference past which a sensor's events are flagged.
SKEW_LIMIT = 60.0
_VERSION = re.compile(r"^[A-Za-z0-9.+_-]{1,64}$")


@dataclass(frozen=True)
class SenderReport:
    """A sensor's word about itself, checked (it comes from a token holder, not from us)."""

    sensor: str
    version: str | None
    spool_depth: int | None
    clock_offset: float | None
    """Collector's time minus the sensor's, in seconds (network delay included)."""


def read(headers: Mapping[str, str], now: dt.datetime) -> SenderReport | None:
    """The report in a request's headers, or None when it carries none."""
    sensor = headers.get("x-portolan-sensor", "")[:256]
    if not sensor:
        return None
    version = headers.get("x-portolan-version")
    if version is not None and not _VERSION.match(version):
        version = None
    depth_text = headers.get("x-portolan-spool-depth", "")
    depth = int(depth_text) if depth_text.isdigit() and len(depth_text) < 16 else None
    offset = None
    sent = headers.get("x-portolan-sent-at")
    if sent:
        try:
            sent_at = dt.datetime.fromisoformat(sent[:64])
        except ValueError:
            sent_at = None
        if sent_at is not None and sent_at.tzinfo is not None:
            offset = round((now - sent_at).total_seconds(), 3)
    return SenderReport(sensor, version, depth, offset)


def flag_skew(report: SenderReport | None, events: list[Event]) -> None:
    """Mark the events of a sensor whose clock is off."""
    if report is None or report.clock_offset is None or abs(report.clock_offset) <= SKEW_LIMIT:
        return
    skew = round(report.clock_offset, 1)
    for e in events:
        e.attrs["clock_skew_s"] = skew


def record(store: Store, report: SenderReport) -> None:
    """Keep the report in the sensor's row (the row exists once it has stored an event)."""
    s = schema.sensors
    with store.engine.begin() as conn:
        old = conn.execute(sa.select(s.c.attrs).where(s.c.name == report.sensor)).scalar()
        attrs = json.loads(old) if old else {}
        attrs.update({"spool_depth": report.spool_depth, "clock_offset_s": report.clock_offset})
        conn.execute(sa.update(s).where(s.c.name == report.sensor).values(
            version=report.version, attrs=json.dumps(attrs)))
