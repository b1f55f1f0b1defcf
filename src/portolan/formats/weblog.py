"""``weblog``: web server access logs (nginx and Apache) as ``request`` events.

The layout of a line is given the way the web server itself is configured, as an nginx
``log_format`` string; the named layouts are such strings too (:data:`LAYOUTS`):

- ``combined`` (the default; nginx and Apache): it also reads ``common`` lines (no
  referrer and user agent) and lines with more fields after the user agent;
- ``common``;
- ``vhost_combined`` (Apache's, with ``%v:%p`` in front);
- any nginx ``log_format``: ``format_options = { log_format = '$remote_addr ...' }``.

What a line tells goes to the event: the client address (``src_ip``), the remote user
(``user``), the time, the bytes sent (``bytes_out``), and in ``attrs`` the ``method``,
``host``, ``path``, ``query``, ``protocol``, ``status``, ``bytes``, ``referrer`` and
``user_agent`` (all of it attacker text, bounded). A request that is not ``METHOD TARGET
PROTOCOL`` (TLS bytes sent to a plain port, scanners' junk) is kept as ``attrs.request``.
A line that does not fit the layout (an unterminated quote, a truncated line) is not
guessed at: it is unmatched.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from portolan.event import Event, clip
from portolan.formats.base import FORMATS, FormatSpec, LineParser, ParseContext

# nginx writes " - " where Apache writes the ident (%l): the layouts take either.
_COMBINED = ('$remote_addr $remote_ident $remote_user [$time_local] "$request" $status '
             '$body_bytes_sent "$http_referer" "$http_user_agent"')
#: Named layouts, as nginx ``log_format`` strings.
LAYOUTS = {
    "combined": _COMBINED,
    "common": ('$remote_addr $remote_ident $remote_user [$time_local] "$request" $status '
               "$body_bytes_sent"),
    "vhost_combined": "$host:$server_port " + _COMBINED,
}

_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'
#: What each variable may look like outside quotes (anything else: no spaces).
_VARIABLE = {
    "time_local": r"[^\]]+",
    "status": r"\d{3}",
    "body_bytes_sent": r"\d+|-",
    "bytes_sent": r"\d+|-",
    "server_port": r"\d+|-",
    "remote_port": r"\d+|-",
}
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_REQUEST = re.compile(r"(\S+) (\S+) (HTTP/\d(?:\.\d)?)$")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_TEXT = 1024


class LayoutError(ValueError):
    """A ``log_format`` that cannot be read; says what is wrong."""


def compile_layout(layout: str) -> re.Pattern[str]:
    """A regex for lines written with an nginx ``log_format`` (or a name of :data:`LAYOUTS`).

    Each ``$variable`` becomes a named group; inside double quotes it takes any text with
    backslash escapes, outside it takes what that variable can hold. The combined layout
    also accepts lines without its last two fields (common) and with more after them.
    """
    text = LAYOUTS.get(layout, layout)
    if "$" not in text:
        raise LayoutError(
            f"{layout!r} is neither a layout name ({', '.join(LAYOUTS)}) nor an nginx "
            "log_format with $variables")
    out: list[str] = ["^"]
    seen: set[str] = set()
    pos = 0
    for m in _VAR.finditer(text):
        name = m[1] or m[2]
        literal = text[pos:m.start()]
        quoted = literal.endswith('"') and text[m.end():m.end() + 1] == '"'
        out.append(re.escape(literal))
        group = name if name not in seen else None
        seen.add(name)
        body = _QUOTED if quoted else _VARIABLE.get(name, r"\S*")
        out.append(f"(?P<{group}>{body})" if group else f"(?:{body})")
        pos = m.end()
    tail = re.escape(text[pos:])
    pattern = "".join(out) + tail
    if text == _COMBINED:
        # common lines (no referrer, no agent) and extra fields after the agent
        cut = pattern.index(r'\ "(?P<http_referer>')
        pattern = pattern[:cut] + "(?:" + pattern[cut:] + ")?(?: .*)?"
    try:
        return re.compile(pattern + "$", re.DOTALL)
    except re.error as exc:  # pragma: no cover - escaped literals always compile
        raise LayoutError(f"log_format {layout!r}: {exc}") from None


class WeblogParser(LineParser):
    """See the module docstring. Options: ``log_format`` (a name or an nginx string)."""

    def __init__(self, ctx: ParseContext) -> None:
        super().__init__(ctx)
        self.pattern = compile_layout(str(ctx.options.get("log_format", "combined")))
        self._times: dict[str, dt.datetime | None] = {}
        self.sensor = ctx.sensor
        self.source = ctx.source

    def parse(self, line: str) -> list[Event] | None:
        m = self.pattern.match(line)
        if m is None:
            return None
        g = m.groupdict()
        ts = self._time(g)
        if ts is None:
            self.ctx.counters["weblog: bad time"] += 1
            return None
        attrs: dict[str, Any] = {}
        request = g.get("request")
        if request is not None:
            rm = _REQUEST.match(request)
            if rm is None:
                attrs["request"] = clip(request, _TEXT)
            else:
                attrs["method"] = clip(rm[1], 32)
                target = rm[2]
                path, sep, query = target.partition("?")
                attrs["path"] = clip(path, _TEXT)
                if sep:
                    attrs["query"] = clip(query, _TEXT)
                attrs["protocol"] = rm[3]
        else:
            for key in ("request_method", "request_uri", "uri", "args", "server_protocol"):
                if g.get(key):
                    attrs[_RENAME.get(key, key)] = clip(g[key], _TEXT)
        status = g.get("status")
        if status:
            attrs["status"] = int(status)
        sent = g.get("body_bytes_sent") or g.get("bytes_sent")
        nbytes = int(sent) if sent and sent != "-" and len(sent) < 19 else None
        if nbytes is not None:
            attrs["bytes"] = nbytes
        host = g.get("host") or g.get("server_name") or g.get("http_host")
        if host and host != "-":
            attrs["host"] = clip(host, 256)
        for key, name in (("http_referer", "referrer"), ("http_user_agent", "user_agent")):
            value = g.get(key)
            if value and value != "-":
                attrs[name] = clip(value, _TEXT)
        user = g.get("remote_user")
        port = g.get("server_port")
        src_port = g.get("remote_port")
        return [Event(
            ts=ts, sensor=self.sensor, source=self.source, service="http", action="request",
            proto="tcp", src_ip=(g.get("remote_addr") or "")[:64] or None,
            src_port=int(src_port) if src_port and src_port.isdigit() and len(src_port) < 6
            and int(src_port) < 65536 else None,
            dst_port=int(port) if port and port.isdigit() and len(port) < 6
            and int(port) < 65536 else None,
            user=clip(user) if user and user != "-" else None,
            bytes_out=nbytes, attrs=attrs,
        )]

    def _time(self, g: dict[str, Any]) -> dt.datetime | None:
        text = g.get("time_local")
        if text is None:
            iso = g.get("time_iso8601")
            if iso is None:
                return self.ctx.now()
            text = iso
        cache = self._times
        found = cache.get(text, False)
        if found is not False:
            return found  # type: ignore[return-value]
        if len(cache) > 4096:
            cache.clear()
        cache[text] = value = _parse_time(text)
        return value


_RENAME = {"request_method": "method", "request_uri": "path", "uri": "path", "args": "query",
           "server_protocol": "protocol"}


def _parse_time(text: str) -> dt.datetime | None:
    """``17/May/2015:08:05:32 +0000`` (nginx ``$time_local``) or ISO 8601, as UTC."""
    try:
        if "/" in text:
            day, month, rest = text.split("/", 2)
            year, hh, mm, rest = rest.split(":", 3)
            ss, _, zone = rest.partition(" ")
            sign = -1 if zone[:1] == "-" else 1
            offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
            value = dt.datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss),
                                tzinfo=dt.timezone(offset))
        else:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    except (ValueError, KeyError, IndexError):
        return None


def _make(ctx: ParseContext) -> WeblogParser:
    return WeblogParser(ctx)


FORMATS.add("weblog", FormatSpec(
    "weblog", "nginx / Apache access logs: combined, common, vhost_combined or an nginx "
              "log_format", make_parser=_make))
