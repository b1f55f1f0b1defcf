"""HTTP/1.x request and response recognition, on well-formed and hostile heads."""

from __future__ import annotations

import pytest

from portolan.event import TEXT_MAX
from portolan.protocols.http import (
    HEAD_MAX,
    looks_like_request,
    looks_like_response,
    parse_request,
    parse_response,
    response_status,
)

GET = (
    b"GET /download.html?x=1 HTTP/1.1\r\n"
    b"Host: www.ethereal.com\r\n"
    b"User-Agent: Mozilla/5.0 (Windows; U; Windows NT 5.1)\r\n"
    b"Accept: */*\r\n"
    b"\r\n"
)


def test_request_fields() -> None:
    req = parse_request(GET)
    assert req is not None
    assert (req.method, req.target, req.path, req.version) == (
        "GET", "/download.html?x=1", "/download.html", "HTTP/1.1")
    assert req.host == "www.ethereal.com"
    assert req.user_agent == "Mozilla/5.0 (Windows; U; Windows NT 5.1)"
    assert req.header("ACCEPT") == "*/*"
    assert req.complete
    assert req.head_size == len(GET)


def test_request_with_body_after_head() -> None:
    data = b"POST /login HTTP/1.0\nHost: 10.0.0.1:8080\nContent-Length: 3\n\nabc"
    req = parse_request(data)
    assert req is not None
    assert (req.method, req.host, req.version, req.complete) == (
        "POST", "10.0.0.1:8080", "HTTP/1.0", True)
    assert req.head_size == len(data) - 3


def test_head_cut_short_gives_what_it_has() -> None:
    req = parse_request(b"GET / HTTP/1.1\r\nHost: example.org\r\nUser-Ag")
    assert req is not None
    assert req.host == "example.org"
    assert req.user_agent is None
    assert not req.complete


@pytest.mark.parametrize("data", [
    b"",
    b"GET",
    b"GET / HTTP/1.1",  # request line not ended: wait for more
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET /\r\n",  # HTTP/0.9: no version
    b"GET / FTP/1.0\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\n\r\n",
    b"GET  HTTP/1.1\r\n\r\n",
    b"A" * 100 + b" / HTTP/1.1\r\n\r\n",
])
def test_not_a_request(data: bytes) -> None:
    assert parse_request(data) is None


def test_ssdp_and_webdav_methods() -> None:
    msearch = b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n\r\n'
    assert looks_like_request(msearch)
    req = parse_request(msearch)
    assert req is not None
    assert (req.method, req.target, req.host) == ("M-SEARCH", "*", "239.255.255.250:1900")
    assert looks_like_request(b"PROPFIND /dav/ HTTP/1.1\r\n")


def test_unknown_method_parses_but_is_not_guessed() -> None:
    data = b"BREW /pot HTTP/1.1\r\nHost: coffee\r\n\r\n"
    assert not looks_like_request(data)
    req = parse_request(data)
    assert req is not None and req.method == "BREW"


def test_looks_like_request_needs_the_space() -> None:
    assert looks_like_request(b"GET / HTTP/1.1\r\n")
    assert not looks_like_request(b"GETAWAY")
    assert not looks_like_request(b"get / HTTP/1.1\r\n")


def test_hostile_text_is_bounded_and_never_raises() -> None:
    long_path = b"/" + b"A" * 10 * TEXT_MAX
    data = (b"GET " + long_path + b" HTTP/1.1\r\nHost: " + b"h" * 5000 + b"\r\n"
            b"User-Agent: \xff\xfe\x1b[31mred\r\n\r\n")
    req = parse_request(data)
    assert req is not None
    assert len(req.target) == TEXT_MAX
    assert req.host is not None and len(req.host) == 256
    assert req.user_agent is not None
    assert "\x1b[31mred" in req.user_agent  # kept: escaping is the display's job
    assert "\ufffd" in req.user_agent  # invalid UTF-8 replaced, not an exception


def test_head_larger_than_limit() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"p" * (2 * HEAD_MAX) + b"\r\n\r\n"
    req = parse_request(data)
    assert req is not None
    assert not req.complete
    assert req.head_size <= HEAD_MAX


def test_header_lines_that_are_not_headers_are_skipped() -> None:
    data = b"GET / HTTP/1.1\r\n folded\r\nbad line\r\nHost: a\r\n: empty\r\n\r\n"
    req = parse_request(data)
    assert req is not None
    assert req.host == "a"
    assert [k for k, _ in req.headers] == ["host"]


def test_response() -> None:
    data = b"HTTP/1.1 404 Not Found\r\nServer: nginx\r\nContent-Type: text/html\r\n\r\n<h1>"
    assert looks_like_response(data)
    resp = parse_response(data)
    assert resp is not None
    assert (resp.version, resp.status, resp.reason) == ("HTTP/1.1", 404, "Not Found")
    assert (resp.server, resp.content_type) == ("nginx", "text/html")


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 OK\r\n\r\n", b"HTTP/1.1 20 OK\r\n\r\n", b"HTTP", b"GET / HTTP/1.1\r\n\r\n",
])
def test_not_a_response(data: bytes) -> None:
    assert parse_response(data) is None


def test_response_without_reason() -> None:
    resp = parse_response(b"HTTP/1.0 200\r\n\r\n")
    assert resp is not None and resp.status == 200 and resp.reason == ""


def test_attrs_names() -> None:
    req = parse_request(GET)
    assert req is not None
    assert req.attrs() == {
        "method": "GET", "uri": "/download.html?x=1", "path": "/download.html",
        "http_version": "HTTP/1.1", "host": "www.ethereal.com",
        "user_agent": "Mozilla/5.0 (Windows; U; Windows NT 5.1)",
    }
    bare = parse_request(b"GET / HTTP/1.0\r\n\r\n")
    assert bare is not None and set(bare.attrs()) == {"method", "uri", "path", "http_version"}


def test_response_status_only() -> None:
    assert response_status(b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n") == 304
    assert response_status(b"HTTP/1.0 200\n\n") == 200
    assert response_status(b"HTTP/1.1 200 OK") is None  # line not ended yet
    assert response_status(b"HTTP/1.1 abc\r\n") is None
    assert response_status(b"\x17\x03\x03\x00\x20") is None
