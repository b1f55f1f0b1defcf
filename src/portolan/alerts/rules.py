"""Alert rules: what in the stream of events is worth a message.

Every rule has the same filters (``match``, ``regex``, ``cidr`` and their ``exclude``
forms, on any event field or ``attrs.KEY``); its kind decides what passes on from there:

- ``match``: every event that passes the filters;
- ``first_seen``: the first time a value of ``field`` (a country, an ASN, an address) is
  seen, per service; remembered across restarts in :class:`~portolan.alerts.state.State`;
- ``login_after_failures``: a successful login from an address that failed before;
- ``spyserver``: a spyserver client connecting or leaving, with instance, place, client
  and duration (the old spyserver monitor's Slack messages);
- ``rate``: more than ``threshold`` events from one value of ``field`` within ``window``.

A rule turns an event into a :class:`Hit`: its rule, its *subject* (what throttling counts
per: an address, a country) and its line of text, with addresses shown through the
privacy mode and attacker text made harmless (:mod:`portolan.alerts.message`). Rules are
synchronous and quick; they run in the alert sink's task, never in the pipeline's path.
"""

from __future__ import annotations

import collections
import datetime as dt
import ipaddress
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from portolan.alerts.message import duration, render, untrusted
from portolan.alerts.settings import (
    ATTRS_PREFIX,
    RuleSettings,
    as_list,
    networks,
    patterns,
    seconds,
)
from portolan.alerts.state import SeenValues
from portolan.enrich.privacy import Privacy
from portolan.event import Event

FAILURE_ACTIONS: Final = frozenset({"auth_failure", "invalid_user"})
SUCCESS_ACTIONS: Final = frozenset({"auth_success"})

DEFAULT_LINES: Final[dict[str, str]] = {
    "match": "{rule}: {service} {action} from {src_ip} ({place}){user_part}",
    "first_seen": "First {field} {value} on {service}: {src_ip} ({place})",
    "login_after_failures": "Login as {user} on {service} from {src_ip} ({place}) "
                            "after {count} failures",
    "spyserver_connect": "Open {src_ip}#{instance} {place} running {client}",
    "spyserver_disconnect": "Close {src_ip}#{instance} {place} @{duration}",
    "rate": "{count} events from {field} {value} within {window} (last: {service} "
            "{action} from {src_ip}, {place})",
}

#: Every placeholder a rule's ``message`` may use.
PLACEHOLDERS: Final = frozenset({
    "rule", "ts", "src_ip", "dst_ip", "src_port", "dst_port", "place", "city", "country",
    "country_name", "asn", "as_org", "service", "action", "sensor", "source", "user",
    "user_part", "instance", "client", "software", "os", "duration", "path", "field",
    "value", "count", "window", "reason",
})


class Hit:
    """One event that a rule alerts on. Its line is only rendered when asked for (most
    hits of a busy rule are throttled, and never need one)."""

    __slots__ = ("_line", "_make", "label", "rule", "subject", "ts")

    def __init__(self, rule: str, subject: str, line: str | Callable[[], str],
                 ts: dt.datetime, label: str = "") -> None:
        self.rule = rule
        self.subject = subject
        """What throttling counts per (an address, a country, a session)."""
        self.ts = ts
        self.label = label
        """The subject as it may be shown (privacy applied, made safe), for the digest."""
        self._line = line if isinstance(line, str) else None
        self._make = line if not isinstance(line, str) else None

    @property
    def line(self) -> str:
        """The message line, safe to send."""
        if self._line is None:
            assert self._make is not None
            self._line = self._make()
        return self._line


