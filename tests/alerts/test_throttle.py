"""Throttling, grouping, quiet hours and the digest's schedule, with time passed in."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from portolan.alerts.rules import Hit
from portolan.alerts.settings import AlertsSection, RuleSettings
from portolan.alerts.throttle import Dispatcher

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def dispatcher(rules: dict[str, dict[str, Any]] | None = None, **section: Any) -> Dispatcher:
    settings = msgspec.convert(section, AlertsSection)
    parsed = {name: msgspec.convert(r, RuleSettings)
              for name, r in (rules or {"r": {}}).items()}
    return Dispatcher(settings, parsed, ["a", "b"])


def hit(subject: str, line: str | None = None, rule: str = "r") -> Hit:
    return Hit(rule, subject, line or f"hit {subject}", T0, subject)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_throttle_per_rule_and_subject() -> None:
    d = dispatcher(throttle="10m", group_window=0)
    assert d.offer(hit("1.2.3.4"), at(0)) == "sent"
    assert d.offer(hit("1.2.3.4"), at(599)) == "throttled"
    assert d.offer(hit("5.6.7.8"), at(600)) == "sent"
    assert d.offer(hit("1.2.3.4"), at(600)) == "sent"
    assert [m.body for m in d.outbox] == ["hit 1.2.3.4", "hit 5.6.7.8", "hit 1.2.3.4"]
    assert d.outcomes[("r", "throttled")] == 1
    assert [r[4] for r in d.records] == ["sent", "throttled", "sent", "sent"]


def test_rule_throttle_overrides_and_zero_disables() -> None:
    d = dispatcher({"r": {"throttle": 0}}, throttle="1h", group_window=0)
    assert [d.offer(hit("x"), at(i)) for i in range(3)] == ["sent"] * 3


def test_grouping_into_one_message_per_window() -> None:
    d = dispatcher({"r": {"channels": ["b"]}, "q": {}}, throttle=0, group_window="30s",
                   group_max=2)
    for i in range(4):
        d.offer(hit(f"s{i}"), at(i))
    d.offer(hit("x", rule="q"), at(5))
    d.tick(at(29))
    assert d.outbox == []
    assert d.pending() == 5
    d.tick(at(30))
    assert len(d.outbox) == 1
    message = d.outbox[0]
    assert message.channels == ("b",)
    assert message.body == "4 alerts of rule r:\n- hit s0\n- hit s1\n... and 2 more"
    d.tick(at(35))
    assert d.outbox[1].body == "hit x" and d.outbox[1].channels == ("a", "b")


def test_quiet_hours_hold_then_summarise_in_local_time() -> None:
    d = dispatcher({"r": {}, "urgent": {"quiet_hours": False}}, throttle=0, group_window=0,
                   quiet_hours="22:00-07:00", timezone="Europe/Berlin")
    night = dt.datetime(2026, 11, 23, 22, 30, tzinfo=dt.UTC)  # 23:30 in Berlin
    assert d.is_quiet(night)
    assert d.offer(hit("a"), night) == "held"
    assert d.offer(hit("b"), night) == "held"
    assert d.offer(hit("u", rule="urgent"), night) == "sent"
    assert [m.rule for m in d.outbox] == ["urgent"]
    d.tick(dt.datetime(2026, 11, 24, 5, 59, tzinfo=dt.UTC))  # 06:59 in Berlin
    assert len(d.outbox) == 1
    d.tick(dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC))  # 07:00 in Berlin
    assert d.outbox[1].body == ("During quiet hours (22:00-07:00): 2 alerts of rule r:\n"
                                "- hit a\n- hit b")


def test_digest_only_rules_send_nothing_at_once() -> None:
    d = dispatcher({"r": {"digest_only": True}}, group_window=0)
    assert d.offer(hit("a"), at(0)) == "digest"
    d.flush()
    assert d.outbox == []


def test_flush_sends_pending_groups() -> None:
    d = dispatcher(group_window="1h")
    d.offer(hit("a"), at(0))
    d.flush()
    assert [m.body for m in d.outbox] == ["hit a"]


def test_next_digest_in_the_configured_zone() -> None:
    d = dispatcher(digest_time="08:00", timezone="America/New_York")
    assert dispatcher().next_digest(T0) is None
    # 12:00 UTC is 07:00 in New York (EST): today's 08:00 there, 13:00 UTC
    assert d.next_digest(T0) == dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC)
    assert d.next_digest(at(3600)) == dt.datetime(2026, 11, 24, 13, 0, tzinfo=dt.UTC)


def test_digest_text() -> None:
    d = dispatcher(digest_time="08:00")
    message = d.digest(T0 - dt.timedelta(days=1), T0,
                       {"ssh": ({"sent": 2, "throttled": 5}, [("1.2.3.4", 4), ("FR", 3)]),
                        "sdr": ({"held": 1}, [])})
    assert message.rule == "digest" and message.channels == ("a", "b")
    assert message.body == (
        "Digest 2026-11-22 12:00 to 2026-11-23 12:00 (UTC):\n"
        "- sdr: 1 alert (1 held)\n"
        "- ssh: 7 alerts (2 sent, 5 throttled); most: 1.2.3.4 (4), FR (3)")
    empty = d.digest(T0, T0, {})
    assert empty.body.endswith("\n- no alerts")
