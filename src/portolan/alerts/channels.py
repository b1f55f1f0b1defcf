"""Notification channels: Apprise URLs, each delivered by its own worker.

Apprise speaks to Slack, Discord, Telegram, Matrix, e-mail, ntfy, generic JSON webhooks
and a hundred more, from one URL each. Its ``notify`` blocks (HTTP, SMTP), so each channel
has its own thread (never the event loop's default pool, which the store uses too) and its
own bounded queue of messages: a channel that hangs or fails holds up nothing but itself.
A failed delivery is tried again after 1 s, 2 s, 4 s... (at most ``retry_max``) up to
``retries`` times, then counted as failed; messages that find the queue full are dropped
and counted.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portolan.alerts.throttle import Outgoing
from portolan.config import ConfigError

if TYPE_CHECKING:
    import apprise

log = logging.getLogger(__name__)

#: First wait before a delivery is tried again, in seconds; it doubles each time.
FIRST_RETRY = 1.0


@dataclass
class Counters:
    """What became of the messages, for ``/metrics`` and the summaries."""

    sent: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    """Messages delivered, by (rule, channel)."""
    failed: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    """Messages given up after every retry, dropped on a full queue or left at shutdown,
    by (rule, channel)."""
    retries: collections.Counter[str] = field(default_factory=collections.Counter)
    """Delivery attempts that failed and were tried again, by channel."""


def connect(url: str, where: str) -> apprise.Apprise:
    """An Apprise object for one URL; :class:`ConfigError` when Apprise does not know it."""
    # Apprise loads its plugins on first use; its PGP support imports the standard
    # library's imghdr, deprecated on Python 3.11 and 3.12. Not ours to fix, nor to show.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
        import apprise

        target = apprise.Apprise()
        added = target.add(url)
    if not added:
        scheme = url.partition("://")[0]
        raise ConfigError(
            f"{where}: Apprise cannot use this URL (scheme {scheme!r}); see "
            "https://github.com/caronc/apprise/wiki for the URL of each service"
        )
    return target


class Channel:
    """One named Apprise URL with its queue, worker task and thread."""

    def __init__(self, name: str, url: str, *, title: str, counters: Counters,
                 retries: int = 5, retry_max: float = 300.0, queue_size: int = 1000,
                 first_retry: float = FIRST_RETRY, where: str = "configuration") -> None:
        self.name = name
        self.title = title
        self.counters = counters
        self.retries = retries
        self.retry_max = retry_max
        self.first_retry = first_retry
        self.queue_size = queue_size
        self.target = connect(url, f"{where}: alerts.channels.{name}")
        self._thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"alert-{name}"
        )
        self._queue: asyncio.Queue[Outgoing] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._current: Outgoing | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        """Start the worker (in the running loop); harmless when it runs already."""
        if self._task is None:
            self._queue = asyncio.Queue(self.queue_size)
            self._task = asyncio.create_task(self._work(), name=f"alert-channel-{self.name}")

    def offer(self, message: Outgoing) -> bool:
        """Queue a message; False (and counted as failed) when the queue is full."""
        self.start()
        assert self._queue is not None
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.counters.failed[(message.rule, self.name)] += 1
            if not self._failing:
                log.warning("alert channel %s cannot keep up; dropping messages", self.name)
                self._failing = True
            return False
        return True

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            message = await self._queue.get()
            self._current = message
            try:
                await self._deliver(message)
            finally:
                self._current = None
                self._queue.task_done()

    async def _deliver(self, message: Outgoing) -> None:
        loop = asyncio.get_running_loop()
        delay = self.first_retry
        for attempt in range(self.retries + 1):
            error = ""
            try:
                ok = await loop.run_in_executor(self._thread, self._notify, message.body)
            except Exception as exc:  # a plugin's bug must not end the worker
                ok, error = False, f"{type(exc).__name__}: {exc}"
            if ok:
                self.counters.sent[(message.rule, self.name)] += 1
                if self._failing:
                    log.warning("alert channel %s delivers again", self.name)
                    self._failing = False
                return
            if not self._failing:
                plan = (f"trying each message up to {self.retries} more times, waiting up "
                        f"to {self.retry_max:.0f} s" if self.retries else "not retrying")
                log.warning("alert channel %s failed to deliver%s; %s", self.name,
                            f" ({error})" if error else "", plan)
                self._failing = True
            if attempt < self.retries:
                self.counters.retries[self.name] += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
        self.counters.failed[(message.rule, self.name)] += 1

    def _notify(self, body: str) -> bool:
        import apprise

        result: Any = self.target.notify(body=body, title=self.title,
                                         body_format=apprise.NotifyFormat.TEXT)
        return bool(result)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the queue to empty, then stop; what is left (and
        the message being tried) is counted as failed."""
        if self._task is None or self._queue is None:
            self._thread.shutdown(wait=False)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        current = self._current
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        left = 0
        if current is not None:
            self.counters.failed[(current.rule, self.name)] += 1
            left += 1
        while not self._queue.empty():
            message = self._queue.get_nowait()
            self.counters.failed[(message.rule, self.name)] += 1
            left += 1
        if left:
            log.warning("alert channel %s: %d messages not delivered at shutdown",
                        self.name, left)
        self._thread.shutdown(wait=False, cancel_futures=True)
