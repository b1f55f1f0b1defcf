"""Times as users write them: ``15m``, ``2h``, ``7d`` ago, or an RFC 3339 / ISO date."""

from __future__ import annotations

import datetime as dt
import re

_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """``30m`` (ago), ``2026-11-23``, ``2026-11-23T05:00:00Z``... as an aware UTC time."""
    match = _AGO.match(text)
    if match:
        return now - dt.timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; use an age like 30m, 2h, 7d or a date like 2026-11-23"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def rfc3339(ts: dt.datetime | None) -> str | None:
    """The JSON form of a time: UTC with microseconds, ``Z``."""
    if ts is None:
        return None
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
