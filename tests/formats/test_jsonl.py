"""The jsonl format: Portolan's own events and other sensors' records."""

from __future__ import annotations

import datetime as dt

from portolan.event import Event, encode
from portolan.formats.base import ParseContext
from portolan.formats.jsonl import JsonLinesParser
from tests.formats import samples


def test_samples() -> None:
    samples.run(samples.SAMPLES / "jsonl.log", "jsonl")


def test_own_events_round_trip_exactly() -> None:
    original = Event(id="x1", ts=dt.datetime(2026, 11, 23, 5, tzinfo=dt.UTC), sensor="s",
                     source="a", service="ssh", action="auth_failure", src_ip="203.0.113.1",
                     payload=b"\x00\xff", attrs={"k": [1, 2]})
    [back] = JsonLinesParser(ParseContext()).parse(encode(original).decode()) or []
    assert back == original


def test_reasons_are_counted() -> None:
    ctx = ParseContext()
    parser = JsonLinesParser(ctx)
    assert parser.parse('{"id": "e", "ts": "2026-11-23T05:00:00Z", "src_port": -1}') is None
    assert parser.parse('{"event_type": "flow", "timestamp": "yesterday"}') is None
    assert ctx.counters["invalid event: src_port"] == 1
    assert ctx.counters["jsonl: bad suricata record: ValueError"] == 1


def test_spip_payload_is_kept_as_bytes() -> None:
    line = ('{"timestamp":1,"payload":"x","payload_hex":"1b5b324a00ff","source_ip":"192.0.2.1",'
            '"source_port":1,"destination_ip":"192.0.2.2","destination_port":23,'
            '"session_id":"s"}')
    [event] = JsonLinesParser(ParseContext()).parse(line) or []
    assert event.payload == b"\x1b[2J\x00\xff"
    assert encode(event).count(b"1b5b324a00ff") == 1
