"""``spyserver``: the console of Airspy's SPY Server, turned into sessions.

spyserver prints one line per thing that happens, with no time stamp, no level and no
prefix, so every event takes its time from :attr:`ParseContext.now` (the moment the line
arrived). The lines that matter:

- ``Accepted client IP:PORT running NAME`` (or without ``running NAME`` when the client
  sent an empty name): a **connect**; NAME is whatever the client sent (attacker text).
- ``Client disconnected: IP:PORT``: a **disconnect**; a disconnect whose connect was never
  seen (a port scanner that never sent HELLO) is kept, as its own session with no start.
- ``Client IP:PORT rejected (Max Clients reached)`` and
  ``Client IP:PORT rejected. Expected protocol 2.0.* but got X.Y.Z``: **rejected**.
- ``User session expired. Killing the user IP:PORT ...``: the session ends (reason
  ``expired``); a ``Client disconnected`` line for it that may follow is not a second end.
- ``Closing all connections...``, ``Releasing the DEVICE device``, ``Device is no longer
  available.`` / ``All connections will be closed.``, ``No clients using the device.
  Sleeping...``, a new ``SPY Server v...`` banner, and the end of the program's output
  (:meth:`SpyserverParser.finish`) end every session of the instance still open:
  spyserver does not promise a disconnect line per client at those moments.

Banners, device and configuration messages and the rtl-sdr driver's chatter are
recognised and ignored. Sessions are keyed by (instance, ip, port); each connection gets
a session id of its own, so a client that comes back from the same port is a new session.

A client name may contain a newline and, after it, a forged line such as ``Client
disconnected: <someone else>``. spyserver prints the whole ``Accepted client`` message with
one write, so the forged line reaches Portolan in the same read as the ``Accepted`` line it
belongs to. A source that knows where its reads begin and end (the ``process`` source:
see :class:`ReadBoundaries`) calls :meth:`SpyserverParser.start_read` and
:meth:`SpyserverParser.end_read`; lines that arrive in the same read right after an
``Accepted client ... running`` line, and that still fit in the 256 bytes a client name
can have, are then taken as part of that name and never acted on. Without read boundaries
(a saved console log), every line is taken as it stands.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Final

from portolan.event import Event, clip, make_id
from portolan.formats.base import FORMATS, FormatSpec, ParseContext

SERVICE: Final = "spyserver"
#: Longest client name spyserver passes on (one HELLO body; the name is NUL-terminated).
NAME_MAX: Final = 256
#: Longest raw client name kept in an event (a name plus the lines forged into it).
CLIENT_KEEP: Final = 512
#: How many recently ended sessions are remembered, to recognise a late disconnect line.
RECENT_KEEP: Final = 4096

_IP = r"(?P<ip>\d{1,3}(?:\.\d{1,3}){3})"
_PORT = r"(?P<port>\d{1,5})"

ACCEPTED = re.compile(rf"^Accepted client {_IP}:{_PORT}(?: running (?P<name>.*))?$", re.S)
DISCONNECTED = re.compile(rf"^Client disconnected: {_IP}:{_PORT}\s*$")
REJECTED_MAX = re.compile(rf"^Client {_IP}:{_PORT} rejected \(Max Clients reached\)\s*$")
REJECTED_PROTO = re.compile(
    rf"^Client {_IP}:{_PORT} rejected\. Expected protocol (?P<expected>\d+\.\d+)\.\* "
    r"but got (?P<got>\d+\.\d+\.\d+)\s*$"
)
EXPIRED = re.compile(rf"^User session expired\. Killing the user {_IP}:{_PORT}")
BANNER = re.compile(r"^SPY Server v(?P<version>\S+)\s*$")
LISTENING = re.compile(r"^Listening for connections on (?P<host>[^\s:]+):(?P<port>\d{1,5})\s*$")
DEVICE = re.compile(r"^Acquired an? (?P<device>.+?) device\s*$")
RELEASING = re.compile(r"^Releasing the (?P<device>.+?) device\s*$")

#: Lines that end every open session of the instance, and the reason recorded.
CLOSE_ALL: Final = {
    "Closing all connections...": "shutdown",
    "Device is no longer available.": "device_lost",
    "All connections will be closed.": "device_lost",
    "No clients using the device. Sleeping...": "no_clients",
}

_CLOSING_STARTS: Final = (
    "Client disconnected", "User session", "Releasing", "SPY Server", *CLOSE_ALL)

#: Lines recognised and ignored (matched at the start of the line).
NOISE: Final = re.compile(
    r"^(?:"
    r"Copyright \(C\)|Reading the configuration file|Cannot open configuration file|"
    r"Using the defaults|Could not acquire the device|Could not find any suitable device|"
    r"Invalid device definition|Device type is invalid|Unable to bind |"
    r"Device was sleeping\. Wake up!|Received unknown command from |"
    r"No enough arguments for setting|Caught signal \d+|Terminating\.\.\.|"
    # the rtl-sdr driver writes into the same console
    r"\[R82XX\]|\[R828D\]|\[E4K\]|\[FC00\d\]|Found |Using device |Detached kernel driver|"
    r"Exact sample rate is|Sampling at |Tuner |Allocating |Disabled direct sampling|"
    r"Enabled direct sampling|usb_claim_interface|Reattaching kernel driver|"
    r"Failed to open rtlsdr device|No supported devices found|rtlsdr_"
    r")"
)

_SDRSHARP = re.compile(r"^SDR# (?P<version>\S+) on (?P<os>.+)$")
_NAME_VERSION = re.compile(
    r"^(?P<software>[A-Za-z][\w+#.\- ]*?)(?: for (?P<for>[\w.\- ]+?))?"
    r"(?:\s+v?(?P<version>\d+(?:\.\d+)+[\w.\-]*))?(?: on (?P<os>.+))?$"
)


def _port_ok(m: re.Match[str]) -> bool:
    return int(m["port"]) <= 65535


def client_parts(name: str) -> dict[str, str | None]:
    """Software, version and OS of a client name when it has a known shape.

    ``SDR# 1700.0.0.1 on Windows`` -> SDR#, 1700.0.0.1, Windows; ``SDR++`` -> SDR++;
    ``SpyClient for Python v1.0`` -> SpyClient for Python, 1.0. Anything else (or a name
    with a line break) gives no parts: the raw name is kept beside them in any case.
    """
    software, version, os = _client_parts(name)
    return {"software": software, "version": version, "os": os}


@functools.lru_cache(maxsize=1024)
def _client_parts(name: str) -> tuple[str | None, str | None, str | None]:
    text = name.strip()
    if not text or len(text) > 128 or not text.isprintable():
        return None, None, None
    m = _SDRSHARP.match(text)
    if m:
        return "SDR#", m["version"], m["os"]
    m = _NAME_VERSION.match(text)
    if m is None:
        return None, None, None
    software = m["software"].strip()
    if m["for"]:
        software = f"{software} for {m['for'].strip()}"
    return software, m["version"], m["os"]


@dataclass
class _Open:
    session: str
    start: dt.datetime
    attrs: dict[str, Any]


@dataclass
class _Pending:
    """A connect held back until its client name can no longer continue."""

    event: Event
    key: tuple[str, int]
    budget: int
    lines: list[str] = field(default_factory=list)
    forged: int = 0
    """How many of ``lines`` belong to the name (up to the last closing line)."""


class SpyserverParser:
    """Stateful parser of one spyserver instance's console; see the module docstring."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx
        self.instance = str(ctx.options.get("instance") or ctx.source or SERVICE)
        self.open: dict[tuple[str, int], _Open] = {}
        self._recent: collections.OrderedDict[tuple[str, int], None] = (
            collections.OrderedDict())
        self._reads = False
        self._pending: _Pending | None = None
        self._seq = 0
        self._listen_ip: str | None = None
        self._listen_port: int | None = None
        self._device: str | None = None
        self._version: str | None = None

    # -- read boundaries (see ReadBoundaries in portolan.sources.process) ----------------

    def start_read(self) -> None:
        """The lines that follow arrived in one read of the program's output."""
        self._reads = True

    def end_read(self) -> list[Event]:
        """The read is over: a client name cannot continue; hand over what was held."""
        return self._release()

    # -- saved state (see Resumable in portolan.sources.process) ------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """The open sessions, as plain data to keep across a crash of Portolan."""
        return [
            {"session": o.session, "ip": ip, "port": port, "start": o.start.isoformat(),
             "attrs": o.attrs}
            for (ip, port), o in self.open.items()
        ]

    def restore(self, saved: list[dict[str, Any]], ended: dt.datetime) -> list[Event]:
        """End the sessions a previous Portolan left open: it stopped without seeing their
        end, and the program it ran stopped with it (reason ``lost``, at ``ended``)."""
        out = []
        for item in saved:
            try:
                start = dt.datetime.fromisoformat(str(item["start"]))
                ip, port, session = str(item["ip"]), int(item["port"]), str(item["session"])
                attrs = dict(item.get("attrs") or {})
            except (KeyError, TypeError, ValueError):
                self.ctx.counters["spyserver: unreadable saved session"] += 1
                continue
            attrs["reason"] = "lost"
            event = self._event("disconnect", ip, port, attrs, ended, session=session,
                                duration=max(0.0, (ended - start).total_seconds()))
            out.append(event)
        return out

    # -- the parser interface ----------------------------------------------------------

    def parse(self, line: str) -> list[Event] | None:
        pending = self._pending
        if pending is None:
            return self._parse(line)
        cost = len(line.encode("utf-8", "replace")) + 1
        if cost > pending.budget:
            return self._release() + (self._parse(line) or [])
        pending.budget -= cost
        pending.lines.append(line)
        if self._closes(line):
            # a line that would end sessions, in the same read right after a client name
            # and short enough to belong to it: it belongs to it
            pending.forged = len(pending.lines)
            self.ctx.counters["spyserver: closing line inside a client name"] += 1
            return []
        if ACCEPTED.match(line.rstrip("\r")):
            return self._release() + (self._parse(line) or [])
        # anything else stands as it is; the name may still go on after it
        return self._parse(line)

    def finish(self) -> list[Event]:
        """The program's output ended: every open session ends with it."""
        return self._release() + self._close_all("exit")

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _closes(line: str) -> bool:
        text = line.rstrip("\r")
        if not text.startswith(_CLOSING_STARTS):
            return False
        return bool(
            DISCONNECTED.match(text) or EXPIRED.match(text) or text.strip() in CLOSE_ALL
            or RELEASING.match(text) or BANNER.match(text)
        )

    def _release(self) -> list[Event]:
        pending, self._pending = self._pending, None
        if pending is None:
            return []
        if pending.forged:
            attrs = pending.event.attrs
            raw = "\n".join([attrs["client"], *pending.lines[: pending.forged]])
            attrs["client"] = clip(raw, CLIENT_KEEP)
            attrs["client_lines"] = pending.forged + 1
            attrs.update(software=None, version=None, os=None)
            found = self.open.get(pending.key)
            if found is not None and found.session == pending.event.session:
                found.attrs = dict(attrs)
        return [pending.event]

    def _parse(self, line: str) -> list[Event] | None:
        text = line.rstrip("\r")
        if not text.strip():
            return []
        # the first word tells which few patterns can match
        if text.startswith("Accepted client "):
            m = ACCEPTED.match(text)
            if m and _port_ok(m):
                return self._connect(m)
            return None
        if text.startswith("Client "):
            return self._client_line(text)
        if text.startswith("User session expired"):
            m = EXPIRED.match(text)
            if m and _port_ok(m):
                return self._disconnect(m["ip"], int(m["port"]), "expired")
            return None
        reason = CLOSE_ALL.get(text.strip())
        if reason is not None:
            return self._close_all(reason)
        if text.startswith("Releasing the ") and RELEASING.match(text):
            return self._close_all("shutdown")
        if text.startswith("SPY Server v"):
            m = BANNER.match(text)
            if m:
                self._version = m["version"]
                return self._close_all("restart")
        if text.startswith("Listening for connections on "):
            m = LISTENING.match(text)
            if m:
                self._listen_port = int(m["port"])
                host = m["host"]
                self._listen_ip = None if host in ("0.0.0.0", "*") else host  # noqa: S104
                return []
        if text.startswith("Acquired a"):
            m = DEVICE.match(text)
            if m:
                self._device = clip(m["device"], 64)
                return []
        if NOISE.match(text):
            return []
        return None

    def _client_line(self, text: str) -> list[Event] | None:
        m = DISCONNECTED.match(text)
        if m:
            return self._disconnect(m["ip"], int(m["port"]), "client") if _port_ok(m) else None
        m = REJECTED_MAX.match(text)
        if m:
            if not _port_ok(m):
                return None
            return [self._event("rejected", m["ip"], int(m["port"]), {"reason": "max_clients"})]
        m = REJECTED_PROTO.match(text)
        if m:
            if not _port_ok(m):
                return None
            return [self._event("rejected", m["ip"], int(m["port"]), {
                "reason": "protocol", "expected": m["expected"], "got": m["got"]})]
        return None

    def _attrs(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        attrs: dict[str, Any] = {"instance": self.instance}
        if self._device:
            attrs["device"] = self._device
        if self._version:
            attrs["server_version"] = self._version
        if extra:
            attrs.update(extra)
        return attrs

    def _event(self, action: str, ip: str, port: int, attrs: dict[str, Any],
               ts: dt.datetime | None = None, **fields: Any) -> Event:
        return Event(
            ts=ts or self.ctx.now(), sensor=self.ctx.sensor, source=self.ctx.source,
            service=SERVICE, action=action, proto="tcp", src_ip=ip,
            src_port=port, dst_ip=self._listen_ip,
            dst_port=self._listen_port, attrs=self._attrs(attrs), **fields,
        )

    def _session_id(self, ip: str, port: int, ts: dt.datetime, kind: str) -> str:
        self._seq += 1
        return make_id(SERVICE, self.ctx.sensor, self.instance, ip, port, ts.isoformat(),
                       self._seq, kind)

    def _connect(self, m: re.Match[str]) -> list[Event]:
        ip, port = m["ip"], int(m["port"])
        key = (ip, port)
        out: list[Event] = []
        if key in self.open:  # the same ip:port again: the previous connection is over
            out.extend(self._disconnect(ip, port, "replaced"))
        self._recent.pop(key, None)
        name = m["name"]
        ts = self.ctx.now()
        client = clip(name, CLIENT_KEEP) if name is not None else None
        attrs: dict[str, Any] = {"client": client, **client_parts(name or "")}
        session = self._session_id(ip, port, ts, "connect")
        event = self._event("connect", ip, port, attrs, ts, session=session)
        self.open[key] = _Open(session, ts, dict(event.attrs))
        if name is not None and self._reads:
            budget = NAME_MAX - len(name.encode("utf-8", "replace")) - 1
            self._pending = _Pending(event, key, budget)
            return out
        out.append(event)
        return out

    def _disconnect(self, ip: str, port: int, reason: str) -> list[Event]:
        key = (ip, port)
        ts = self.ctx.now()
        found = self.open.pop(key, None)
        if found is None:
            if key in self._recent:
                # already ended (expired, or closed with the rest): this line adds nothing
                del self._recent[key]
                return []
            session = self._session_id(ip, port, ts, "orphan")
            return [self._event("disconnect", ip, port, {"reason": reason,
                                "unmatched": True}, ts, session=session)]
        self._remember(key)
        attrs = {**found.attrs, "reason": reason}
        duration = max(0.0, (ts - found.start).total_seconds())
        return [self._event("disconnect", ip, port, attrs, ts, session=found.session,
                            duration=duration)]

    def _remember(self, key: tuple[str, int]) -> None:
        self._recent[key] = None
        if len(self._recent) > RECENT_KEEP:
            self._recent.popitem(last=False)

    def _close_all(self, reason: str) -> list[Event]:
        out: list[Event] = []
        for ip, port in list(self.open):
            out.extend(self._disconnect(ip, port, reason))
        return out


def _make(ctx: ParseContext) -> SpyserverParser:
    return SpyserverParser(ctx)


FORMATS.add(
    SERVICE,
    FormatSpec(SERVICE, "Airspy SPY Server console: client connects, disconnects, rejects",
               make_parser=_make),
)
