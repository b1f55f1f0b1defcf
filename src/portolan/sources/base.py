"""What a source is, and what it is given.

A source runs until it is cancelled (or, for one-shot input, until it is exhausted) and
hands events to the pipeline through :meth:`Emitter.emit`. ``emit`` waits when the
pipeline is full (back-pressure). A source that remembers a position (a file offset, a
journal cursor) passes a ``checkpoint`` callable with the events; the pipeline calls it,
in order, once those events are durably written (stored, or spooled for the collector).
Saving the position only then means that a crash at any moment loses nothing, and the
deterministic event ids make the re-read after a crash harmless.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from portolan.event import Event
from portolan.formats.base import FORMATS, ParseContext, Parser
from portolan.plugins import Registry

Checkpoint = Callable[[], None]


class Emitter(Protocol):
    """The pipeline's intake, as a source sees it."""

    async def emit(self, events: list[Event], checkpoint: Checkpoint | None = None) -> None:
        """Hand over events; returns when the pipeline has room for them."""
        ...


class Source(Protocol):
    """Produces events until cancelled or exhausted."""

    name: str

    async def run(self, out: Emitter) -> None: ...


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class SourceContext:
    """What every source gets: who it is, where to keep state, the clock."""

    sensor: str
    data_dir: Path
    now: Callable[[], dt.datetime] = _utcnow
    counters: collections.Counter[str] = field(default_factory=collections.Counter)
    """Reasons for skipped input across sources (``sshd: unmatched``, ``bad packet``...)."""

    def state_dir(self, kind: str) -> Path:
        """A folder for one kind of source's saved positions, created on demand."""
        path = self.data_dir / "state" / kind
        path.mkdir(parents=True, exist_ok=True)
        return path

    def parser(
        self, format_name: str, source: str, options: dict[str, Any] | None = None
    ) -> Parser:
        """A parser of the named format for one input."""
        spec = FORMATS.get(format_name)
        if spec.make_parser is None:
            raise ValueError(f"format {format_name!r} reads whole files, not lines")
        ctx = ParseContext(
            sensor=self.sensor,
            source=source,
            options=options or {},
            now=self.now,
            counters=self.counters,
        )
        return spec.make_parser(ctx)


class SourceOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options every ``[[sources]]`` table has; each type adds its own."""

    type: str
    """Which kind of source: ``file``, ``journald``, ``listener``..."""
    name: str = ""
    """Name of this input in events (``source`` field); a sensible one is derived if empty."""
    enabled: bool = True
    """Set to false to keep a source in the config without running it."""


@dataclass(frozen=True)
class SourceSpec:
    """A kind of source as registered."""

    name: str
    summary: str
    options: type[SourceOptions]
    make: Callable[[Any, SourceContext], Source]
    defaults: Callable[[SourceContext], list[SourceOptions]] | None = None
    """Sources of this kind to run when the config names none (``portolan run`` with no
    config): only what makes sense on this machine, e.g. sshd's log if it is readable."""


#: Every known kind of source.
SOURCES: Registry[SourceSpec] = Registry("source")
