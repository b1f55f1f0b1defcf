"""``portolan_geoip_database_age_seconds``: how old each GeoIP database is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portolan.enrich.geoip import GeoIP


class AgeCollector:
    """``portolan_geoip_database_age_seconds{database=...}``: how old each database is."""

    def __init__(self, geoip: GeoIP, now: Callable[[], dt.datetime]) -> None:
        self.geoip = geoip
        self.now = now

    def describe(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        return [GaugeMetricFamily("portolan_geoip_database_age_seconds",
                                  "Seconds since the GeoIP database was built",
                                  labels=["database"])]

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        self.geoip.maybe_reload()
        gauge = GaugeMetricFamily("portolan_geoip_database_age_seconds",
                                  "Seconds since the GeoIP database was built",
                                  labels=["database"])
        now = self.now()
        seen = set()
        for info in self.geoip.databases():
            if info.build is None or info.name in seen:
                continue
            seen.add(info.name)
            gauge.add_metric([info.name], max(0.0, (now - info.build).total_seconds()))
        yield gauge
