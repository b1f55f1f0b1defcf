"""The ``[alerts]`` table: channels, rules, throttling, quiet hours and the daily digest.

Channels are Apprise URLs by name (``[alerts.channels]``); rules are named tables
(``[alerts.rules.NAME]``), each of one :data:`KINDS`. Everything is checked when the config
is loaded (a load hook), so a misspelt field, a bad regex, CIDR, time or channel name stops
start-up with the file, the key and what is allowed. ``docs/alerts.md`` is the user's guide.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from portolan.config import LOAD_HOOKS, SECTIONS, Config, ConfigError, Section
from portolan.event import FIELDS

#: The kinds of rule, and what each one alerts on.
KINDS: Final[dict[str, str]] = {
    "match": "every event that passes the rule's filters",
    "first_seen": "the first time a value of `field` (country, asn, src_ip...) is seen, "
                  "per service",
    "login_after_failures": "a successful login from an address that failed `failures` "
                            "times within `window` before",
    "spyserver": "a spyserver client connecting or leaving (instance, place, duration)",
    "rate": "more than `threshold` events from one value of `field` (src_ip, asn...) "
            "within `window`",
}

#: Fields a rule may name besides the Event's own: ``attrs.KEY``.
ATTRS_PREFIX: Final = "attrs."
#: Event fields that hold addresses (the ones ``cidr`` filters apply to).
ADDRESS_FIELDS: Final = ("src_ip", "dst_ip")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")

Duration = int | float | str
Values = str | int | float | bool | list[str | int | float | bool]


class RuleSettings(Section):
    """One alert rule: ``[alerts.rules.NAME]``."""

    kind: str = "match"
    """What the rule looks for: ``match``, ``first_seen``, ``login_after_failures``,
    ``spyserver`` or ``rate``."""
    enabled: bool = True
    """Set false to keep a rule in the file without running it."""
    channels: list[str] = msgspec.field(default_factory=list)
    """Names of ``[alerts.channels]`` to notify; empty: every channel."""
    match: dict[str, Values] = msgspec.field(default_factory=dict)
    """Field = value (or list of values, any of which matches). Fields are the event's
    (``service``, ``action``, ``user``, ``country``, ``asn``...) or ``attrs.KEY``."""
    regex: dict[str, str | list[str]] = msgspec.field(default_factory=dict)
    """Field = regular expression (searched, case-sensitive; ``(?i)`` for insensitive)."""
    cidr: dict[str, str | list[str]] = msgspec.field(default_factory=dict)
    """Address field (``src_ip``, ``dst_ip``) = network(s) it must be in."""
    exclude: dict[str, Values] = msgspec.field(default_factory=dict)
    """Field = value(s) that make the rule ignore an event."""
    exclude_regex: dict[str, str | list[str]] = msgspec.field(default_factory=dict)
    """Field = regular expression(s) that make the rule ignore an event."""
    exclude_cidr: dict[str, str | list[str]] = msgspec.field(default_factory=dict)
    """Address field = network(s) whose events the rule ignores (your own networks)."""
    field: str = ""
    """``first_seen``: what is new (``country`` by default, ``asn``, ``src_ip``, any
    field). ``rate``: what is counted (``src_ip`` by default, ``asn``, ``network``...)."""
    per_service: bool = True
    """``first_seen``: count first sightings per service (a country new to SSH alerts even
    when HTTP saw it before)."""
    failures: int = 3
    """``login_after_failures``: failed logins from the address needed before a success
    alerts."""
    window: Duration = "1h"
    """``login_after_failures`` and ``rate``: how far back to look (``90s``, ``10m``,
    ``2h``, ``1d`` or seconds)."""
    threshold: int = 100
    """``rate``: alert when one value has more events than this within ``window``."""
    actions: list[str] = msgspec.field(default_factory=lambda: ["connect", "disconnect"])
    """``spyserver``: which of ``connect`` and ``disconnect`` alert."""
    message: str = ""
    """The alert's line, with ``{field}`` placeholders (``{src_ip}``, ``{place}``,
    ``{instance}``, ``{client}``, ``{duration}``, ``{user}``, ``{service}``, ``{rule}``,
    ``{value}``, ``{count}``...); empty: the kind's own line."""
    throttle: Duration | None = None
    """At most one alert per subject (address, country...) within this time; the rest are
    counted for the digest. Not set: ``[alerts] throttle``."""
    quiet_hours: bool = True
    """Hold this rule's alerts during ``[alerts] quiet_hours`` (false: always send)."""
    digest_only: bool = False
    """Send nothing at once; only count the rule's hits in the daily digest."""


