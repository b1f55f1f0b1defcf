"""HTTP/1.x requests and responses, recognised from the first bytes a peer sent.

Sans-I/O: bytes in, facts out. The listener hands over the first payload of a
connection, the capture sensor the first data of a TCP stream (or a UDP datagram, for
SSDP); neither needs more than :func:`looks_like_request` and :func:`parse_request`.

Everything taken from the bytes is attacker text: it is decoded without failing
(invalid UTF-8 is replaced), control characters are kept as they are (printing them is
the terminal's business, see :func:`portolan.text.printable`), and each field is bounded
with :func:`portolan.event.clip`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from portolan.event import TEXT_MAX, clip

__all__ = [
    "METHODS",
    "HttpRequest",
    "HttpResponse",
    "looks_like_request",
    "looks_like_response",
    "parse_request",
    "parse_response",
    "response_status",
]

#: Methods that make :func:`looks_like_request` say yes: RFC 9110, PATCH, WebDAV, and the
#: HTTPU ones of SSDP (M-SEARCH, NOTIFY).
METHODS: Final = frozenset({
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "TRACE", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH",
    "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PRI",
})
_PREFIXES: Final = tuple(m.encode() + b" " for m in METHODS)
_FIRST: Final = frozenset(m.encode()[0] for m in METHODS)

#: Headers are read up to this many bytes; the rest of a longer head is ignored.
HEAD_MAX: Final = 16384
#: Longest method, in bytes (a longer first word is not a request).
METHOD_MAX: Final = 24
#: Header values kept in :attr:`HttpRequest.headers`, at most.
HEADERS_MAX: Final = 64

_REQUEST_LINE = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,24}) +(\S+) +(HTTP/\d(?:\.\d)?) *\r?$"
)
_STATUS_LINE = re.compile(rb"(HTTP/\d(?:\.\d)?) +(\d{3})(?: +([^\r\n]*))?\r?$")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What the head of one HTTP/1.x request says."""

    method: str
    """Request method as sent (``GET``, ``POST``...; case kept)."""
    target: str
    """Request target as written: ``/path?query``, ``*``, an absolute URI, ``host:port``."""
    version: str
    """``HTTP/1.1``, ``HTTP/1.0``..."""
    host: str | None = None
    """The Host header as written (a name, an IP literal, ``[v6]``, ``name:port``)."""
    user_agent: str | None = None
    """The User-Agent header."""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Header (lower-case name, value) pairs, in order, at most :data:`HEADERS_MAX`."""
    complete: bool = False
    """True when the blank line that ends the head was seen (all headers are here)."""
    head_size: int = 0
    """Bytes of the head read (request line and headers, up to :data:`HEAD_MAX`)."""

    @property
    def path(self) -> str:
        """The target up to ``?`` (the query string removed)."""
        return self.target.partition("?")[0]

    def attrs(self) -> dict[str, str]:
        """The facts as event ``attrs``: ``method``, ``uri`` (the target as written),
        ``path``, ``http_version``, and ``host`` and ``user_agent`` when sent (the names
        listener and capture share)."""
        out = {"method": self.method, "uri": self.target, "path": self.path,
               "http_version": self.version}
        if self.host is not None:
            out["host"] = self.host
        if self.user_agent is not None:
            out["user_agent"] = self.user_agent
        return out

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        key = name.lower()
        for k, v in self.headers:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The status line (and a few headers) of one HTTP/1.x response."""

    version: str
    """``HTTP/1.1``..."""
    status: int
    """Status code, 100-999."""
    reason: str = ""
    """Reason phrase as sent."""
    server: str | None = None
    """The Server header, when the head holds it."""
    content_type: str | None = None
    """The Content-Type header, when the head holds it."""


def looks_like_request(data: bytes) -> bool:
    """Cheap test: does ``data`` start with a known method and a space?"""
    return bool(data) and data[0] in _FIRST and data.startswith(_PREFIXES)


def looks_like_response(data: bytes) -> bool:
    """Cheap test: does ``data`` start like a status line?"""
    return data.startswith(b"HTTP/") and len(data) >= 12 and data[8:9] == b" "


def _text(raw: bytes, limit: int = TEXT_MAX) -> str:
    return clip(raw.decode("utf-8", "replace"), limit) or ""


def _head_lines(data: bytes) -> tuple[list[bytes], bool, int]:
    """Lines of the head (without their endings), whether its end was seen, its size."""
    head = data[:HEAD_MAX]
    end = head.find(b"\r\n\r\n")
    size = end + 4
    if end < 0:
        end = head.find(b"\n\n")
        size = end + 2
    complete = end >= 0
    if not complete:
        # Keep only whole lines: the last one may continue in the next segment.
        end = head.rfind(b"\n")
        size = end + 1 if end >= 0 else 0
        if end < 0:
            return [], False, 0
    return head[:end].split(b"\n"), complete, size


def _headers(lines: list[bytes]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for raw in lines:
        name, colon, value = raw.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            continue  # not a header (obsolete line folding, garbage): skip it
        headers.append((_text(name.lower(), 64), _text(value.strip(b" \t\r"))))
        if len(headers) >= HEADERS_MAX:
            break
    return headers


def parse_request(data: bytes) -> HttpRequest | None:
    """The request whose head starts ``data``, or None if ``data`` does not start with a
    whole HTTP/1.x request line.

    A head cut short (the rest is in a later segment) still gives what it holds, with
    ``complete=False``. The Host and User-Agent headers are taken as written.
    """
    lines, complete, size = _head_lines(data)
    if not lines:
        return None
    m = _REQUEST_LINE.fullmatch(lines[0])
    if m is None:
        return None
    method, target, version = m.groups()
    headers = _headers(lines[1:])
    host = next((v for k, v in headers if k == "host"), None)
    agent = next((v for k, v in headers if k == "user-agent"), None)
    return HttpRequest(
        method=_text(method, METHOD_MAX),
        target=_text(target),
        version=version.decode("ascii"),
        host=clip(host, 256),
        user_agent=agent,
        headers=tuple(headers),
        complete=complete,
        head_size=size,
    )


def response_status(data: bytes) -> int | None:
    """Only the status code of the response whose status line starts ``data`` (cheaper
    than :func:`parse_response` when nothing else is wanted)."""
    if not looks_like_response(data):
        return None
    end = data.find(b"\n", 0, 512)
    if end < 0:
        return None
    m = _STATUS_LINE.fullmatch(data[:end])
    return int(m[2]) if m is not None else None


def parse_response(data: bytes) -> HttpResponse | None:
    """The response whose status line starts ``data``, or None."""
    if not looks_like_response(data):
        return None
    lines, _complete, _size = _head_lines(data)
    if not lines:
        return None
    m = _STATUS_LINE.fullmatch(lines[0])
    if m is None:
        return None
    version, status, reason = m.groups()
    headers = _headers(lines[1:])
    return HttpResponse(
        version=version.decode("ascii"),
        status=int(status),
        reason=_text(reason or b"", 256),
        server=clip(next((v for k, v in headers if k == "server"), None), 256),
        content_type=clip(next((v for k, v in headers if k == "content-type"), None), 256),
    )
