"""The alert sink: events in, messages out, never in the pipeline's way.

It is not durable: the pipeline hands it batches through its own bounded queue and never
waits for it. For each event every rule is asked for a hit; the
:class:`~portolan.alerts.throttle.Dispatcher` decides what to send; each
:class:`~portolan.alerts.channels.Channel` delivers on its own thread. Its state (what
``first_seen`` rules have seen, the hits for the digest) is written to ``alerts.db`` in
the data directory by a thread of its own. A ticker sends grouped messages when their
window ends, what quiet hours held when they end, and the daily digest.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime as dt
import logging
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from portolan.alerts.channels import Channel, Counters
from portolan.alerts.rules import FirstSeenRule, Rule, build
from portolan.alerts.settings import AlertsSection, RuleSettings, check_section, seconds
from portolan.alerts.state import State
from portolan.alerts.throttle import Dispatcher, Outgoing
from portolan.enrich.privacy import Privacy, PrivacySection
from portolan.event import Event
from portolan.runtime import SERVICES, ServiceSpec
from portolan.sinks.base import SINKS, SinkSpec

if TYPE_CHECKING:
    from portolan.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_FILE: Final = "alerts.db"
#: Seconds between two looks at groups, quiet hours and the digest.
TICK: Final = 1.0
#: Seconds between two prunings of old hits.
PRUNE_EVERY: Final = 3600.0
_LAST_DIGEST: Final = "last_digest"
#: Events looked at between two chances for the event loop to run other tasks.
YIELD_EVERY: Final = 500


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AlertSink:
    """Runs the rules over each batch and hands messages to the channels."""

    name = "alerts"
    durable = False

    def __init__(self, section: AlertsSection, rules: Mapping[str, RuleSettings],
                 channels: Mapping[str, Channel], privacy: Privacy, state: State, *,
                 counters: Counters | None = None,
                 now: Callable[[], dt.datetime] = _utcnow,
                 where: str = "configuration") -> None:
        self.section = section
        self.channels = dict(channels)
        self.counters = counters or Counters()
        self.state = state
        self.now = now
        self.dispatcher = Dispatcher(section, rules, list(self.channels), where)
        self.rules: list[Rule] = [
            build(name, settings, privacy, section.state_size,
                  lambda n: state.seen(n, section.state_size))
            for name, settings in rules.items() if settings.enabled
        ]
        self.grace = seconds(section.shutdown_grace, f"{where}: alerts.shutdown_grace")
        self.max_age = seconds(section.max_age, f"{where}: alerts.max_age")
        self.errors: collections.Counter[str] = collections.Counter()
        """Rules that raised, by rule name (logged once each)."""
        self._seen = [r.seen for r in self.rules if isinstance(r, FirstSeenRule)]
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="alerts")
        self._ticker: asyncio.Task[None] | None = None
        self._last_digest: dt.datetime | None = None
        self._next_digest: dt.datetime | None = None
        self._last_prune = 0.0
        self._digest_read = False
        self._closed = False

    # -- the sink ------------------------------------------------------------------------

    async def write(self, events: list[Event]) -> None:
        self.start()
        await self._digest_schedule()
        now = self.now()
        oldest = (now - dt.timedelta(seconds=self.max_age)) if self.max_age > 0 else None
        for index, event in enumerate(events):
            if index and not index % YIELD_EVERY:
                await asyncio.sleep(0)  # the loop also serves the API: let it breathe
            stale = oldest is not None and event.ts < oldest
            for rule in self.rules:
                try:
                    hit = rule.check(event)
                except Exception as exc:  # one broken rule must not silence the others
                    self.errors[rule.name] += 1
                    if self.errors[rule.name] == 1:
                        log.error("alert rule %s failed on event %s: %s (counted from now "
                                  "on)", rule.name, event.id, exc, exc_info=True)
                    continue
                if hit is None:
                    continue
                if stale:
                    self.dispatcher.outcomes[(rule.name, "stale")] += 1
                else:
                    self.dispatcher.offer(hit, now)
        self._send()
        await self._save()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.dispatcher.flush()
        self._send()
        with contextlib.suppress(Exception):
            await self._save()
        await asyncio.gather(*(c.drain(self.grace) for c in self.channels.values()))
        await self._run(self.state.close)
        self._thread.shutdown(wait=True)

    # -- timers --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the channels and the ticker, once (the pipeline calls this as it starts;
        the first batch would otherwise)."""
        if self._ticker is not None or self._closed:
            return
        for channel in self.channels.values():
            channel.start()
        self._ticker = asyncio.create_task(self._tick_forever(), name="alerts-ticker")

    async def _digest_schedule(self) -> None:
        """Read when the last digest went out (first run: now), once."""
        if self._digest_read or self.dispatcher.digest_time is None:
            return
        self._digest_read = True
        stored = await self._run(self.state.get, _LAST_DIGEST)
        now = self.now()
        if stored is None:
            await self._run(self.state.put, _LAST_DIGEST, now.isoformat())
        last = dt.datetime.fromisoformat(stored) if stored else now
        self._last_digest = last
        self._next_digest = self.dispatcher.next_digest(last)

    async def _tick_forever(self) -> None:
        await self._digest_schedule()
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except Exception as exc:
                self.errors["ticker"] += 1
                if self.errors["ticker"] == 1:
                    log.error("alerts: %s", exc, exc_info=True)

    async def tick(self) -> None:
        """One look at the clock: groups due, quiet hours over, digest due, pruning."""
        await self._digest_schedule()
        now = self.now()
        self.dispatcher.tick(now)
        self._send()
        if self._next_digest is not None and now >= self._next_digest:
            await self._digest(now)
        await self._save()
        if now.timestamp() - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now.timestamp()
            await self._run(self.state.prune, now.timestamp())

    async def _digest(self, now: dt.datetime) -> None:
        since = self._last_digest or now - dt.timedelta(days=1)
        await self._save()
        summary = await self._run(self.state.summary, since.timestamp(), now.timestamp())
        self._offer(self.dispatcher.digest(since, now, summary))
        await self._run(self.state.put, _LAST_DIGEST, now.isoformat())
        self._last_digest = now
        self._next_digest = self.dispatcher.next_digest(now)

    # -- helpers -------------------------------------------------------------------------

    def _send(self) -> None:
        outbox, self.dispatcher.outbox = self.dispatcher.outbox, []
        for message in outbox:
            self._offer(message)

    def _offer(self, message: Outgoing) -> None:
        for name in message.channels:
            self.channels[name].offer(message)

    async def _save(self) -> None:
        records, self.dispatcher.records = self.dispatcher.records, []
        if records or any(v.dirty or v.evicted for v in self._seen):
            await self._run(self.state.save, self._seen, records)

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, func, *args)


