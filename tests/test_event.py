"""The Event schema and its JSON codec."""

from __future__ import annotations

import datetime as dt
import gc

import pytest

from portolan.event import (
    ATTRS_MAX_BYTES,
    Event,
    EventError,
    Payload,
    clip,
    decode,
    decode_lines,
    decode_many,
    encode,
    encode_lines,
    make_id,
)

TS = dt.datetime(2026, 11, 23, 5, 18, 0, 123456, tzinfo=dt.UTC)


def test_round_trip_and_wire_names() -> None:
    e = Event(id="x", ts=TS, service="ssh", action="connect", src_ip="2001:db8::1",
              src_port=22, payload=b"\x00\x01hi", attrs={"k": [1, "v"]})
    data = encode(e)
    assert b'"payload_hex":"00016869"' in data
    assert b'"ts":"2026-11-23T05:18:00.123456Z"' in data
    back = decode(data)
    assert back == e
    assert isinstance(back.payload, Payload)


def test_events_are_left_to_reference_counting() -> None:
    """Not tracked by the cyclic garbage collector, made here or decoded, however full
    their attrs: a collection never looks at the events of a pipeline."""
    made = Event(ts=TS, attrs={"k": [1, {"v": "w"}]})
    assert not gc.is_tracked(made)
    assert not any(map(gc.is_tracked, decode_many(b"[" + encode(made) + b"]")))


def test_plain_bytes_become_payload() -> None:
    e = Event(ts=TS, payload=b"abc")
    assert type(e.payload) is Payload
    assert b"616263" in encode(e)


def test_naive_time_is_refused() -> None:
    with pytest.raises(EventError, match="time zone"):
        Event(ts=dt.datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ('"src_port":70000', "src_port"),
        ('"dst_port":-1', "dst_port"),
        ('"src_port":"22"', "src_port"),
        ('"user":"' + "a" * 2000 + '"', "user"),
        ('"direction":"sideways"', "direction"),
        ('"payload_hex":"zz"', "payload_hex"),
        ('"lat":91', "lat"),
        ('"ts":"yesterday"', "ts"),
    ],
)
def test_validation_names_the_field(patch: str, field: str) -> None:
    line = '{"ts":"2026-11-23T05:18:00Z",' + patch + "}"
    with pytest.raises(EventError) as info:
        decode(line)
    assert str(info.value).startswith(field)


def test_attrs_size_is_bounded() -> None:
    big = '{"ts":"2026-11-23T05:18:00Z","attrs":{"a":"' + "x" * ATTRS_MAX_BYTES + '"}}'
    with pytest.raises(EventError, match="attrs"):
        decode(big)


def test_other_offsets_become_utc() -> None:
    e = decode('{"ts":"2026-11-23T07:18:00+02:00"}')
    assert e.ts == dt.datetime(2026, 11, 23, 5, 18, tzinfo=dt.UTC)
    assert e.ts.utcoffset() == dt.timedelta(0)


def test_decode_lines_reports_line_number() -> None:
    data = encode_lines([Event(ts=TS), Event(ts=TS)]) + b"\n" + b'{"ts": 5}\n'
    with pytest.raises(EventError, match=r"^line 4: ts"):
        list(decode_lines(data))


def test_decode_many() -> None:
    assert len(decode_many(b'[{"ts":"2026-11-23T05:18:00Z"},{"ts":"2026-11-23T05:19:00Z"}]')) == 2
    with pytest.raises(EventError):
        decode_many(b"[1]")


def test_make_id_is_stable_and_distinct() -> None:
    assert make_id("s", "fp", 10, 0) == make_id("s", "fp", 10, 0)
    assert make_id("s", "fp", 10, 0) != make_id("s", "fp", 10, 1)
    assert make_id("s", "fp", "10", 0) == make_id("s", "fp", 10, 0)
    assert len(make_id("x")) == 32


def test_clip() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("abcdef", 4) == "abc…"
    assert clip(None) is None


def test_every_field_is_documented() -> None:
    """docs/events.md lists every field of the schema (and no field that does not exist)."""
    import re
    from pathlib import Path

    from portolan.event import FIELDS

    text = (Path(__file__).resolve().parent.parent / "docs" / "events.md").read_text()
    listed = re.findall(r"^\| `([a-z_]+)` \|", text, re.M)
    expected = ["payload_hex" if f == "payload" else f for f in FIELDS]
    assert listed == expected
