"""User-defined formats: a regex with named groups, declared in the config.

::

    [formats.myapp]
    regex = 'login (?P<outcome>failed|ok) for (?P<user>\\S+) from (?P<src_ip>[\\d.]+)'
    service = "myapp"
    action = "auth_failure"

Groups named like :class:`~portolan.event.Event` fields fill them (``src_ip``,
``src_port``, ``dst_ip``, ``dst_port``, ``user``, ``session``, ``action``, ``service``);
``ts`` is the time (ISO 8601, syslog ``Mon dd HH:MM:SS``, Unix seconds, or
``time_format``); every other named group goes to ``attrs``. Lines the regex does not
find are unmatched (``portolan parse FILE --format myapp`` lists them). The format is
registered under its name when the config is loaded; a regex that does not compile stops
start-up with the file, the key and the error.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portolan import config as config_mod
from portolan.config import Config, ConfigError, NamedTables, Section
from portolan.event import Event, clip
from portolan.formats.base import FORMATS, FormatSpec, LineParser, ParseContext
from portolan.formats.header import SyslogClock, parse_iso

_FIELDS = ("src_ip", "src_port", "dst_ip", "dst_port", "user", "session", "action", "service")
_PORTS = ("src_port", "dst_port")
_BSD = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)$")


class UserFormat(Section):
    """A log format of your own (``[formats.NAME]``): a regex with named groups. Groups
    named ``src_ip``, ``src_port``, ``dst_ip``, ``dst_port``, ``user``, ``session``,
    ``action``, ``service`` fill those fields; ``ts`` is the time; other groups go to
    ``attrs``. Use it as ``format = "NAME"`` in a source or ``--format NAME``."""

    regex: str = ""
    """The pattern (Python syntax), searched in each line."""
    service: str = ""
    """Service of the events (``ssh``, ``http``, ``myapp``...) unless a ``service`` group
    says otherwise."""
    action: str = "connect"
    """Action of the events unless an ``action`` group says otherwise."""
    time_format: str = ""
    """``strptime`` format of the ``ts`` group; empty: ISO 8601, syslog or Unix seconds."""
    timezone: str = ""
    """Time zone of times written without one (an IANA name); empty: UTC."""
    summary: str = ""
    """One line said about the format in ``portolan parse --list``."""


class UserParser(LineParser):
    """Parses lines with one :class:`UserFormat`."""

    def __init__(self, ctx: ParseContext, spec: UserFormat, pattern: re.Pattern[str],
                 tz: dt.tzinfo) -> None:
        super().__init__(ctx)
        self.spec = spec
        self.pattern = pattern
        self.tz = tz
        self.clock = SyslogClock(ctx.now, tz)
        self.extra = [g for g in pattern.groupindex if g not in _FIELDS and g != "ts"]

    def parse(self, line: str) -> list[Event] | None:
        m = self.pattern.search(line)
        if m is None:
            return None
        g = m.groupdict()
        ts = self._time(g.get("ts"))
        if ts is None:
            self.ctx.counters[f"{self.ctx.source}: bad time"] += 1
            return None
        fields: dict[str, Any] = {}
        for name in _FIELDS:
            value = g.get(name)
            if value is None:
                continue
            if name in _PORTS:
                if not value.isdigit() or len(value) > 5 or int(value) > 65535:
                    continue
                fields[name] = int(value)
            elif name in ("src_ip", "dst_ip", "action", "service"):
                fields[name] = value[:64]
            else:
                fields[name] = clip(value, 256 if name == "session" else 1024)
        attrs = {k: clip(g[k], 1024) for k in self.extra if g.get(k) is not None}
        fields.setdefault("action", self.spec.action)
        fields.setdefault("service", self.spec.service)
        return [Event(ts=ts, sensor=self.ctx.sensor, source=self.ctx.source, attrs=attrs,
                      **fields)]

    def _time(self, text: str | None) -> dt.datetime | None:
        if text is None:
            return self.ctx.now()
        if self.spec.time_format:
            try:
                value = dt.datetime.strptime(text, self.spec.time_format)
            except ValueError:
                return None
            if value.tzinfo is None:
                value = value.replace(tzinfo=self.tz)
            return value.astimezone(dt.UTC)
        if text.isdigit() or text.replace(".", "", 1).isdigit():
            try:
                return dt.datetime.fromtimestamp(float(text), dt.UTC)
            except (ValueError, OverflowError, OSError):
                return None
        bsd = _BSD.match(text)
        if bsd is not None:
            return self.clock(*bsd.groups())
        return parse_iso(text, self.tz)


class _Maker:
    """A parser factory for one user-defined format (and the mark of one)."""

    def __init__(self, spec: UserFormat, pattern: re.Pattern[str], tz: dt.tzinfo) -> None:
        self.spec = spec
        self.pattern = pattern
        self.tz = tz

    def __call__(self, ctx: ParseContext) -> UserParser:
        return UserParser(ctx, self.spec, self.pattern, self.tz)


def register(config: Config) -> None:
    """Load hook: every ``[formats.NAME]`` becomes the format NAME (replacing one that an
    earlier config registered; a built-in format cannot be replaced)."""
    where = str(config.path) if config.path else "configuration"
    tables: dict[str, UserFormat] = config.sections.get("formats", {})
    for name, spec in tables.items():
        key = f"formats.{name}"
        if not spec.regex:
            raise ConfigError(f"{where}: {key}.regex: missing; give a regex with named groups")
        try:
            pattern = re.compile(spec.regex)
        except re.error as exc:
            raise ConfigError(f"{where}: {key}.regex: not a valid regex: {exc}") from None
        if not pattern.groupindex:
            raise ConfigError(f"{where}: {key}.regex: has no named group; name what it "
                              "captures, e.g. (?P<src_ip>\\S+)")
        try:
            tz: dt.tzinfo = ZoneInfo(spec.timezone) if spec.timezone else dt.UTC
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{where}: {key}.timezone: unknown time zone "
                              f"{spec.timezone!r}; use an IANA name like Europe/Paris") from None
        if name in FORMATS:
            if not isinstance(FORMATS.get(name).make_parser, _Maker):
                raise ConfigError(f"{where}: {key}: {name!r} is a built-in format; "
                                  "choose another name")
            FORMATS.remove(name)
        summary = spec.summary or f"user-defined ({where})"
        FORMATS.add(name, FormatSpec(name, summary, make_parser=_Maker(spec, pattern, tz)))


config_mod.SECTIONS.add("formats", NamedTables(UserFormat))
if register not in config_mod.LOAD_HOOKS:
    config_mod.LOAD_HOOKS.append(register)
