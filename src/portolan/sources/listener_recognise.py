"""What the listener makes of a first payload: is it whole yet, and what is it.

Pure functions over bytes, so they are tested without sockets. :func:`payload_complete`
is asked after every read while the first payload is being gathered: a TLS ClientHello is
whole when its records are, an HTTP request when its header ends, an SSH identification
line at its line ending (and, when the listener answered with a banner, once the KEXINIT
that follows is in). Anything else is whole when the peer pauses, closes, or fills the
size cap; the listener decides those. :func:`describe` names the protocol and lists its
facts for the event's ``attrs``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from portolan.event import clip
from portolan.protocols import ssh, tls

#: Characters of the payload's text form kept in ``attrs["payload_text"]``.
TEXT_FORM_MAX: Final = 1024
#: Bytes shown as hex in ``attrs["first_bytes"]`` for payloads that are not recognised.
FIRST_BYTES: Final = 16

# Until the shared HTTP recogniser lands in portolan.protocols, the listener recognises the
# request line and the two headers it reports with these; nothing else parses HTTP here.
_REQUEST_LINE = re.compile(
    rb"^(?P<method>[A-Z][A-Z_-]{1,19}) (?P<target>[^ \r\n]{1,8192}) HTTP/(?P<version>\d\.\d)\r?\n"
)
_HEADER = re.compile(rb"^(?P<name>[!-9;-~]{1,64}):[ \t]*(?P<value>[^\r\n]*)\r?$", re.M)
_METHOD_START = re.compile(rb"^[A-Z]{3,20} ")


def _looks_like_http(data: bytes) -> bool:
    return _METHOD_START.match(data[:21]) is not None


def payload_complete(data: bytes, *, want_kexinit: bool = False) -> bool:
    """Whether ``data`` (what the peer sent so far) is a whole message of a protocol that
    the listener recognises; False when more may come."""
    first = data[:1]
    if first == b"\x16":
        size = tls.hello_size(data)
        return size is not None and len(data) >= size
    if first == b"S" and ssh.looks_like_ssh(data):
        banner = ssh.parse_banner(data)
        if banner is None:
            return False
        if not want_kexinit:
            return True
        size = ssh.kexinit_size(data[banner.end:])
        return size is not None and len(data) >= banner.end + size
    if _looks_like_http(data):
        return b"\r\n\r\n" in data or b"\n\n" in data
    return False


def describe(data: bytes) -> tuple[str, dict[str, Any]]:
    """The service a first payload speaks (``tls``, ``http``, ``ssh``, or ``""`` when not
    recognised) and its facts as ``attrs``: always ``protocol`` and ``payload_text``, then
    the protocol's own (SNI and JA4, method and path, banner and HASSH), or
    ``first_bytes`` when the protocol is unknown."""
    attrs: dict[str, Any] = {}
    service = ""
    if tls.looks_like_tls(data):
        hello = tls.parse_client_hello(data)
        if hello is not None:
            service = "tls"
            attrs.update(hello.attrs())
    elif ssh.looks_like_ssh(data):
        banner = ssh.parse_banner(data)
        if banner is not None:
            service = "ssh"
            attrs.update(banner.attrs())
            kex = ssh.parse_kexinit(data[banner.end:])
            if kex is not None:
                attrs.update(kex.attrs())
    elif _looks_like_http(data):
        request = http_request(data)
        if request is not None:
            service = "http"
            attrs.update(request)
    attrs["protocol"] = service or "unknown"
    if not service:
        attrs["first_bytes"] = data[:FIRST_BYTES].hex()
    attrs["payload_text"] = clip(data.decode("utf-8", "replace"), TEXT_FORM_MAX)
    return service, attrs


def http_request(data: bytes) -> dict[str, Any] | None:
    """Method, path, version, Host and User-Agent of the HTTP/1 request at the start of
    ``data``, or None when it does not start with a request line."""
    line = _REQUEST_LINE.match(data)
    if line is None:
        return None
    target = line["target"].decode("utf-8", "replace")
    out: dict[str, Any] = {
        "http_method": line["method"].decode("ascii"),
        "http_path": clip(target.split("?", 1)[0]),
        "http_target": clip(target),
        "http_version": line["version"].decode("ascii"),
    }
    head_end = data.find(b"\r\n\r\n")
    headers = data[line.end():head_end if head_end >= 0 else len(data)]
    for header in _HEADER.finditer(headers):
        name = header["name"].lower()
        if name == b"host" and "http_host" not in out:
            out["http_host"] = clip(header["value"].decode("utf-8", "replace").strip(), 256)
        elif name == b"user-agent" and "http_user_agent" not in out:
            out["http_user_agent"] = clip(header["value"].decode("utf-8", "replace").strip())
    return out
