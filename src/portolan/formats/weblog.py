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
_REQUEST_MATCH = _REQUEST.match
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
        names = set(self.pattern.groupindex)
        self._split_request = "request" in names
        self._parts = [k for k in ("request_method", "request_uri", "uri", "args",
                                   "server_protocol") if k in names]
        self._sent = next((k for k in ("body_bytes_sent", "bytes_sent") if k in names), None)
        self._hosts = [k for k in ("host", "server_name", "http_host") if k in names]
        self._texts = [(k, n) for k, n in (("http_referer", "referrer"),
                                           ("http_user_agent", "user_agent")) if k in names]
        self._ports = "server_port" in names or "remote_port" in names

    def parse(self, line: str) -> list[Event] | None:
        m = self.pattern.match(line)
        if m is None:
            return None
        g = m.groupdict()
        times, text = self._times, g.get("time_local")
        ts = times[text] if text in times else self._time(g)  # _time's cache, without a call
        if ts is None:
            self.ctx.counters["weblog: bad time"] += 1
            return None
        attrs: dict[str, Any] = {}
        if self._split_request:
            request = g["request"]
            rm = _REQUEST_MATCH(request)
            if rm is None:
                attrs["request"] = clip(request, _TEXT)
            else:
                method, target, protocol = rm.groups()
                attrs["method"] = method if len(method) <= 32 else clip(method, 32)
                path, sep, query = target.partition("?")
                attrs["path"] = path if len(path) <= _TEXT else clip(path, _TEXT)
                if sep:
                    attrs["query"] = query if len(query) <= _TEXT else clip(query, _TEXT)
                attrs["protocol"] = protocol
        for part in self._parts:
            if g[part]:
                attrs[_RENAME.get(part, part)] = clip(g[part], _TEXT)
        status = g.get("status")
        if status:
            attrs["status"] = int(status)
        nbytes = None
        if self._sent is not None:
            sent = g[self._sent]
            if sent and sent != "-" and len(sent) < 19:
                attrs["bytes"] = nbytes = int(sent)
        for host_key in self._hosts:
            host = g[host_key]
            if host and host != "-":
                attrs["host"] = clip(host, 256)
                break
        for text_key, name in self._texts:
            value = g[text_key]
            if value and value != "-":
                attrs[name] = value if len(value) <= _TEXT else clip(value, _TEXT)
        user = g.get("remote_user")
        src_port = dst_port = None
        if self._ports:
            src_port = _port(g.get("remote_port"))
            dst_port = _port(g.get("server_port"))
        addr = g.get("remote_addr")
        return [Event(
            ts=ts, sensor=self.sensor, source=self.source, service="http", action="request",
            proto="tcp", src_ip=addr[:64] if addr else None, src_port=src_port,
            dst_port=dst_port, user=clip(user) if user and user != "-" else None,
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


def _port(text: str | None) -> int | None:
    if text and text.isdigit() and len(text) < 6 and int(text) < 65536:
        return int(text)
    return None


_RENAME = {"request_method": "method", "request_uri": "path", "uri": "path", "args": "query",
           "server_protocol": "protocol"}


_ZONES: dict[str, dt.tzinfo] = {"+0000": dt.UTC}
"""Time zones by their text in logs (a handful per server; a cache of immutable values)."""


def _parse_time(text: str) -> dt.datetime | None:
    """``17/May/2015:08:05:32 +0000`` (nginx ``$time_local``) or ISO 8601, as UTC."""
    try:
        if len(text) == 26 and text[2] == "/" and text[20] == " ":  # 17/May/2015:08:05:32 +0000
            zone = _ZONES.get(text[21:])
            if zone is None:
                sign = -1 if text[21] == "-" else 1
                zone = dt.timezone(dt.timedelta(hours=int(text[22:24]),
                                                minutes=int(text[24:26])) * sign)
                if len(_ZONES) < 64:
                    _ZONES[text[21:]] = zone
            value = dt.datetime(int(text[7:11]), _MONTHS[text[3:6]], int(text[0:2]),
                                int(text[12:14]), int(text[15:17]), int(text[18:20]), tzinfo=zone)
        elif "/" in text:
            day, month, rest = text.split("/", 2)
            year, hh, mm, rest = rest.split(":", 3)
            ss, _, zone_text = rest.partition(" ")
            sign = -1 if zone_text[:1] == "-" else 1
            offset = dt.timedelta(hours=int(zone_text[1:3]), minutes=int(zone_text[3:5])) * sign
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
