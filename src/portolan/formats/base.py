"""What a format is: a named factory of parsers, and the parser interface.

A parser takes one line and answers with:

- a list of events (possibly several: "message repeated 3 times" is three attempts);
- an empty list for a line it recognises but that reports nothing (banners, driver noise);
- ``None`` for a line it does not recognise (counted as *unmatched* by ``portolan parse``).

Parsers may keep state between lines (open sessions, the year of a syslog stream), but do
no I/O and read no clock: the time "now", when a format needs it, comes from
:attr:`ParseContext.now`. Event ids are set by whoever knows the position of the line
(see :mod:`portolan.sources.lines`); a parser leaves ``id`` empty unless its input carries one.

A parser may also offer ``count_events`` (:class:`CountingParser`): the number of events
of a line, without making them.

Formats that are not line-based (pcap files) provide ``read_file`` instead: it yields
batches of events with their ids already set.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from portolan.event import Event
from portolan.plugins import Registry


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ParseContext:
    """What a parser may know about where its lines come from."""

    sensor: str = ""
    """Sensor name to put in the events."""
    source: str = ""
    """Source name to put in the events (``auth.log``, ``spyserver:hf``...)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Format options from the config (an nginx ``log_format``, a spyserver instance...)."""
    now: Callable[[], dt.datetime] = _utcnow
    """The clock, for formats that must infer what the line leaves out (the syslog year)."""
    counters: collections.Counter[str] = field(default_factory=collections.Counter)
    """Reasons for skipped input, counted by the parser (``bad_json``, ``truncated``...)."""


class Parser(Protocol):
    """Turns lines into events; see the module docstring for the answer's meaning."""

    def parse(self, line: str) -> list[Event] | None: ...

    def finish(self) -> list[Event]:
        """End of input (file read to its end, program exited): events still pending."""
        ...


@runtime_checkable
class CountingParser(Parser, Protocol):
    """A parser that can also count a line's events without making them: what a summary
    of a file needs (``portolan parse`` without ``--json``)."""

    def count_events(self, line: str) -> int | None:
        """``len(parse(line))``, or None where :meth:`parse` answers None; the parser's
        state changes as with :meth:`parse` (the events :meth:`finish` answers included)."""
        ...


class FileReader(Protocol):
    """Reads a whole (binary) file; yields batches of events with ids set."""

    def __call__(self, path: Path, ctx: ParseContext) -> Iterator[list[Event]]: ...


@dataclass(frozen=True)
class FormatSpec:
    """A format as registered: a name, one line of help, and how to parse."""

    name: str
    summary: str
    make_parser: Callable[[ParseContext], Parser] | None = None
    read_file: FileReader | None = None


#: Every known format, built-in and from plugins or the config. The built-in ones all live
#: in this package: looking one up imports no other part of Portolan.
FORMATS: Registry[FormatSpec] = Registry("format", packages=("portolan.formats",))


class LineParser:
    """Base class for simple line parsers with no end-of-input work."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx

    def parse(self, line: str) -> list[Event] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self) -> list[Event]:
        return []