def field_value(event: Event, name: str) -> Any:
    if name.startswith(ATTRS_PREFIX):
        return event.attrs.get(name[len(ATTRS_PREFIX):])
    return getattr(event, name, None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Filter:
    """The filters every rule shares; :meth:`passes` says whether an event is for it."""

    def __init__(self, rule: RuleSettings) -> None:
        def equal(table: dict[str, Any]) -> list[tuple[str, frozenset[str]]]:
            return [(f, frozenset(t for v in as_list(val) if (t := _text(v)) is not None))
                    for f, val in table.items()]

        self.match = equal(rule.match)
        self.exclude = equal(rule.exclude)
        self.regex = [(f, patterns(v, f)) for f, v in rule.regex.items()]
        self.exclude_regex = [(f, patterns(v, f)) for f, v in rule.exclude_regex.items()]
        self.cidr = [(f, networks(v, f)) for f, v in rule.cidr.items()]
        self.exclude_cidr = [(f, networks(v, f)) for f, v in rule.exclude_cidr.items()]

    def passes(self, event: Event) -> bool:
        for name, allowed in self.match:
            if _text(field_value(event, name)) not in allowed:
                return False
        for name, found in self.regex:
            text = _text(field_value(event, name))
            if text is None or not any(p.search(text) for p in found):
                return False
        for name, nets in self.cidr:
            if not _in_networks(field_value(event, name), nets):
                return False
        for name, denied in self.exclude:
            if _text(field_value(event, name)) in denied:
                return False
        for name, found in self.exclude_regex:
            text = _text(field_value(event, name))
            if text is not None and any(p.search(text) for p in found):
                return False
        return not any(_in_networks(field_value(event, name), nets)
                       for name, nets in self.exclude_cidr)


def _in_networks(value: Any, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not isinstance(value, str):
        return False
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in nets)


class Rule:
    """A configured rule of some kind: filters, then :meth:`examine`."""

    kind = "match"

    def __init__(self, name: str, settings: RuleSettings, privacy: Privacy,
                 limit: int) -> None:
        self.name = name
        self.settings = settings
        self.privacy = privacy
        self.limit = limit
        self.filter = Filter(settings)
        self.window = seconds(settings.window, "window")

    def check(self, event: Event) -> Hit | None:
        """A hit when the event is for this rule and worth an alert."""
        if not self.filter.passes(event):
            return None
        return self.examine(event)

    def examine(self, event: Event) -> Hit | None:
        return self.hit(event, event.src_ip or "", self.shown_ip(event))

    def values(self, event: Event, **extra: str) -> Mapping[str, str]:
        """Every placeholder a template may use, each made safe when it is read."""
        return _Values(self, event, extra)

    def line(self, event: Event, default: str, **extra: str) -> str:
        template = self.settings.message or DEFAULT_LINES[default]
        return render(template, self.values(event, **extra))

    def hit(self, event: Event, subject: str, label: str, default: str | None = None,
            **extra: str) -> Hit:
        kind = default or self.kind
        return Hit(self.name, subject, lambda: self.line(event, kind, **extra), event.ts,
                   label)

    def shown_ip(self, event: Event) -> str:
        return untrusted(self.privacy.address(event.src_ip) or "")


def _place(rule: Rule, event: Event) -> str:
    parts = (event.city, event.country_name or event.country)
    return ", ".join(untrusted(p, 60) for p in parts if p) or "unknown"


def _user_part(rule: Rule, event: Event) -> str:
    return f", user {untrusted(event.user)}" if event.user else ""


def _attr(key: str, limit: int = 80) -> Callable[[Rule, Event], str]:
    return lambda rule, event: untrusted(event.attrs.get(key) or "?", limit)


_VALUES: Final[dict[str, Callable[[Rule, Event], str]]] = {
    "rule": lambda r, e: r.name,
    "ts": lambda r, e: e.ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    "src_ip": lambda r, e: untrusted(r.privacy.address(e.src_ip) or "?"),
    "dst_ip": lambda r, e: untrusted(r.privacy.address(e.dst_ip) or "?"),
    "src_port": lambda r, e: str(e.src_port) if e.src_port is not None else "?",
    "dst_port": lambda r, e: str(e.dst_port) if e.dst_port is not None else "?",
    "place": _place,
    "city": lambda r, e: untrusted(e.city or "?", 60),
    "country": lambda r, e: untrusted(e.country or "?", 8),
    "country_name": lambda r, e: untrusted(e.country_name or e.country or "?", 60),
    "asn": lambda r, e: f"AS{e.asn}" if e.asn is not None else "AS?",
    "as_org": lambda r, e: untrusted(e.as_org or "?", 60),
    "service": lambda r, e: untrusted(e.service or "?", 32),
    "action": lambda r, e: untrusted(e.action or "?", 32),
    "sensor": lambda r, e: untrusted(e.sensor or "?", 60),
    "source": lambda r, e: untrusted(e.source or "?", 60),
    "user": lambda r, e: untrusted(e.user) if e.user else "?",
    "user_part": _user_part,
    "instance": _attr("instance", 60),
    "client": _attr("client"),
    "software": _attr("software", 40),
    "os": _attr("os", 40),
    "duration": lambda r, e: duration(e.duration),
    "path": _attr("path"),
    "reason": _attr("reason", 40),
}


class _Values(Mapping[str, str]):
    """The placeholders of one hit, each computed when a template reads it."""

    def __init__(self, rule: Rule, event: Event, extra: dict[str, str]) -> None:
        self.rule = rule
        self.event = event
        self.extra = extra

    def __getitem__(self, name: str) -> str:
        if name in self.extra:
            return self.extra[name]
        if name in _VALUES:
            return _VALUES[name](self.rule, self.event)
        if name in PLACEHOLDERS:
            return "?"
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(PLACEHOLDERS | self.extra.keys())

    def __len__(self) -> int:
        return len(PLACEHOLDERS | self.extra.keys())


class FirstSeenRule(Rule):
    """The first time a value of ``field`` is seen (per service)."""

    kind = "first_seen"

    def __init__(self, name: str, settings: RuleSettings, privacy: Privacy, limit: int,
                 seen: SeenValues) -> None:
        super().__init__(name, settings, privacy, limit)
        self.field = settings.field or "country"
        self.seen = seen

    def examine(self, event: Event) -> Hit | None:
        value = _text(field_value(event, self.field))
        if value is None or value == "":
            return None
        scope = event.service if self.settings.per_service else ""
        if not self.seen.add(scope, value, event.ts.timestamp()):
            return None
        shown = value
        if self.field in ("src_ip", "dst_ip"):
            shown = self.privacy.address(value) or value
        elif self.field == "asn":
            shown = f"AS{value}" + (f" {event.as_org}" if event.as_org else "")
        elif self.field == "country" and event.country_name:
            shown = f"{value} {event.country_name}"
        return self.hit(event, f"{scope}/{value}", untrusted(shown),
                        field=untrusted(self.field, 40), value=untrusted(shown))


class _Recent:
    """Bounded, least recently used first: key -> times of recent events."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def add(self, key: str, ts: float, window: float) -> int:
        times = self.items.pop(key, None)
        if times is None:
            times = collections.deque()
        times.append(ts)
        while times and times[0] <= ts - window:
            times.popleft()
        self.items[key] = times
        while len(self.items) > self.limit:
            self.items.popitem(last=False)
        return len(times)

    def count(self, key: str, ts: float, window: float) -> int:
        times = self.items.get(key)
        if not times:
            return 0
        return sum(1 for t in times if t > ts - window)

    def forget(self, key: str) -> None:
        self.items.pop(key, None)


class LoginAfterFailuresRule(Rule):
    """A successful login from an address that failed ``failures`` times before."""

    kind = "login_after_failures"

    def __init__(self, name: str, settings: RuleSettings, privacy: Privacy,
                 limit: int) -> None:
        super().__init__(name, settings, privacy, limit)
        self.failures = _Recent(limit)

    def examine(self, event: Event) -> Hit | None:
        if not event.src_ip:
            return None
        key = f"{event.service}/{event.src_ip}"
        ts = event.ts.timestamp()
        if event.action in FAILURE_ACTIONS:
            self.failures.add(key, ts, self.window)
            return None
        if event.action not in SUCCESS_ACTIONS:
            return None
        count = self.failures.count(key, ts, self.window)
        self.failures.forget(key)
        if count < self.settings.failures:
            return None
        return self.hit(event, event.src_ip, self.shown_ip(event), count=str(count))


class SpyserverRule(Rule):
    """A spyserver client connecting or leaving (the old monitor's Open/Close lines)."""

    kind = "spyserver"

    def __init__(self, name: str, settings: RuleSettings, privacy: Privacy,
                 limit: int) -> None:
        super().__init__(name, settings, privacy, limit)
        self.actions = frozenset(settings.actions)
        self.opened: collections.OrderedDict[str, float] = collections.OrderedDict()

    def examine(self, event: Event) -> Hit | None:
        if event.service != "spyserver" or event.action not in ("connect", "disconnect"):
            return None
        instance = str(event.attrs.get("instance") or "")
        key = event.session or f"{instance}/{event.src_ip}:{event.src_port}"
        ts = event.ts.timestamp()
        extra: dict[str, str] = {}
        if event.action == "connect":
            self.opened[key] = ts
            while len(self.opened) > self.limit:
                self.opened.popitem(last=False)
        else:
            started = self.opened.pop(key, None)
            if event.duration is None and started is not None:
                extra["duration"] = duration(max(0.0, ts - started))
        if event.action not in self.actions:
            return None
        subject = f"{event.action} {event.src_ip}#{instance}"
        label = f"{self.shown_ip(event)}#{untrusted(instance, 60)}"
        return self.hit(event, subject, label, f"spyserver_{event.action}", **extra)


class RateRule(Rule):
    """More than ``threshold`` events from one value of ``field`` within ``window``."""

    kind = "rate"

    def __init__(self, name: str, settings: RuleSettings, privacy: Privacy,
                 limit: int) -> None:
        super().__init__(name, settings, privacy, limit)
        self.field = settings.field or "src_ip"
        self.recent = _Recent(limit)

    def examine(self, event: Event) -> Hit | None:
        value = _text(field_value(event, self.field))
        if value is None or value == "":
            return None
        count = self.recent.add(value, event.ts.timestamp(), self.window)
        if count <= self.settings.threshold:
            return None
        self.recent.forget(value)
        shown = value
        if self.field in ("src_ip", "dst_ip"):
            shown = self.privacy.address(value) or value
        elif self.field == "asn":
            shown = f"AS{value}" + (f" {event.as_org}" if event.as_org else "")
        return self.hit(event, value, untrusted(shown), count=str(count),
                        field=untrusted(self.field, 40), value=untrusted(shown),
                        window=duration(self.window))


MakeRule = Callable[[str, RuleSettings, Privacy, int], Rule]
_PLAIN: Final[dict[str, MakeRule]] = {
    "match": Rule,
    "login_after_failures": LoginAfterFailuresRule,
    "spyserver": SpyserverRule,
    "rate": RateRule,
}


def build(name: str, settings: RuleSettings, privacy: Privacy, limit: int,
          seen: Callable[[str], SeenValues]) -> Rule:
    """The rule for ``settings`` (``seen(name)`` gives a first_seen rule its memory)."""
    if settings.kind == "first_seen":
        return FirstSeenRule(name, settings, privacy, limit, seen(name))
    return _PLAIN[settings.kind](name, settings, privacy, limit)
