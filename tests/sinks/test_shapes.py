"""Events in Spip's and ECS's shapes."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import uuid

from portolan.event import Event, Payload, encode_lines
from portolan.sinks.jsonl import JsonLinesSink
from portolan.sinks.shapes import SHAPES, ecs_document, spip_record

TS = dt.datetime(2023, 7, 7, 13, 49, 58, 250000, tzinfo=dt.UTC)
SESSION = "bd30cdc195b049aae8e4e01ece02eae4"


def event(action: str, **fields: object) -> Event:
    base: dict[str, object] = dict(
        id=f"{SESSION}.{action[0]}", ts=TS, sensor="edge-1", source="listener:6881",
        service="tcp", action=action, proto="tcp", src_ip="146.70.1.2", src_port=35882,
        dst_ip="146.190.3.4", dst_port=6881, session=SESSION)
    base.update(fields)
    return Event(**base)  # type: ignore[arg-type]


def test_spip_record_is_field_for_field() -> None:
    record = spip_record(event("payload", payload=Payload(b"\x13BitTorrent protocol\xff")))
    assert record is not None
    assert list(record) == ["timestamp", "payload", "payload_hex", "source_ip",
                            "source_port", "destination_ip", "destination_port",
                            "session_id"]
    assert record["timestamp"] == 1688737798
    assert record["payload"] == "\x13BitTorrent protocol\ufffd"  # lossy, as Spip's was
    assert record["payload_hex"] == "13426974546f7272656e742070726f746f636f6cff"
    assert record["destination_port"] == 6881
    assert uuid.UUID(record["session_id"]).hex == SESSION


def test_spip_silent_connection_at_close_and_nothing_else() -> None:
    assert spip_record(event("connect")) is None
    assert spip_record(event("disconnect", bytes_in=20)) is None  # its payload had a record
    silent = spip_record(event("disconnect", bytes_in=0))
    assert silent is not None and silent["payload"] == "" and silent["payload_hex"] == ""
    udp = spip_record(event("datagram", proto="udp", session=None, id="x" * 32,
                            payload=Payload(b"\x00")))
    assert udp is not None and udp["session_id"] == "x" * 32


def test_ecs_document() -> None:
    doc = ecs_document(event(
        "payload", service="http", payload=Payload(b"GET /"), country="NL",
        country_name="Netherlands", city="Amsterdam", lat=52.37, lon=4.89, asn=9009,
        as_org="M247", attrs={"method": "GET", "path": "/", "uri": "/?a", "host": "x.test",
                              "user_agent": "curl/8", "http_version": "HTTP/1.1",
                              "ja4": "t13d", "tls_sni": "x.test", "protocol": "http",
                              "payload_text": "GET /"}))
    assert doc["@timestamp"] == "2023-07-07T13:49:58.250000Z"
    assert doc["event"]["action"] == "payload" and doc["event"]["type"] == ["info"]
    assert doc["event"]["dataset"] == "portolan.listener"
    assert doc["event"]["original_payload_hex"] == b"GET /".hex()
    assert doc["source"]["geo"] == {"country_iso_code": "NL", "country_name": "Netherlands",
                                    "city_name": "Amsterdam",
                                    "location": {"lat": 52.37, "lon": 4.89}}
    assert doc["source"]["as"] == {"number": 9009, "organization": {"name": "M247"}}
    assert doc["http"] == {"request": {"method": "GET"}, "version": "1.1"}
    assert doc["url"] == {"path": "/", "original": "/?a", "domain": "x.test"}
    assert doc["user_agent"] == {"original": "curl/8"}
    assert doc["tls"]["client"] == {"server_name": "x.test", "hash": {"ja4": "t13d"}}
    assert doc["portolan"]["attrs"] == {"protocol": "http", "payload_text": "GET /"}
    end = ecs_document(event("disconnect", duration=1.5, bytes_in=20, bytes_out=0))
    assert end["event"]["type"] == ["connection", "end"]
    assert end["event"]["duration"] == 1_500_000_000
    assert end["source"]["bytes"] == 20 and end["destination"]["bytes"] == 0
    assert "geo" not in end["source"]


def test_sink_writes_each_shape() -> None:
    events = [event("connect"), event("payload", payload=Payload(b"hi")),
              event("disconnect", bytes_in=2)]
    out = io.BytesIO()
    asyncio.run(JsonLinesSink(out, shape=SHAPES["portolan"]).write(events))
    assert out.getvalue() == encode_lines(events)
    out = io.BytesIO()
    asyncio.run(JsonLinesSink(out, shape=SHAPES["spip"]).write(events))
    assert [json.loads(line)["payload"] for line in out.getvalue().splitlines()] == ["hi"]
    out = io.BytesIO()
    asyncio.run(JsonLinesSink(out, shape=SHAPES["ecs"]).write(events))
    assert len(out.getvalue().splitlines()) == 3
    assert set(SHAPES) == {"portolan", "spip", "ecs"}


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    class Gone(io.BytesIO):
        def write(self, data: object) -> int:
            raise BrokenPipeError

    sink = JsonLinesSink(Gone())
    asyncio.run(sink.write([event("connect")]))
    assert sink.closed_by_reader
