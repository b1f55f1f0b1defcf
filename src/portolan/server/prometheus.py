"""``/metrics`` for Prometheus: what was seen, and how the pipeline and sensors are doing.

Event counts come from the store's rollups (so they cover every process that writes to
the store and survive restarts): by service, action, sensor, and country and ASN, where
only the ``[server] metrics_top`` biggest are named and the rest are summed under
``other`` (bounded cardinality). Per-address series only when ``metrics_per_ip`` is set,
capped at ``metrics_per_ip_max`` and shown as the privacy mode says. Pipeline health comes
from the process's :class:`~portolan.pipeline.PipelineStats`; per-sensor lag and last
contact from the ``sensors`` table. Store reads are cached for a few seconds, so a busy
scraper costs the database little.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from portolan.metrics import COLLECTORS, CollectorSpec
from portolan.store import rollups, schema

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from portolan.runtime import Runtime
    from portolan.server.context import ServerState

#: Seconds a store read is reused between scrapes.
CACHE_SECONDS = 5.0
#: Most sensors and skip reasons named (the rest are summed under ``other``).
LABELS_MAX = 200


def _top(pairs: list[tuple[str, int]], keep: int) -> list[tuple[str, int]]:
    pairs = sorted(pairs, key=lambda kv: (-kv[1], kv[0]))
    out = pairs[:keep]
    rest = sum(n for _, n in pairs[keep:])
    if rest:
        out.append(("other", rest))
    return out


class EventsCollector:
    """Event counts from the rollups, and per-sensor lag."""

    def __init__(self, runtime: Runtime) -> None:
        from portolan.enrich.privacy import Privacy, PrivacySection
        from portolan.server.settings import ServerSection

        self.store = runtime.store()
        self.settings = runtime.config.get(ServerSection)
        self.privacy = Privacy.from_settings(runtime.config.get(PrivacySection),
                                             runtime.data_dir)
        self._cached: tuple[float, dict[str, Any]] | None = None

    def _read(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
            return self._cached[1]
        R = rollups.rollups
        data: dict[str, Any] = {}
        with self.store.connect() as conn:
            for dim in ("service", "action", "sensor", "country", "asn"):
                q = (sa.select(R.c.item, sa.func.sum(R.c.n)).where(R.c.grain == rollups.DAY,
                                                                  R.c.dim == dim)
                     .group_by(R.c.item))
                data[dim] = [(item or "none", int(n)) for item, n in conn.execute(q)]
            S = schema.sensors
            data["sensors"] = conn.execute(
                sa.select(S.c.name, S.c.last_seen, S.c.last_event_ts)
                .order_by(S.c.last_seen.desc()).limit(LABELS_MAX)).all()
            settings = self.settings
            if settings.metrics_per_ip:
                IPS = schema.ips
                data["ips"] = conn.execute(
                    sa.select(IPS.c.ip, IPS.c.events).order_by(IPS.c.events.desc(), IPS.c.ip)
                    .limit(settings.metrics_per_ip_max)).all()
        self._cached = (now, data)
        return data

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        data = self._read()
        top = self.settings.metrics_top
        specs = [
            ("service", "portolan_events", "Events stored, by service.", None),
            ("action", "portolan_events_by_action", "Events stored, by action.", LABELS_MAX),
            ("sensor", "portolan_events_by_sensor", "Events stored, by sensor.", LABELS_MAX),
            ("country", "portolan_events_by_country",
             "Events stored, by country of the remote address (the biggest, then 'other').",
             top),
            ("asn", "portolan_events_by_asn",
             "Events stored, by AS of the remote address (the biggest, then 'other').", top),
        ]
        for dim, name, doc, keep in specs:
            family = CounterMetricFamily(name, doc, labels=[dim])
            pairs = data[dim] if keep is None else _top(data[dim], keep)
            for item, n in pairs:
                family.add_metric([item], n)
            yield family
        lag = GaugeMetricFamily("portolan_sensor_lag_seconds",
                                "How far a sensor's newest event was behind its storing.",
                                labels=["sensor"])
        contact = GaugeMetricFamily("portolan_sensor_last_contact_timestamp_seconds",
                                    "When events from a sensor were last stored (Unix time).",
                                    labels=["sensor"])
        for name, last_seen, last_event in data["sensors"]:
            contact.add_metric([name], last_seen / 1e6)
            if last_event is not None:
                lag.add_metric([name], max(0.0, (last_seen - last_event) / 1e6))
        yield lag
        yield contact
        if "ips" in data:
            fam = CounterMetricFamily(
                "portolan_events_by_address",
                "Events by remote address (the busiest; only with metrics_per_ip).",
                labels=["address"])
            privacy = self.privacy
            for ip, n in data["ips"]:
                fam.add_metric([privacy.address(ip) or ""], int(n))
            yield fam


class ServerCollector:
    """The server's own counters: ingest requests and events, stream clients."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        c = self.state.counters
        req = CounterMetricFamily("portolan_ingest_requests", "Ingest requests, by status.",
                                  labels=["status"])
        for code, n in sorted(c.ingest_requests.items()):
            req.add_metric([str(code)], n)
        yield req
        yield CounterMetricFamily("portolan_ingest_events", "Events received by ingest.",
                                  value=c.ingest_events)
        yield CounterMetricFamily("portolan_ingest_enrich_failures",
                                  "Ingested batches an enricher failed on (stored anyway).",
                                  value=c.enrich_failures)
        yield GaugeMetricFamily("portolan_stream_clients", "Live-stream clients connected.",
                                value=c.stream_clients)