# -- wiring: the sink, its ticker as a service, its metrics ---------------------------------

#: The alert sink of each runtime, for the service and the metrics collector.
_BY_RUNTIME: dict[int, AlertSink] = {}


def sink_of(runtime: Runtime) -> AlertSink | None:
    """The alert sink that ``runtime`` built, if any."""
    return _BY_RUNTIME.get(id(runtime))


def make(runtime: Runtime) -> AlertSink | None:
    """The alert sink the config asks for, or None (no rules, no channels, disabled)."""
    section = runtime.config.get(AlertsSection)
    where = str(runtime.config.path) if runtime.config.path else "configuration"
    rules = check_section(section, where)
    if not section.enabled or not any(r.enabled for r in rules.values()):
        return None
    if not section.channels:
        log.warning("alerts: rules are configured but no [alerts.channels]; alerts are off")
        return None
    counters = Counters()
    retry_max = seconds(section.retry_max, f"{where}: alerts.retry_max")
    channels = {
        name: Channel(name, url, title=section.title, counters=counters,
                      retries=section.retries, retry_max=retry_max,
                      queue_size=section.queue_size, where=where)
        for name, url in section.channels.items()
    }
    privacy = Privacy.from_settings(runtime.config.get(PrivacySection), runtime.data_dir)
    state = State(Path(runtime.data_dir) / STATE_FILE)
    sink = AlertSink(section, rules, channels, privacy, state, counters=counters,
                     now=runtime.now, where=where)
    key = id(runtime)
    _BY_RUNTIME[key] = sink
    weakref.finalize(runtime, _BY_RUNTIME.pop, key, None)
    return sink


def _service(runtime: Runtime) -> Any:
    sink = sink_of(runtime)
    if sink is None:
        return None

    async def keep_time() -> None:
        sink.start()
        await asyncio.Event().wait()

    return keep_time()


SINKS.add("alerts", SinkSpec("alerts", "alert rules to Slack, e-mail, webhooks... (Apprise)",
                             make))
SERVICES.add("alerts", ServiceSpec("alerts", "alert groups, quiet hours and the daily digest "
                                   "on time", _service))
