"""From hits to messages: throttling, grouping, quiet hours and the digest's schedule.

:class:`Dispatcher` decides, for each :class:`~portolan.alerts.rules.Hit`, what becomes of
it, and puts the messages to send in :attr:`Dispatcher.outbox`:

- *throttled*: the rule already alerted on the same subject (address, country...) within
  its ``throttle`` time; counted, shown in the digest;
- *held*: it came during quiet hours; held hits of a rule go out as one summary when the
  quiet hours end;
- *digest*: the rule is ``digest_only``; it only counts in the daily digest;
- *sent*: it joins its rule's group; a group goes out as one message ``group_window``
  after its first hit ("3 alerts of rule ssh-root: ..."), at most ``group_max`` lines.

It is pure: time comes in as arguments, nothing is sent from here, so every decision is
tested without waiting.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from portolan.alerts.rules import Hit
from portolan.alerts.settings import (
    AlertsSection,
    RuleSettings,
    clock,
    quiet_hours,
    seconds,
    timezone,
)

#: Most throttling entries kept; the oldest are dropped beyond (they would have expired).
THROTTLE_MAX: Final = 100_000


@dataclass(frozen=True)
class Outgoing:
    """One message for some channels."""

    rule: str
    """The rule it is about, or ``digest``."""
    channels: tuple[str, ...]
    body: str


@dataclass
class _Group:
    first: float
    lines: list[str] = field(default_factory=list)
    more: int = 0

    def add(self, line: str, limit: int) -> None:
        if len(self.lines) < limit:
            self.lines.append(line)
        else:
            self.more += 1

    @property
    def count(self) -> int:
        return len(self.lines) + self.more


class Dispatcher:
    """Applies the ``[alerts]`` policy to hits; see the module docstring."""

    def __init__(self, section: AlertsSection, rules: Mapping[str, RuleSettings],
                 channels: Sequence[str], where: str = "configuration") -> None:
        self.rules = rules
        self.all_channels = tuple(channels)
        self.throttle_default = seconds(section.throttle, f"{where}: alerts.throttle")
        self.group_window = seconds(section.group_window, f"{where}: alerts.group_window")
        self.group_max = section.group_max
        self.quiet = quiet_hours(section.quiet_hours, f"{where}: alerts.quiet_hours")
        self.quiet_text = section.quiet_hours.strip()
        self.tz = timezone(section.timezone, f"{where}: alerts.timezone")
        self.digest_time = (clock(section.digest_time, f"{where}: alerts.digest_time")
                            if section.digest_time.strip() else None)
        self.throttles = {
            name: (seconds(rule.throttle, f"{where}: alerts.rules.{name}.throttle")
                   if rule.throttle is not None else self.throttle_default)
            for name, rule in rules.items()
        }
        self.outbox: list[Outgoing] = []
        """Messages to send; the owner takes them."""
        self.records: list[tuple[float, str, str, str, str]] = []
        """(ts, rule, label, line, outcome) of every hit, for the digest; the owner takes
        them."""
        self.outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        """Hits by (rule, outcome)."""
        self._last: collections.OrderedDict[tuple[str, str], float] = (
            collections.OrderedDict()
        )
        self._groups: dict[str, _Group] = {}
        self._held: dict[str, _Group] = {}

    def channels_of(self, rule: str) -> tuple[str, ...]:
        settings = self.rules.get(rule)
        return tuple(settings.channels) if settings and settings.channels else self.all_channels

    def is_quiet(self, now: dt.datetime) -> bool:
        if self.quiet is None:
            return False
        return self.quiet.contains(now.astimezone(self.tz).time().replace(tzinfo=None))

    def offer(self, hit: Hit, now: dt.datetime) -> str:
        """Decide what becomes of ``hit``; returns the outcome (see the module docstring)."""
        settings = self.rules[hit.rule]
        t = now.timestamp()
        outcome = self._decide(hit, settings, t, now)
        self.outcomes[(hit.rule, outcome)] += 1
        line = hit.line if outcome != "throttled" else ""
        self.records.append((hit.ts.timestamp(), hit.rule, hit.label, line, outcome))
        return outcome

    def _decide(self, hit: Hit, settings: RuleSettings, t: float, now: dt.datetime) -> str:
        key = (hit.rule, hit.subject)
        throttle = self.throttles[hit.rule]
        last = self._last.get(key)
        if last is not None and t - last < throttle:
            return "throttled"
        if settings.digest_only:
            return "digest"
        if throttle > 0:
            self._last.pop(key, None)
            self._last[key] = t
            while len(self._last) > THROTTLE_MAX:
                self._last.popitem(last=False)
        if settings.quiet_hours and self.is_quiet(now):
            self._held.setdefault(hit.rule, _Group(t)).add(hit.line, self.group_max)
            return "held"
        group = self._groups.setdefault(hit.rule, _Group(t))
        group.add(hit.line, self.group_max)
        if self.group_window <= 0:
            self._emit_group(hit.rule)
        return "sent"

    def tick(self, now: dt.datetime) -> None:
        """Send the groups whose window is over, and what was held once quiet hours end."""
        t = now.timestamp()
        for rule in [r for r, g in self._groups.items() if t - g.first >= self.group_window]:
            self._emit_group(rule)
        if self._held and not self.is_quiet(now):
            self._emit_held()
        horizon = max(self.throttles.values(), default=0.0)
        while self._last:
            key, last = next(iter(self._last.items()))
            if t - last < horizon:
                break
            del self._last[key]

    def flush(self) -> None:
        """Everything pending goes out now (on shutdown)."""
        for rule in list(self._groups):
            self._emit_group(rule)
        if self._held:
            self._emit_held()

    def pending(self) -> int:
        """Hits waiting in groups or held."""
        return sum(g.count for g in (*self._groups.values(), *self._held.values()))

    def _emit_group(self, rule: str) -> None:
        group = self._groups.pop(rule)
        if group.count == 1:
            body = group.lines[0]
        else:
            body = self._lines(f"{group.count} alerts of rule {rule}:", group)
        self.outbox.append(Outgoing(rule, self.channels_of(rule), body))

    def _emit_held(self) -> None:
        for rule, group in self._held.items():
            head = (f"During quiet hours ({self.quiet_text}): {group.count} "
                    f"alert{'s' if group.count != 1 else ''} of rule {rule}:")
            self.outbox.append(Outgoing(rule, self.channels_of(rule), self._lines(head, group)))
        self._held.clear()

    @staticmethod
    def _lines(head: str, group: _Group) -> str:
        lines = [head, *(f"- {line}" for line in group.lines)]
        if group.more:
            lines.append(f"... and {group.more} more")
        return "\n".join(lines)

    # -- the digest ----------------------------------------------------------------------

    def next_digest(self, after: dt.datetime) -> dt.datetime | None:
        """When the first digest after ``after`` is due (None: no digest configured)."""
        if self.digest_time is None:
            return None
        local = after.astimezone(self.tz)
        day = local.date()
        while True:
            due = dt.datetime.combine(day, self.digest_time, self.tz)
            if due > local:
                return due.astimezone(dt.UTC)
            day += dt.timedelta(days=1)

    def digest(self, since: dt.datetime, until: dt.datetime,
               summary: Mapping[str, tuple[Mapping[str, int], Sequence[tuple[str, int]]]]
               ) -> Outgoing:
        """The digest message from :meth:`State.summary`'s figures."""
        def local(ts: dt.datetime) -> str:
            return ts.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

        head = f"Digest {local(since)} to {local(until)} ({self.tz.key}):"
        lines = [head]
        order = ("sent", "throttled", "held", "digest", "dropped")
        for rule in sorted(summary):
            outcomes, top = summary[rule]
            total = sum(outcomes.values())
            parts = ", ".join(f"{outcomes[o]} {o}" for o in order if outcomes.get(o))
            line = f"- {rule}: {total} alert{'s' if total != 1 else ''} ({parts})"
            if top:
                line += "; most: " + ", ".join(f"{label} ({n})" for label, n in top)
            lines.append(line)
        if len(lines) == 1:
            lines.append("- no alerts")
        return Outgoing("digest", self.all_channels, "\n".join(lines))