class PipelineCollector:
    """Health of this process's pipeline: queue, failures, drops, store latency."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.runtime.stats
        yield CounterMetricFamily("portolan_pipeline_received", "Events handed over by sources.",
                                  value=s.received)
        yield CounterMetricFamily("portolan_pipeline_written",
                                  "Events through the durable sinks.", value=s.written)
        yield CounterMetricFamily("portolan_pipeline_batches", "Batches written.",
                                  value=s.batches)
        yield GaugeMetricFamily("portolan_pipeline_queue_depth",
                                "Batches waiting in the intake queue.", value=s.queue_depth)
        fail = CounterMetricFamily("portolan_pipeline_failures",
                                   "Failures, by stage or sink.", labels=["stage"])
        for stage, n in _top(list(s.failures.items()), LABELS_MAX):
            fail.add_metric([stage], n)
        yield fail
        drop = CounterMetricFamily("portolan_pipeline_dropped",
                                   "Events a slow non-durable sink did not get, by sink.",
                                   labels=["sink"])
        for sink, n in sorted(s.dropped.items()):
            drop.add_metric([sink], n)
        yield drop
        outcome = CounterMetricFamily("portolan_store_events",
                                      "Events the store sink handled, by outcome.",
                                      labels=["outcome"])
        for key in ("stored", "duplicates", "rejected"):
            outcome.add_metric([key], s.extra.get(key, 0))
        yield outcome
        yield CounterMetricFamily("portolan_store_write_seconds",
                                  "Time spent writing batches to durable sinks.",
                                  value=s.write_seconds)
        yield GaugeMetricFamily("portolan_store_last_write_seconds",
                                "Time the last batch took in the durable sinks.",
                                value=s.last_write_seconds)
        skipped = CounterMetricFamily("portolan_input_skipped",
                                      "Input that sources skipped (unmatched lines, bad "
                                      "packets...), by reason.", labels=["reason"])
        counters = self.runtime.source_context().counters
        for reason, n in _top(list(counters.items()), LABELS_MAX):
            skipped.add_metric([reason], n)
        yield skipped


def _events(runtime: Runtime) -> EventsCollector | None:
    if not runtime.config.store.enabled and runtime.db_url is None:
        return None  # a sensor that only forwards keeps no store to count from
    return EventsCollector(runtime)


COLLECTORS.add("events", CollectorSpec(
    "events", "events stored, by service, action, sensor, country, ASN; sensors' lag",
    _events))
COLLECTORS.add("pipeline", CollectorSpec(
    "pipeline", "pipeline health: queue, failures, drops, store latency, skipped input",
    PipelineCollector))
