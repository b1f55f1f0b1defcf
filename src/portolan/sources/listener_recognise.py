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

from typing import Any, Final

from portolan.event import clip
from portolan.protocols import http, ssh, tls

#: Characters of the payload's text form kept in ``attrs["payload_text"]``.
TEXT_FORM_MAX: Final = 1024
#: Bytes shown as hex in ``attrs["first_bytes"]`` for payloads that are not recognised.
FIRST_BYTES: Final = 16


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
    if http.looks_like_request(data):
        return b"\r\n\r\n" in data or b"\n\n" in data
    return False


def describe(data: bytes) -> tuple[str, dict[str, Any]]:
    """The service a first payload speaks (``tls``, ``http``, ``ssh``, or ``""`` when not
    recognised) and its facts as ``attrs``: always ``protocol`` and ``payload_text``, then
    the protocol's own (SNI and JA4; method, path, host and user agent; banner and
    HASSH), named as :mod:`portolan.protocols` names them, or
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
    elif http.looks_like_request(data):
        request = http.parse_request(data)
        if request is not None:
            service = "http"
            attrs.update(request.attrs())
    attrs["protocol"] = service or "unknown"
    if not service:
        attrs["first_bytes"] = data[:FIRST_BYTES].hex()
    attrs["payload_text"] = clip(data.decode("utf-8", "replace"), TEXT_FORM_MAX)
    return service, attrs
