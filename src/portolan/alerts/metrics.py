"""The alerts' Prometheus metrics: messages sent, failed and suppressed, by rule and
channel (both named in the config, so the label sets stay small)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from portolan.metrics import COLLECTORS, CollectorSpec

if TYPE_CHECKING:
    from portolan.alerts.sink import AlertSink
    from portolan.runtime import Runtime


class AlertCollector:
    """Reads the alert sink's counters at each scrape."""

    def __init__(self, sink: AlertSink) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counters = self.sink.counters
        sent = CounterMetricFamily("portolan_alerts_sent", "Alert messages delivered",
                                   labels=["rule", "channel"])
        for (rule, channel), n in sorted(counters.sent.items()):
            sent.add_metric([rule, channel], n)
        failed = CounterMetricFamily(
            "portolan_alerts_failed",
            "Alert messages not delivered (retries exhausted, queue full, shutdown)",
            labels=["rule", "channel"])
        for (rule, channel), n in sorted(counters.failed.items()):
            failed.add_metric([rule, channel], n)
        retries = CounterMetricFamily("portolan_alerts_retries",
                                      "Failed delivery attempts that were tried again",
                                      labels=["channel"])
        for channel, n in sorted(counters.retries.items()):
            retries.add_metric([channel], n)
        hits = CounterMetricFamily(
            "portolan_alerts_hits",
            "Events a rule alerted on, by outcome: sent (in a message), throttled, held "
            "(quiet hours), digest (digest-only rule), stale (older than max_age)",
            labels=["rule", "outcome"])
        for (rule, outcome), n in sorted(self.sink.dispatcher.outcomes.items()):
            hits.add_metric([rule, outcome], n)
        suppressed = CounterMetricFamily(
            "portolan_alerts_suppressed",
            "Hits not sent at once: throttled, held for quiet hours, digest only, stale",
            labels=["rule", "reason"])
        for (rule, outcome), n in sorted(self.sink.dispatcher.outcomes.items()):
            if outcome != "sent":
                suppressed.add_metric([rule, outcome], n)
        errors = CounterMetricFamily("portolan_alerts_rule_errors",
                                     "Events on which a rule raised an error", labels=["rule"])
        for rule, n in sorted(self.sink.errors.items()):
            errors.add_metric([rule], n)
        queued = GaugeMetricFamily("portolan_alerts_queued",
                                   "Messages waiting for their channel", labels=["channel"])
        for name in sorted(self.sink.channels):
            queued.add_metric([name], self.sink.channels[name].queued)
        yield from (sent, failed, retries, hits, suppressed, errors, queued)

    def describe(self) -> Iterator[Any]:
        return self.collect()


def _make(runtime: Runtime) -> AlertCollector | None:
    from portolan.alerts.sink import sink_of

    sink = sink_of(runtime)
    return AlertCollector(sink) if sink is not None else None


COLLECTORS.add("alerts", CollectorSpec("alerts", "alerts sent, failed and suppressed", _make))
