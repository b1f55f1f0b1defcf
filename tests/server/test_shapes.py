"""The API's shapes encode to the JSON the document promises."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from portolan.server import shapes


def test_times_are_rfc3339_utc_and_nulls_are_kept() -> None:
    point = shapes.Point(t=dt.datetime(2026, 11, 23, 5, tzinfo=dt.UTC), count=3)
    assert msgspec.json.encode(point) == b'{"t":"2026-11-23T05:00:00Z","count":3}'
    item = shapes.CountItem(key=None, count=1)
    assert msgspec.json.decode(msgspec.json.encode(item)) == {"key": None, "label": None,
                                                              "count": 1}


def test_watch_change_refuses_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="colour"):
        msgspec.json.decode(b'{"starred": true, "colour": "red"}', type=shapes.WatchChange)
