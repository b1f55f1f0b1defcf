"""Prometheus counters of captured traffic: HTTP requests per host, bytes per remote AS.

A side sink counts the ``request`` and ``flow`` events as they pass (after enrichment, so
flows carry their AS); a collector registered in :data:`portolan.metrics.COLLECTORS`
exports the counts:

- ``portolan_capture_http_requests_total{host}``
- ``portolan_capture_asn_bytes_total{asn, as_org, direction}``
- ``portolan_capture_ip_bytes_total{ip, direction}`` only with ``per_ip = true``

Cardinality is bounded: each family has at most ``top_k`` labelled series plus one
``other``. At each scrape, while places are free, the values that stand out most get a
label, and keep it for the life of the process. At the first scrape their whole count
moves to their label; a label given later counts from that moment (its past stays in
``other``, which was already shown). So every series only ever grows (Prometheus counters
must), and the sum of a family is always the exact total. Private and
reserved remote addresses are not counted per AS unless ``include_private = true``.
"""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from portolan.config import SECTIONS, Section
from portolan.event import Event
from portolan.metrics import COLLECTORS, CollectorSpec
from portolan.sinks.base import SINKS, SinkSpec

if TYPE_CHECKING:
    from portolan.runtime import Runtime

OTHER = "other"


class CaptureSection(Section):
    """Metrics of captured traffic (``/metrics``)."""

    metrics: bool = True
    """Count HTTP requests per host and bytes per AS for ``/metrics``."""
    top_k: int = 20
    """Labelled series per metric at most; the rest is counted under ``other``."""
    per_ip: bool = False
    """Also export bytes per remote IP address (top_k of them, plus ``other``)."""
    include_private: bool = False
    """Count traffic to private and reserved addresses in the per-AS bytes (as AS 0)."""


SECTIONS.add("capture", CaptureSection)


class TopK:
    """Counts per label with at most ``k`` labelled series and an ``other``; see the module
    docstring for why a label, once given, is kept."""

    def __init__(self, k: int, candidates: int | None = None) -> None:
        self.k = max(0, k)
        self.capacity = candidates or max(64, 10 * self.k)
        self.labelled: dict[tuple[str, ...], float] = {}
        self.other = 0.0
        self.exported = False
        self._candidates: dict[tuple[str, ...], float] = {}

    def add(self, label: tuple[str, ...], value: float) -> None:
        if label in self.labelled:
            self.labelled[label] += value
            return
        self.other += value
        if len(self.labelled) >= self.k:
            return
        cand = self._candidates
        cand[label] = cand.get(label, 0.0) + value
        if len(cand) > self.capacity:
            # keep the larger half: memory stays bounded, the big ones survive
            keep = sorted(cand.items(), key=lambda kv: kv[1], reverse=True)
            self._candidates = dict(keep[: self.capacity // 2])

    def promote(self) -> None:
        """Give free labels to the candidates that stand out most."""
        free = self.k - len(self.labelled)
        if free <= 0:
            self._candidates.clear()
            return
        best = sorted(self._candidates.items(), key=lambda kv: kv[1], reverse=True)[:free]
        for label, value in best:
            del self._candidates[label]
            if self.exported:
                self.labelled[label] = 0.0  # "other" already showed its past: count from now
            else:
                self.labelled[label] = value  # nothing shown yet: move its count out of other
                self.other -= value

    def series(self) -> Iterator[tuple[tuple[str, ...] | None, float]]:
        """(label, value) of each labelled series, then (None, other)."""
        self.exported = True
        yield from self.labelled.items()
        yield None, self.other


class TrafficCounts:
    """What the sink counted and the collector exports."""

    def __init__(self, section: CaptureSection) -> None:
        self.section = section
        self.hosts = TopK(section.top_k)
        self.asns = TopK(section.top_k)
        self.ips = TopK(section.top_k)

    def count(self, events: list[Event]) -> None:
        per_ip = self.section.per_ip
        private_too = self.section.include_private
        for e in events:
            if e.action == "request":
                if e.service == "http":
                    host = str(e.attrs.get("host") or "")[:128]
                    self.hosts.add((host,), 1)
            elif e.action == "flow":
                remote = e.src_ip if e.direction == "inbound" else e.dst_ip
                size = (e.bytes_in or 0) + (e.bytes_out or 0)
                if not remote:
                    continue
                if e.asn or private_too or _global(remote):
                    self.asns.add((str(e.asn or 0), e.as_org or "", e.direction), size)
                if per_ip:
                    self.ips.add((remote, e.direction), size)


def _global(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


class CaptureCollector:
    """The prometheus_client collector over one :class:`TrafficCounts`."""

    def __init__(self, counts: TrafficCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        c = self.counts
        families: list[tuple[str, str, list[str], TopK]] = [
            ("portolan_capture_http_requests", "HTTP requests seen, by Host header",
             ["host"], c.hosts),
            ("portolan_capture_asn_bytes", "Bytes of flows, by remote autonomous system",
             ["asn", "as_org", "direction"], c.asns),
        ]
        if c.section.per_ip:
            families.append(("portolan_capture_ip_bytes", "Bytes of flows, by remote address",
                             ["ip", "direction"], c.ips))
        for name, doc, labels, top in families:
            top.promote()
            family = CounterMetricFamily(name, doc, labels=labels)
            for label, value in top.series():
                values = list(label) if label is not None else [OTHER] + [""] * (len(labels) - 1)
                family.add_metric(values, value)
            yield family

    def describe(self) -> Iterator[Any]:
        return iter(())


#: The counts of each running process (a runtime), shared by its sink and its collector.
_COUNTS: dict[int, TrafficCounts] = {}


def counts_for(runtime: Runtime) -> TrafficCounts | None:
    """This runtime's counts, made on first use; None when metrics are turned off."""
    section = runtime.config.get(CaptureSection)
    if not section.metrics:
        return None
    key = id(runtime)
    found = _COUNTS.get(key)
    if found is None:
        found = _COUNTS[key] = TrafficCounts(section)
        weakref.finalize(runtime, _COUNTS.pop, key, None)
    return found


class CaptureMetricsSink:
    """Counts events for the collector; never slows the pipeline (a side sink)."""

    name = "capture_metrics"
    durable = False

    def __init__(self, counts: TrafficCounts) -> None:
        self.counts = counts

    async def write(self, events: list[Event]) -> None:
        self.counts.count(events)

    async def close(self) -> None:
        return None


def _sink(runtime: Runtime) -> CaptureMetricsSink | None:
    counts = counts_for(runtime)
    return CaptureMetricsSink(counts) if counts is not None else None


def _collector(runtime: Runtime) -> CaptureCollector | None:
    counts = counts_for(runtime)
    return CaptureCollector(counts) if counts is not None else None


SINKS.add("capture_metrics", SinkSpec(
    "capture_metrics", "counts of captured traffic for /metrics", _sink, live=True))
COLLECTORS.add("capture", CollectorSpec(
    "capture", "HTTP requests per host and bytes per AS from captured traffic", _collector))
