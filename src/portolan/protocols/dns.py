"""DNS messages (RFC 1035): the names asked for, and what the answer said.

Sans-I/O: bytes in, facts out. :func:`parse_message` reads one message as carried in a
UDP datagram (for DNS over TCP, strip the two-byte length first). Names are followed
through compression pointers with a bound on the jumps, so a message that points at
itself cannot loop; every field is bounded, and a malformed message gives None.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Answer", "DnsMessage", "Question", "parse_message", "type_name"]

#: Record types by number, for the names in events (``A``, ``AAAA``, ``HTTPS``...).
TYPES: Final = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
                28: "AAAA", 33: "SRV", 35: "NAPTR", 43: "DS", 46: "RRSIG", 48: "DNSKEY",
                64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR", 252: "AXFR", 255: "ANY",
                257: "CAA"}
RCODES: Final = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
                 5: "REFUSED"}
#: Questions and answers kept from one message, at most.
RECORDS_MAX: Final = 16
_NAME_MAX: Final = 255
_JUMPS_MAX: Final = 32

_header = struct.Struct("!HHHHHH").unpack_from
_rr = struct.Struct("!HHIH").unpack_from


def type_name(value: int) -> str:
    """``A``, ``AAAA``... or ``TYPE123`` for a type without a name."""
    return TYPES.get(value) or f"TYPE{value}"


@dataclass(frozen=True, slots=True)
class Question:
    """One question: the name (no trailing dot, as written, case kept) and its type."""

    name: str
    qtype: int
    qclass: int = 1


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer record; ``data`` is text for A, AAAA, CNAME, PTR and NS, else None."""

    name: str
    rtype: int
    ttl: int
    data: str | None


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """The header, questions and (first) answers of one DNS message."""

    id: int
    response: bool
    opcode: int
    rcode: int
    questions: tuple[Question, ...]
    answers: tuple[Answer, ...] = ()

    def attrs(self) -> dict[str, Any]:
        """The facts as event ``attrs``: ``dns_qname``, ``dns_qtype`` of the first
        question; for a response, ``dns_rcode`` and ``dns_answers`` (addresses and names)."""
        out: dict[str, Any] = {}
        if self.questions:
            q = self.questions[0]
            out["dns_qname"] = q.name
            out["dns_qtype"] = type_name(q.qtype)
        if self.response:
            out["dns_rcode"] = RCODES.get(self.rcode) or str(self.rcode)
            found = [a.data for a in self.answers if a.data is not None]
            if found:
                out["dns_answers"] = found
        return out


class _Malformed(Exception):
    pass


def _name(data: bytes, pos: int) -> tuple[str, int]:
    """The name at ``pos`` and where the data after it starts."""
    labels: list[str] = []
    size = 0
    end = -1
    jumps = 0
    n = len(data)
    while True:
        if pos >= n:
            raise _Malformed
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0 == 0xC0:
            if pos + 1 >= n or jumps >= _JUMPS_MAX:
                raise _Malformed
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            jumps += 1
            continue
        if length & 0xC0:
            raise _Malformed
        label = data[pos + 1 : pos + 1 + length]
        if len(label) < length:
            raise _Malformed
        size += length + 1
        if size > _NAME_MAX:
            raise _Malformed
        labels.append(label.decode("ascii", "backslashreplace"))
        pos += 1 + length
    return ".".join(labels), (end if end >= 0 else pos)


def parse_message(data: bytes) -> DnsMessage | None:
    """One DNS message, or None when ``data`` is not a well-formed one."""
    if len(data) < 12:
        return None
    ident, flags, qd, an, _ns, _ar = _header(data)
    if qd > RECORDS_MAX * 4 or (flags >> 11) & 0xF > 6:
        return None
    try:
        pos = 12
        questions: list[Question] = []
        for _ in range(qd):
            name, pos = _name(data, pos)
            if pos + 4 > len(data):
                raise _Malformed
            qtype, qclass = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(questions) < RECORDS_MAX:
                questions.append(Question(name, qtype, qclass))
        answers: list[Answer] = []
        for _ in range(min(an, RECORDS_MAX)):
            name, pos = _name(data, pos)
            if pos + 10 > len(data):
                raise _Malformed
            rtype, _rclass, ttl, rdlen = _rr(data, pos)
            pos += 10
            rdata = data[pos : pos + rdlen]
            if len(rdata) < rdlen:
                raise _Malformed
            text: str | None = None
            if rtype == 1 and rdlen == 4:
                text = socket.inet_ntop(socket.AF_INET, rdata)
            elif rtype == 28 and rdlen == 16:
                text = socket.inet_ntop(socket.AF_INET6, rdata)
            elif rtype in (2, 5, 12):
                text = _name(data, pos)[0]
            answers.append(Answer(name, rtype, ttl, text))
            pos += rdlen
    except _Malformed:
        return None
    return DnsMessage(
        id=ident,
        response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        rcode=flags & 0xF,
        questions=tuple(questions),
        answers=tuple(answers),
    )
