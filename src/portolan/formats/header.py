"""Syslog and journal line headers: the time, host, program and pid in front of a message.

The forms found in real logs, all handled by :func:`split`:

- BSD syslog (RFC 3164): ``Nov 23 21:50:37 host sshd[123]: message``, with no year (see
  :class:`SyslogClock`), the host sometimes missing, ``[sshd]`` without a pid;
- ISO timestamps (rsyslog's ``RSYSLOG_FileFormat``):
  ``2015-04-16T18:02:50.321974+00:00 host sshd[2716]: message``;
- RFC 5424: ``<38>1 2019-07-08T17:40:16.95-04:00 host sshd 57915 - [sd...] message``;
- either form behind a ``<PRI>`` (what a syslog receiver gets on the wire);
- journal ``short`` output without time: ``host sshd[123]: message``.

Pure functions of the text and the injected clock; nothing here reads the system time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import NamedTuple

MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

_BSD_TS = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.\d+)? ")
_ISO_TS = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) ")
_TAG = re.compile(
    r"(?:(?P<host>[^\s\[\]:]+) )?"
    r"(?:\[(?P<bprog>[^\s\]]+)\]|(?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?)"
    r":? (?P<msg>.*)",
    re.DOTALL,
)
_RFC5424 = re.compile(
    r"1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) \S+ "
    r"(?:-|(?:\[(?:[^\]\\\"]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?: (?P<msg>.*))?$",
    re.DOTALL,
)


class Header(NamedTuple):
    """What stands in front of the message. ``ts`` is None when the line has no time."""

    ts: dt.datetime | None
    host: str
    program: str
    pid: str
    message: str


def parse_iso(text: str, tz: dt.tzinfo) -> dt.datetime | None:
    """An ISO 8601 time as aware UTC; a time without an offset is in ``tz``."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(dt.UTC)


class SyslogClock:
    """Turns ``Mon dd HH:MM:SS`` (no year) into an aware UTC time.

    The year is the one that puts the time closest to "now" without putting it more than
    a day in the future: a ``Dec 31`` line read on the 1st of January belongs to last
    year, a ``Jan 1`` line read the same day to this one. So a file that runs across New
    Year is dated right, whether it is tailed live or read later. Results are cached by
    the text of the timestamp (many lines share a second).
    """

    def __init__(self, now: Callable[[], dt.datetime], tz: dt.tzinfo | None = None) -> None:
        self.now = now
        self.tz = tz
        self._cache: dict[str, dt.datetime | None] = {}

    def __call__(self, month: str, day: str, hh: str, mm: str, ss: str) -> dt.datetime | None:
        key = f"{month}{day}{hh}{mm}{ss}"
        cache = self._cache
        found = cache.get(key, False)
        if found is not False:
            return found  # type: ignore[return-value]
        if len(cache) > 4096:
            cache.clear()
        cache[key] = value = self._compute(month, day, hh, mm, ss)
        return value

    def _compute(self, month: str, day: str, hh: str, mm: str, ss: str) -> dt.datetime | None:
        number = MONTHS.get(month)
        if number is None:
            return None
        now = self.now()
        local_now = now.astimezone(self.tz) if self.tz is not None else now.astimezone()
        for year in range(local_now.year + 1, local_now.year - 5, -1):
            try:
                naive = dt.datetime(year, number, int(day), int(hh), int(mm), int(ss))
            except ValueError:  # Feb 29 in a year without one
                continue
            value = naive.replace(tzinfo=self.tz) if self.tz is not None else naive.astimezone()
            value = value.astimezone(dt.UTC)
            if value <= now + dt.timedelta(days=1):
                return value
        return None


#: The most common form, in one match: ``Nov 23 21:50:37 host prog[123]: message``.
_FAST = re.compile(
    r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d) ([^\s\[\]:]+) "
    r"([^\s\[\]:]+)\[(\d+)\]: (.*)", re.DOTALL)


def split(line: str, clock: SyslogClock, tz: dt.tzinfo = dt.UTC) -> Header | None:
    """The header of a syslog or journal line, or None when it has none."""
    fast = _FAST.match(line)
    if fast is not None:
        month, day, hh, mm, ss, host, prog, pid, msg = fast.groups()
        return Header(clock(month, day, hh, mm, ss), host, prog, pid, msg)
    rest = line
    if rest.startswith("<"):
        end = rest.find(">", 1, 5)
        if end < 0 or not rest[1:end].isdigit():
            return None
        rest = rest[end + 1:]
        if rest.startswith("1 "):
            m5 = _RFC5424.match(rest)
            if m5 is None:
                return None
            ts = parse_iso(m5["ts"], tz) if m5["ts"] != "-" else None
            pid = m5["pid"] if m5["pid"] != "-" else ""
            return Header(ts, m5["host"], m5["app"], pid, m5["msg"] or "")
    ts = None
    m = _BSD_TS.match(rest)
    if m is not None:
        ts = clock(*m.groups())
        rest = rest[m.end():]
    elif rest[:4].isdigit():
        mi = _ISO_TS.match(rest)
        if mi is not None:
            ts = parse_iso(mi[1], tz)
            rest = rest[mi.end():]
    mt = _TAG.match(rest)
    if mt is None or (ts is None and mt["pid"] is None):
        return None  # a line with neither a time nor a pid is not a log line (a comment)
    return Header(ts, mt["host"] or "", mt["prog"] or mt["bprog"], mt["pid"] or "", mt["msg"])
