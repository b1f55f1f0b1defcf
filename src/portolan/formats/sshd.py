"""``sshd``: OpenSSH's log lines as login attempts, connections and probes.

One event per thing that happened, not per line:

- ``auth_failure``: one tried credential (``Failed password``, ``publickey``,
  ``keyboard-interactive``, ``hostbased``...; attrs ``method``, ``valid_user``), a refused
  user (``not allowed because...``, ``ROOT LOGIN REFUSED``), or a PAM failure that sshd did
  not report itself. A PAM line that repeats a ``Failed`` line of the same sshd process
  is folded into it, so an attempt is never counted twice.
- ``invalid_user``: a name that does not exist (``Invalid user X from ...``, once per
  connection; each password then tried is an ``auth_failure`` with ``valid_user=false``).
- ``auth_success``: ``Accepted METHOD for USER``; opens the SSH session.
- ``connect``: ``Connection from ...`` (LogLevel VERBOSE); opens the session.
- ``disconnect``: the first line that ends a connection (closed, reset, disconnected,
  too many authentication failures); closes the session, with its duration.
- ``probe``: a peer that never tried to log in (no identification string, bad banner,
  key exchange or negotiation failure, timeout before authentication).

``message repeated N times: [ ... ]`` counts N times. Every event of one connection
carries the same ``session`` (sensor, host, sshd pid and the connection's first time), so
the store pairs its connect with its disconnect.

The user name is attacker text and may imitate the rest of the line
(``Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.1
port 58946 ssh2``): the patterns take the source from where sshd writes it (the *first*
``from HOST port N`` that the known end of the line follows), never from the user's text.
The patterns are data (:data:`PATTERNS`); each has annotated samples in
``tests/formats/samples/sshd.log``.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgspec

from portolan.event import TEXT_MAX, Event, clip
from portolan.formats.base import FORMATS, FormatSpec, ParseContext
from portolan.formats.header import SyslogClock, parse_iso, split

PROGRAMS = frozenset({"sshd", "sshd-session", "sshd-auth", "sshd(pam_unix)"})
#: sshd processes whose connection state is remembered (oldest forgotten first).
MAX_PROCESSES = 4096
#: A PAM failure waits this long for the ``Failed`` line that repeats it.
PAM_WAIT = dt.timedelta(seconds=10)
_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)
_EVER = dt.datetime.min.replace(tzinfo=dt.UTC)

# A host as sshd writes it: IPv4, IPv6, ::ffff:, a name. What follows a host in every
# pattern starts with a space, a colon or the end, so a host ends before one of them: the
# first such place that lets the rest match, tried one colon-separated piece at a time
# (the matches of ``\S*?`` followed by that lookahead, without trying every character).
_H = r"(?P<ip>[^\s\[](?:[^\s:]*+:)*?[^\s:]*+)"
_PORT = r"(?: port (?P<port>\d+))"
_U = r"(?P<user>.*?)"

# (name, pattern, action), tried on the message after any "error: " or "fatal: ". Action
# None: recognised, reports nothing by itself; "pam": held until it is known whether sshd
# reports the attempt itself; "close": a disconnect unless the connection already closed.
# Named groups: ip, port, user (guser: the same, where it stands before the address),
# method, invalid, reason, dst_ip, dst_port.
PATTERNS: list[tuple[str, str, str | None]] = [
    ("failed", rf"Failed (?P<method>\S+) for (?P<invalid>invalid user )?{_U} from {_H}"
               rf"{_PORT}?(?: ssh\d?)?(?:: .*)?$", "auth_failure"),
    ("accepted", rf"Accepted (?P<method>\S+) for {_U} from {_H}{_PORT}(?: ssh\d?)?(?:: .*)?$",
     "auth_success"),
    ("invalid", rf"Invalid user {_U} from {_H}{_PORT}?\s*$", "invalid_user"),
    ("illegal", rf"Illegal user {_U} from {_H}{_PORT}?\s*$", "invalid_user"),
    ("connection", rf"Connection from {_H}{_PORT}?(?: on (?P<dst_ip>\S+) port (?P<dst_port>\d+)"
                   r"(?: rdomain .*)?)?$", "connect"),
    ("closed_user", rf"Connection (?:closed|reset) by (?:authenticating|invalid) user "
                    rf"(?P<guser>.*) {_H}{_PORT}(?: \[preauth\])?$", "close"),
    ("closed", rf"Connection (?:closed|reset) by {_H}{_PORT}?(?: \[preauth\])?$", "close"),
    ("disconnected_user", rf"Disconnected from (?:authenticating |invalid )?user (?P<guser>.*) "
                          rf"{_H}{_PORT}(?: \[preauth\])?$", "close"),
    ("disconnected", rf"Disconnected from {_H}{_PORT}?(?: \[preauth\])?$", "close"),
    ("received_disconnect", rf"Received disconnect from {_H}{_PORT}?: ?\d+: ?(?P<reason>.*?)"
                            r"(?: \[preauth\])?$", "close"),
    ("disconnecting_user", rf"Disconnecting (?:authenticating |invalid )?user (?P<guser>.*) {_H}"
                           rf"{_PORT}: (?P<reason>.*?)(?: \[preauth\])?$", "close"),
    ("disconnecting", r"Disconnecting: (?P<reason>.*?)(?: for (?P<user>.*?))?(?: \[preauth\])?$",
     "close"),
    ("max_attempts", rf"maximum authentication attempts exceeded for (?:invalid user )?"
                     rf"{_U} from {_H}{_PORT}?(?: ssh\d?)?(?: \[preauth\])?$", "close"),
    ("socket", r"Read from socket failed: (?P<reason>.*?)(?: \[preauth\])?$", "close"),
    ("session_closed", r"pam_unix\(sshd:session\): session closed for user (?P<user>.*)$",
     "close"),
    ("timeout", rf"Timeout before authentication for (?:connection from )?{_H}"
                rf"(?:{_PORT}| to \S+, pid = \d+)?$", "probe"),
    ("no_ident", rf"Did not receive identification string from {_H}{_PORT}?$", "probe"),
    ("bad_version", rf"Bad protocol version identification '(?P<reason>.*)' from {_H}{_PORT}?$",
     "probe"),
    ("banner", rf"banner exchange: Connection from {_H}{_PORT}?: (?P<reason>.*)$", "probe"),
    ("negotiate", rf"Unable to negotiate with {_H}{_PORT}?: (?P<reason>[^.]*)", "probe"),
    ("negotiate_kex", r"(?P<reason>Unable to negotiate a key exchange method)", "probe"),
    ("no_matching", r"(?P<reason>no matching \S+ found)", "probe"),
    ("kex", r"kex_exchange_identification: (?P<reason>.*)$", "probe"),
    ("dispatch", rf"ssh_dispatch_run_fatal: Connection from {_H}{_PORT}?: (?P<reason>.*?)"
                 r"(?: \[preauth\])?$", "probe"),
    ("not_allowed", rf"User {_U} from {_H} not allowed because (?P<reason>.*)$", "auth_failure"),
    ("root_refused", rf"ROOT LOGIN REFUSED FROM {_H}{_PORT}?(?: \[preauth\])?$",
     "auth_failure"),
    ("refused_connect", r"refused connect from \S* ?\((?P<ip>[^)\s]+)\)$", "probe"),
    ("pam_unix", r"pam_unix\(sshd:auth\): authentication failure; .*?rhost=(?P<ip>\S+)"
                 r"(?:\s+user=(?P<user>\S+))?", "pam"),
    ("pam_old", r"authentication failure; .*?rhost=(?P<ip>\S+)(?:\s+user=(?P<user>\S+))?",
     "pam"),
    ("pam_error", rf"PAM: (?:[Aa]uthentication (?:failure|error)|User not known to the "
                  rf"underlying authentication module) for (?:illegal user )?{_U} from {_H}"
                  r"(?: via \S+)?\s*$", "pam"),
]

#: Recognised sshd messages that report nothing (they repeat or precede a line above, or
#: say nothing about a peer).
NOISE = re.compile(
    r"(?:Postponed |Failed none for |pam_unix\(sshd:(?:session|auth)\): |PAM \d+ more |"
    r"input_userauth_request: |User \S+ not allowed because |Address .* POSSIBLE BREAK-IN|"
    r"SSH: Server;|Server listening on |Received signal |Starting session: |"
    r"Close session: |User child is on pid |Transferred: |PAM: |reverse mapping checking |"
    r"Accepted key |pam_systemd|Disconnecting|Connection closed|Connection reset|"
    r"kex_exchange_identification|Unable to negotiate|Read from socket|"
    r"Timeout before authentication|Exiting on signal|syslogin_perform_logout|"
    r"Received disconnect|Disconnected from|Invalid user|error: |fatal: )"
)
_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*?) ?\]$")
_SOLARIS = re.compile(r"\[ID \d+ [\w.]+\] ")
_KERNEL = re.compile(r"kernel: ?\[ *[\d.]+\]:? ")
#: First characters of the messages that carry a prefix to take off (``[ID ...]``,
#: ``kernel:``, ``error: ``, ``fatal: ``) or a repeat (``message repeated``).
_WRAPPED = frozenset("[kmef")


class _Pattern(NamedTuple):
    """A pattern of :data:`PATTERNS`, compiled."""

    name: str
    match: Callable[[str, int], re.Match[str] | None]
    action: str | None
    fields: Callable[[tuple[str | None, ...]], tuple[str | None, ...]]
    """The groups ``ip``, ``port``, ``user`` (or ``guser``) and ``reason``, from all the
    groups of a match; None for those the pattern does not have."""
    preauth: bool
    """The ``reason`` group holds a final `` [preauth]`` to take off (see :func:`_compile`)."""
    ends: bool
    """The message ends its connection: a close, or a probe that ends it."""


#: The probes that end their connection.
_CLOSING_PROBES = frozenset({"timeout", "no_ident", "bad_version", "banner", "negotiate",
                             "negotiate_kex", "no_matching", "kex", "dispatch"})
#: A reason that runs to the end of the message, but for a final ``[preauth]``.
_REASON_TAIL = r"(?P<reason>.*?)(?: \[preauth\])?$"


def _compile(name: str, text: str, action: str | None) -> _Pattern:
    # The shortest reason before an optional " [preauth]" and the end is the whole rest of
    # the message (the same lines match) less that suffix: the greedy form finds it without
    # trying the end at every character, and the suffix is taken off in _events.
    preauth = text.endswith(_REASON_TAIL)
    if preauth:
        text = text.removesuffix(_REASON_TAIL) + r"(?P<reason>.*)$"
    # A last group that never takes part (its branch fails before it) stands for the
    # groups a pattern does not have: every pattern reads its fields the same way.
    pattern = re.compile(text + "(?:(?!)())?")
    index = pattern.groupindex
    assert not ("user" in index and "guser" in index), name
    never = pattern.groups - 1
    where = [index[field] - 1 if field in index else never
             for field in ("ip", "port", "user" if "user" in index else "guser", "reason")]
    return _Pattern(name, pattern.match, action, operator.itemgetter(*where), preauth,
                    action == "close" or name in _CLOSING_PROBES)


#: The patterns by the first four characters of the message they can match (each starts
#: with a fixed text at least that long), in the order of :data:`PATTERNS`: most messages
#: are tried against one pattern, none against all.
_BY_START: dict[str, tuple[_Pattern, ...]] = {}
for _name, _text, _action in PATTERNS:
    _start = re.match(r"[A-Za-z_ :]*", _text.removeprefix("(?P<reason>"))
    assert _start is not None and len(_start[0]) >= 4, _name
    _key = _start[0][:4]
    _BY_START[_key] = (*_BY_START.get(_key, ()), _compile(_name, _text, _action))
# A PAM failure, made before its attrs would be (SshdParser._events), has no reason.
assert not any(action == "pam" and "<reason>" in text for _, text, action in PATTERNS)
# A message that starts like a pattern carries none of the prefixes of _WRAPPED.
assert not any(key[0] == "[" or key in ("kern", "mess", "erro", "fata") for key in _BY_START)
_NOISE = NOISE.match
#: The common headers (``Nov 23 21:50:37 host prog[123]: message``, the same with an ISO
#: time as rsyslog writes it, and both without the host), read as
#: :func:`portolan.formats.header.split` reads them: the syslog or the ISO timestamp, host
#: (None when absent), program and pid; the message is the rest of the line, and its first
#: four characters (the key of :data:`_BY_START`) are read without a slice of the line.
_FAST = re.compile(
    r"(?:([A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d)|"
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)) "
    r"(?:([^\s\[\]:]+) )?([^\s\[\]:]+)\[(\d+)\]: (?=(.{0,4}))", re.DOTALL
).match
_STAMP = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)").match
_IP_MAX = 64


@dataclass(slots=True)
class _Conn:
    """What one sshd process (one connection) has said so far."""

    start: dt.datetime
    key: str
    """Host and pid of the process."""
    ip: str | None = None
    port: int | None = None
    user: str | None = None
    opened: bool = False
    closed: bool = False
    pam: Event | None = None
    session: str | None = None
    """The session id, once made (see :meth:`SshdParser._session`)."""


class SshdParser:
    """See the module docstring. Options: ``timezone`` of syslog times without an offset
    (an IANA name; default: the local one)."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx
        tz_name = ctx.options.get("timezone")
        self.tz: dt.tzinfo | None = ZoneInfo(str(tz_name)) if tz_name else None
        self.clock = SyslogClock(ctx.now, self.tz)
        self.conns: collections.OrderedDict[str, _Conn] = collections.OrderedDict()
        self.sensor = ctx.sensor
        self.source = ctx.source
        self._held: list[Event] = []
        self._waiting: dict[str, _Conn] = {}
        """Processes with a PAM failure waiting for its ``Failed`` line."""
        self._due = _NEVER
        """No PAM failure is released before this time (it may be earlier than the first
        that is: a failure that stops waiting leaves it as it was); :data:`_EVER` while
        failures of forgotten processes are held: one test per line says whether to look."""
        self._stamps: dict[str, dt.datetime] = {}
        self._proto = Event(ts=dt.datetime.fromtimestamp(0, dt.UTC), sensor=ctx.sensor,
                            source=ctx.source, service="ssh", proto="tcp")
        self._session_base = hashlib.blake2b(
            f"ssh\x1f{ctx.sensor}\x1f".encode("utf-8", "surrogatepass"), digest_size=16)

    def parse(self, line: str) -> list[Event] | None:
        out: list[Event] = []
        return None if self.count_events(line, out) is None else out

    def count_events(self, line: str, out: list[Event] | None = None) -> int | None:
        """How many events :meth:`parse` would answer (None for None), without making them
        unless ``out`` is given (they are added to it); the parser's state changes as with
        :meth:`parse`."""
        # The message is text[pos:]: a slice of the line is made only where it must change.
        fast = _FAST(line)
        if fast is not None:  # the common form, without building a Header
            stamp, iso, host, program, pid, start = fast.groups("")
            if program not in PROGRAMS:
                return 0
            text, pos = line, fast.end()
            ts = self._stamps.get(stamp) if stamp else None
            if ts is None:
                ts = ((self._stamp(stamp) if stamp else parse_iso(iso, self.tz or dt.UTC))
                      or self.ctx.now())
            candidates = _BY_START.get(start)
        else:
            head = split(line, self.clock, self.tz or dt.UTC)
            if head is None:
                return None
            if head.program not in PROGRAMS:
                return 0 if head.program else None
            ts = head.ts or self.ctx.now()
            text, host, pid = head.message, head.host, head.pid
            pos = 0
            candidates = _BY_START.get(text[:4])
        count = 1
        if candidates is None and text.startswith(("error: ", "fatal: "), pos):
            pos += 7  # the common prefixes, taken off without a new string
            candidates = _BY_START.get(text[pos:pos + 4])
        elif candidates is None and text[pos:pos + 1] in _WRAPPED:
            msg = text[pos:]
            if msg.startswith("["):
                msg = _SOLARIS.sub("", msg, count=1)
            elif msg.startswith("kernel:"):
                msg = _KERNEL.sub("", msg, count=1)
            if msg.startswith("message repeated "):
                rm = _REPEATED.match(msg)
                if rm is None:
                    return None
                count, msg = max(1, min(int(rm[1]), 10000)), rm[2]  # "0 times": once
            if msg.startswith(("error: ", "fatal: ")):
                msg = msg[7:]
            text, pos = msg, 0
            candidates = _BY_START.get(msg[:4])
        # Released events go last: a line's own events keep their index (and so their id)
        # whether or not a PAM failure happened to be waiting.
        released = self._release(ts) if ts >= self._due else None
        if candidates is not None:
            for pattern in candidates:
                m = pattern.match(text, pos)
                if m is not None:
                    found = self._events(pattern, m, ts, host, pid, count, out)
                    if not released:
                        return found
                    if out is not None:
                        out += released
                    return found + len(released)
        if _NOISE(text, pos) is None and not released:
            return None
        if not released:
            return 0
        if out is not None:
            out += released
        return len(released)

    def _stamp(self, stamp: str) -> dt.datetime | None:
        """The time of a syslog timestamp, remembered by its text (lines share seconds)."""
        parts = _STAMP(stamp)
        assert parts is not None  # the header pattern let it through
        ts = self.clock(*parts.groups())
        if ts is not None:
            stamps = self._stamps
            if len(stamps) > 4096:
                stamps.clear()
            stamps[stamp] = ts
        return ts

    def _events(self, pattern: _Pattern, m: re.Match[str], ts: dt.datetime, host: str,
                pid: str, count: int, out: list[Event] | None) -> int:
        """The events of a message that ``pattern`` matched, added to ``out`` (only counted
        when it is None): how many."""
        name, _, action, fields, preauth, ends = pattern
        ip, port_text, user, reason = fields(m.groups())
        port = None
        if port_text and len(port_text) <= 5:
            port = int(port_text)
            if port > 65535:
                port = None
        held: Event | None = None
        conn: _Conn | None = None
        if pid:
            key = f"{host}\x1f{pid}"
            conns = self.conns
            conn = conns.get(key)
            if conn is not None and not (conn.closed and ip is not None
                                         and action is not None and action != "close"):
                conns.move_to_end(key)
            else:
                conn = self._new_conn(key, ts)
            if conn.pam is not None:
                if name != "failed":  # else sshd reports the attempt PAM told about
                    held = conn.pam
                conn.pam = None
                self._waiting.pop(key, None)
            if ip is None:
                if conn.closed:  # what a closed connection still says adds nothing
                    return _alone(held, out)
                ip, port = conn.ip, conn.port
            elif conn.ip is None:
                conn.ip, conn.port = ip, port
            if user and not conn.user:
                conn.user = user
        if action is None or not ip:
            return _alone(held, out)
        if action == "close":
            if conn is not None and conn.closed:
                return _alone(held, out)
            action = "disconnect"
        if (name == "failed" or name == "accepted") and m["method"] == "none":
            return _alone(held, out)  # the client asking which methods exist
        attrs: dict[str, Any]
        if action == "pam":
            attrs = {"method": "pam"}  # (no PAM pattern has a reason: see _BY_START)
            event = self._event(ts, "auth_failure", ip, port, user, attrs, conn)
            if conn is None:
                if out is not None:
                    out.append(event)
                return 1 + _alone(held, out)
            conn.pam = event
            self._waiting[conn.key] = conn
            if self._due is not _EVER:
                self._due = min(self._due, _plus_wait(ts))
            return _alone(held, out)
        if conn is not None and (action == "connect" or action == "auth_success"):
            conn.opened = True
        if out is None:  # counted: the same number as below, no event made
            found = count if held is None else count + 1
            if conn is not None and ends:
                if conn.opened and action == "probe":
                    found += 1
                conn.closed = True
            return found
        attrs = {}
        if name == "failed" or name == "accepted":
            method = m["method"]
            attrs["method"] = method[:-4] if method.endswith("/pam") else method
            if name == "failed":
                attrs["valid_user"] = not m["invalid"]
        if reason:
            if preauth:
                reason = reason.removesuffix(" [preauth]")
            if reason:
                attrs["reason"] = clip(reason, 200)
        if name == "root_refused":
            user, attrs["reason"] = "root", "root login refused"
        session = None
        if conn is not None and conn.opened:
            session = conn.session
            if session is None:
                session = conn.session = self._session(conn)
        event = msgspec.structs.replace(  # as in _event
            self._proto, ts=ts, action=action, src_ip=ip[:_IP_MAX], src_port=port,
            user=user if user is None or len(user) <= TEXT_MAX else clip(user),
            session=session, attrs=attrs,
        )
        if name == "connection":
            dst_ip, dst_port = m.group("dst_ip", "dst_port")
            if dst_ip:
                event.dst_ip = dst_ip[:_IP_MAX]
            if dst_port and len(dst_port) <= 5:
                event.dst_port = int(dst_port)
        start = len(out)
        out.append(event)
        if count > 1:
            for _ in range(count - 1):
                out.append(msgspec.structs.replace(event, attrs=dict(attrs)))
        if conn is not None and ends:
            if conn.opened:
                if action == "probe":
                    out.append(self._event(ts, "disconnect", ip, port, conn.user,
                                           {"reason": attrs.get("reason", name)}, conn))
                out[-1].duration = max(0.0, (ts - conn.start).total_seconds())
            conn.closed = True
        if held is not None:
            out.append(held)
        return len(out) - start

    def _event(self, ts: dt.datetime, action: str, ip: str, port: int | None, user: str | None,
               attrs: dict[str, Any], conn: _Conn | None) -> Event:
        session = None
        if conn is not None and conn.opened:
            session = conn.session
            if session is None:
                session = conn.session = self._session(conn)
        # From a prototype that holds what every event of this parser shares: fewer fields
        # to pass than to a new Event, the same event.
        return msgspec.structs.replace(
            self._proto, ts=ts, action=action, src_ip=ip[:_IP_MAX], src_port=port,
            user=user if user is None or len(user) <= TEXT_MAX else clip(user),
            session=session, attrs=attrs,
        )

    def _session(self, conn: _Conn) -> str:
        """The session id of a connection: unique per sensor, host, pid and start
        (``make_id("ssh", sensor, key, start)``, with the hash of the first two made once)."""
        h = self._session_base.copy()
        h.update(f"{conn.key}\x1f{conn.start.isoformat()}".encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def _new_conn(self, key: str, ts: dt.datetime) -> _Conn:
        """A new connection for this sshd process: the process is new, or it closed its
        connection (a reused pid) and now reports a new peer."""
        conns = self.conns
        conns.pop(key, None)
        conn = conns[key] = _Conn(start=ts, key=key)
        if len(conns) > MAX_PROCESSES:
            old_key, old = conns.popitem(last=False)
            if old.pam is not None:
                self._held.append(old.pam)
                self._due = _EVER
                self._waiting.pop(old_key, None)
        return conn

    def _release(self, ts: dt.datetime) -> list[Event]:
        """PAM failures that waited :data:`PAM_WAIT` (of log time) for a ``Failed`` line
        that never came, and those of forgotten processes."""
        out, self._held = self._held, []  # a new list each time: never the held one itself
        due = _NEVER
        waiting = self._waiting
        if waiting:
            limit = ts - PAM_WAIT
            for key, conn in list(waiting.items()):
                pam = conn.pam
                if pam is not None and pam.ts >= limit:  # still waits
                    due = min(due, _plus_wait(pam.ts))
                    continue
                if pam is not None:
                    out.append(pam)
                conn.pam = None
                del waiting[key]
        self._due = due
        return out

    def finish(self) -> list[Event]:
        out, self._held = self._held, []
        out += [c.pam for c in self._waiting.values() if c.pam is not None]
        for conn in self._waiting.values():
            conn.pam = None
        self._waiting.clear()
        self._due = _NEVER
        return out


def _alone(held: Event | None, out: list[Event] | None) -> int:
    """A message that reports nothing itself: only the PAM failure it let go, if any."""
    if held is None:
        return 0
    if out is not None:
        out.append(held)
    return 1


def _plus_wait(ts: dt.datetime) -> dt.datetime:
    """When a PAM failure of time ``ts`` stops waiting (:data:`PAM_WAIT` later)."""
    try:
        return ts + PAM_WAIT
    except OverflowError:  # the last days of year 9999
        return _NEVER


def _make(ctx: ParseContext) -> SshdParser:
    return SshdParser(ctx)


FORMATS.add("sshd", FormatSpec(
    "sshd", "OpenSSH server logs (auth.log, secure, journal, syslog): logins, failures, "
            "sessions, probes", make_parser=_make))
