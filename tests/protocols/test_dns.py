"""DNS messages: questions, answers, compression, and hostile messages."""

from __future__ import annotations

import random
import struct

import pytest

from portolan.protocols.dns import parse_message, type_name


def _name(text: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in text.split(".")) + b"\0"


def _query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + _name(name) + struct.pack(
        "!HH", qtype, 1)


def test_query() -> None:
    msg = parse_message(_query("www.example.org", 28))
    assert msg is not None
    assert (msg.id, msg.response, msg.opcode) == (0x1234, False, 0)
    assert [(q.name, q.qtype) for q in msg.questions] == [("www.example.org", 28)]
    assert msg.attrs() == {"dns_qname": "www.example.org", "dns_qtype": "AAAA"}


def test_response_with_compressed_answers() -> None:
    q = _query("example.org")
    head = struct.pack("!HHHHHH", 0x1234, 0x8180, 1, 3, 0, 0)
    answers = (
        b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 6) + b"\x03www\xc0\x0c"  # CNAME
        + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([93, 184, 216, 34])
        + b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 60, 16) + bytes(15) + b"\x01"
    )
    msg = parse_message(head + q[12:] + answers)
    assert msg is not None and msg.response
    assert msg.attrs() == {
        "dns_qname": "example.org", "dns_qtype": "A", "dns_rcode": "NOERROR",
        "dns_answers": ["www.example.org", "93.184.216.34", "::1"],
    }


def test_nxdomain() -> None:
    q = _query("nope.invalid")
    msg = parse_message(struct.pack("!HHHHHH", 1, 0x8183, 1, 0, 0, 0) + q[12:])
    assert msg is not None and msg.attrs()["dns_rcode"] == "NXDOMAIN"


@pytest.mark.parametrize("data", [
    b"",
    b"\0" * 11,
    struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x05abc",  # label cut short
    struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\x01\0\x01",  # points at itself
    struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x80abc\0\0\x01\0\x01",  # reserved bits
    struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5 + b"\0\0\1\0\1",
    struct.pack("!HHHHHH", 1, 0x0100, 500, 0, 0, 0),  # absurd question count
])
def test_malformed_gives_none(data: bytes) -> None:
    assert parse_message(data) is None


def test_random_damage_never_raises() -> None:
    rng = random.Random(3)
    base = _query("a.b.example.com")
    for _ in range(3000):
        data = bytearray(base[: rng.randrange(len(base) + 1)])
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        parse_message(bytes(data))


def test_type_names() -> None:
    assert (type_name(65), type_name(1), type_name(4242)) == ("HTTPS", "A", "TYPE4242")


def test_hostile_label_bytes_are_escaped() -> None:
    msg = parse_message(_query("ok")[:12] + b"\x03\x1b[m\x02\xff\xfe\0\0\x01\0\x01")
    assert msg is not None
    # bytes outside ASCII are escaped; control characters are left to printable()
    assert msg.questions[0].name == "\x1b[m.\\xff\\xfe"