class AlertsSection(Section):
    """Alerts: rules that watch the events, and the channels they notify (Apprise)."""

    enabled: bool = True
    """Run the alerts when rules and channels are configured."""
    channels: dict[str, str] = msgspec.field(default_factory=dict)
    """Channels by name, each an Apprise URL: ``slack = "slack://T/B/TOKEN"``,
    ``ops = "mailtos://user:pass@example.org"``, ``hook = "json://host/path"``... (secrets
    may come from the environment: ``PORTOLAN_ALERTS__CHANNELS__SLACK``)."""
    rules: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """Rules by name, one table each: ``[alerts.rules.NAME]``, or one line each:
    ``rules.sdr = { kind = "spyserver" }``. Keys: see docs/alerts.md."""
    title: str = "Portolan"
    """Title of every notification (channels that have titles)."""
    max_age: Duration = "1h"
    """Events older than this (by their own time) alert nobody: importing old logs does
    not flood the channels, though ``first_seen`` rules still learn from them. 0: no
    limit."""
    throttle: Duration = "10m"
    """At most one alert per rule and subject (address, country...) within this time."""
    group_window: Duration = "30s"
    """Alerts of one rule within this time go out as one message."""
    group_max: int = 20
    """Most lines in one message; the rest are summed up as "and N more"."""
    quiet_hours: str = ""
    """``22:00-07:00``: alerts are held during these hours and sent as one summary when
    they end. Empty: no quiet hours."""
    timezone: str = "UTC"
    """Time zone of ``quiet_hours`` and ``digest_time`` (``Europe/Berlin``...)."""
    digest_time: str = ""
    """``08:00``: a daily digest of every rule's hits (sent, throttled, held) at this time.
    Empty: no digest."""
    retries: int = 5
    """Further tries of a delivery that failed, with back-off doubling from 1 s."""
    retry_max: Duration = "5m"
    """Longest wait between two tries."""
    queue_size: int = 1000
    """Messages that may wait for a slow channel; beyond, new ones are dropped (counted)."""
    state_size: int = 100000
    """Most values remembered per ``first_seen`` rule (least recently seen forgotten
    first) and most addresses tracked by ``rate`` and ``login_after_failures`` rules."""
    shutdown_grace: Duration = "10s"
    """On stop, how long pending messages may take to go out before they are given up."""


SECTIONS.add("alerts", AlertsSection)


def seconds(value: Duration, where: str) -> float:
    """A duration (``90``, ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``) in seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a duration; use 90s, 10m, 2h, 1d")
    if isinstance(value, (int, float)):
        result = float(value)
    else:
        found = _DURATION.match(value)
        if not found:
            raise ConfigError(f"{where}: {value!r} is not a duration; use 90s, 10m, 2h, 1d")
        result = float(found[1]) * _UNITS[found[2]]
    if result < 0:
        raise ConfigError(f"{where}: {value!r} is negative")
    return result


def clock(text: str, where: str) -> dt.time:
    """``HH:MM`` as a time of day."""
    found = _CLOCK.match(text.strip())
    if not found:
        raise ConfigError(f"{where}: {text!r} is not a time of day; use HH:MM like 07:30")
    return dt.time(int(found[1]), int(found[2]))


@dataclass(frozen=True)
class QuietHours:
    """A daily span of local time (may wrap midnight: 22:00-07:00)."""

    start: dt.time
    end: dt.time

    def contains(self, local: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def quiet_hours(text: str, where: str) -> QuietHours | None:
    if not text.strip():
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ConfigError(f"{where}: {text!r} is not a span; use HH:MM-HH:MM like 22:00-07:00")
    span = QuietHours(clock(start, where), clock(end, where))
    if span.start == span.end:
        raise ConfigError(f"{where}: {text!r} is empty (start equals end)")
    return span


def timezone(name: str, where: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}: unknown time zone {name!r}; use an IANA name like UTC or Europe/Berlin"
        ) from None


def check_field(name: str, where: str) -> str:
    """A field a rule may name: one of the event's, or ``attrs.KEY``."""
    if name in FIELDS and name != "payload":
        return name
    if name.startswith(ATTRS_PREFIX) and len(name) > len(ATTRS_PREFIX):
        return name
    allowed = ", ".join(f for f in FIELDS if f != "payload")
    raise ConfigError(f"{where}: unknown field {name!r}; allowed: {allowed}, or attrs.KEY")


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def networks(value: str | list[str], where: str) -> list[ipaddress.IPv4Network
                                                          | ipaddress.IPv6Network]:
    out = []
    for text in as_list(value):
        try:
            out.append(ipaddress.ip_network(str(text), strict=False))
        except ValueError:
            raise ConfigError(
                f"{where}: {text!r} is not a network; use CIDR like 203.0.113.0/24 or 2001:db8::/32"
            ) from None
    return out


