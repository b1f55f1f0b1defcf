"""The runtime: one configured Portolan process, and what it builds from its config.

It opens the store once (migrating it), builds the enrichers, sinks and sources that the
config and the registries call for, and the services that run beside the pipeline (the
HTTP server, retention). Everything is created here and passed down, so that no module
keeps global state and tests can build a runtime of their own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from portolan.config import Config
from portolan.enrich.base import ENRICHERS, Enricher
from portolan.pipeline import Pipeline, PipelineStats
from portolan.plugins import Registry
from portolan.sinks.base import SINKS, Sink
from portolan.sources.base import SOURCES, Source, SourceContext, SourceOptions

if TYPE_CHECKING:
    from portolan.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    """Something that runs beside the pipeline in ``portolan run`` (the HTTP server,
    retention, alert digests): ``make`` returns its coroutine, or None when not configured."""

    name: str
    summary: str
    make: Callable[[Runtime], Awaitable[None] | None]


#: Every known service.
SERVICES: Registry[ServiceSpec] = Registry("service")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Runtime:
    """A configured process: config, clock, counters, and the store once opened."""

    config: Config
    db_url: str | None = None
    """``--db`` given on the command line: wins over the config."""
    now: Callable[[], dt.datetime] = _utcnow
    stats: PipelineStats = field(default_factory=PipelineStats)
    _store: Store | None = None
    _source_context: SourceContext | None = None

    @property
    def sensor(self) -> str:
        return self.config.sensor

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def store(self) -> Store:
        """The store, opened and migrated on first use."""
        if self._store is None:
            from portolan.store import Store

            url = self.db_url if self.db_url is not None else self.config.store.url
            store = Store(url, data_dir=self.data_dir)
            applied = store.migrate()
            if applied:
                log.info("store %s migrated to %s", store.where, applied[-1])
            self._store = store
        return self._store

    def source_context(self) -> SourceContext:
        if self._source_context is None:
            self._source_context = SourceContext(
                sensor=self.sensor, data_dir=self.data_dir, now=self.now
            )
        return self._source_context

    def enrichers(self) -> list[Enricher]:
        made = []
        for _, spec in sorted(ENRICHERS.items(), key=lambda kv: kv[1].order):
            enricher = spec.make(self)
            if enricher is not None:
                made.append(enricher)
        return made

    def sinks(self, *, live: bool = True) -> list[Sink]:
        """The configured sinks; without the ``live`` ones (see :class:`SinkSpec`) for
        a command that runs no server."""
        return [s for _, spec in SINKS.items()
                if (live or not spec.live) and (s := spec.make(self)) is not None]

    def source_options(self) -> list[SourceOptions]:
        """The configured sources, or the defaults that make sense on this machine."""
        if self.config.sources:
            return [o for o in self.config.sources if o.enabled]
        ctx = self.source_context()
        found: list[SourceOptions] = []
        for _, spec in SOURCES.items():
            if spec.defaults is not None:
                found.extend(spec.defaults(ctx))
        return found

    def sources(self, options: list[SourceOptions] | None = None) -> list[Source]:
        ctx = self.source_context()
        return [SOURCES.get(o.type).make(o, ctx) for o in (options or self.source_options())]

    def services(self) -> list[tuple[str, Awaitable[None]]]:
        found = []
        for name, spec in SERVICES.items():
            coro = spec.make(self)
            if coro is not None:
                found.append((name, coro))
        return found

    def pipeline(self, sources: list[Source], sinks: list[Sink] | None = None,
                 enrich: bool = True) -> Pipeline:
        p = self.config.pipeline
        return Pipeline(
            sources,
            self.enrichers() if enrich else [],
            self.sinks() if sinks is None else sinks,
            batch_size=p.batch_size,
            batch_delay=p.batch_delay,
            queue_size=p.queue_size,
            write_max=p.write_max,
            stats=self.stats,
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
