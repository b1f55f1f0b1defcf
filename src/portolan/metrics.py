"""Prometheus metrics: one registry per process, filled by the parts that have something
to count.

A part registers a :class:`CollectorSpec` in :data:`COLLECTORS`; :func:`build_registry`
asks each for its collector (a ``prometheus_client`` collector, or None when that part is
not running) and puts it in a fresh ``CollectorRegistry``, which ``/metrics`` serves. No
global default registry is used, so tests build their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portolan.plugins import Registry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from portolan.runtime import Runtime


@dataclass(frozen=True)
class CollectorSpec:
    """A source of metrics: ``make`` returns a prometheus_client collector, or None."""

    name: str
    summary: str
    make: Callable[[Runtime], Any]


#: Every part that exports metrics.
COLLECTORS: Registry[CollectorSpec] = Registry("metrics collector")


def build_registry(runtime: Runtime) -> CollectorRegistry:
    """A registry with the collector of every part that is running."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=True)
    for _, spec in COLLECTORS.items():
        collector = spec.make(runtime)
        if collector is not None:
            registry.register(collector)
    return registry