def patterns(value: str | list[str], where: str) -> list[re.Pattern[str]]:
    out = []
    for text in as_list(value):
        try:
            out.append(re.compile(str(text)))
        except re.error as exc:
            raise ConfigError(f"{where}: {text!r} is not a valid regular expression: {exc}") \
                from None
    return out


def parse_rules(section: AlertsSection, where: str) -> dict[str, RuleSettings]:
    """Every rule of the section, validated (:class:`ConfigError` names the key)."""
    from portolan.config import _convert

    rules: dict[str, RuleSettings] = {}
    for name, table in section.rules.items():
        prefix = f"alerts.rules.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {prefix}: must be a table ([{prefix}])")
        rule = _convert(table, RuleSettings, where, prefix)
        _check_rule(rule, section, where, prefix)
        rules[name] = rule
    return rules


def _check_rule(rule: RuleSettings, section: AlertsSection, where: str, prefix: str) -> None:
    if rule.kind not in KINDS:
        raise ConfigError(
            f"{where}: {prefix}.kind: {rule.kind!r} is not allowed; "
            f"allowed: {', '.join(KINDS)}"
        )
    for channel in rule.channels:
        if channel not in section.channels:
            known = ", ".join(section.channels) or "none (add [alerts.channels])"
            raise ConfigError(
                f"{where}: {prefix}.channels: no channel {channel!r}; known: {known}"
            )
    for key in ("match", "exclude", "regex", "exclude_regex", "cidr", "exclude_cidr"):
        table: dict[str, Any] = getattr(rule, key)
        for name, value in table.items():
            check_field(name, f"{where}: {prefix}.{key}")
            if key.endswith("regex"):
                patterns(value, f"{where}: {prefix}.{key}.{name}")
            elif key.endswith("cidr"):
                if name not in ADDRESS_FIELDS:
                    raise ConfigError(
                        f"{where}: {prefix}.{key}: {name!r} is not an address field; "
                        f"allowed: {', '.join(ADDRESS_FIELDS)}"
                    )
                networks(value, f"{where}: {prefix}.{key}.{name}")
    if rule.field:
        check_field(rule.field, f"{where}: {prefix}.field")
    seconds(rule.window, f"{where}: {prefix}.window")
    if rule.throttle is not None:
        seconds(rule.throttle, f"{where}: {prefix}.throttle")
    if rule.failures < 1:
        raise ConfigError(f"{where}: {prefix}.failures: must be at least 1")
    if rule.threshold < 1:
        raise ConfigError(f"{where}: {prefix}.threshold: must be at least 1")
    for action in rule.actions:
        if action not in ("connect", "disconnect"):
            raise ConfigError(
                f"{where}: {prefix}.actions: {action!r} is not allowed; "
                "allowed: connect, disconnect"
            )
    from portolan.alerts.message import check_template
    from portolan.alerts.rules import PLACEHOLDERS

    check_template(rule.message, f"{where}: {prefix}.message", PLACEHOLDERS)


def check_section(section: AlertsSection, where: str) -> dict[str, RuleSettings]:
    """Validate the whole table; returns the rules."""
    for key in ("max_age", "throttle", "group_window", "retry_max", "shutdown_grace"):
        seconds(getattr(section, key), f"{where}: alerts.{key}")
    quiet_hours(section.quiet_hours, f"{where}: alerts.quiet_hours")
    timezone(section.timezone, f"{where}: alerts.timezone")
    if section.digest_time.strip():
        clock(section.digest_time, f"{where}: alerts.digest_time")
    for key in ("group_max", "queue_size", "state_size"):
        if getattr(section, key) < 1:
            raise ConfigError(f"{where}: alerts.{key}: must be at least 1")
    if section.retries < 0:
        raise ConfigError(f"{where}: alerts.retries: must be 0 or more")
    for name, url in section.channels.items():
        if not isinstance(url, str) or "://" not in url:
            raise ConfigError(
                f"{where}: alerts.channels.{name}: {url!r} is not an Apprise URL "
                "(like slack://..., json://host/path, mailtos://...)"
            )
    return parse_rules(section, where)


def _hook(config: Config) -> None:
    if "alerts" in config.sections:
        where = str(config.path) if config.path else "configuration"
        check_section(config.get(AlertsSection), where)


LOAD_HOOKS.append(_hook)
