"""What an enricher is: a step that fills in fields of a batch of events, in place.

Enrichers run in the pipeline's loop, so they must be quick (a cached lookup); anything
slow (an online provider) runs beside the pipeline and only fills in what it already
knows. An enricher that raises is counted and logged; the batch goes on without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from portolan.event import Event
from portolan.plugins import Registry

if TYPE_CHECKING:
    from portolan.runtime import Runtime


class Enricher(Protocol):
    """Fills in fields of events."""

    name: str

    def enrich(self, events: list[Event]) -> None: ...


@dataclass(frozen=True)
class EnricherSpec:
    """A kind of enricher as registered; ``order`` sorts them (lower runs first)."""

    name: str
    summary: str
    order: int
    make: Callable[[Runtime], Enricher | None]


#: Every known kind of enricher.
ENRICHERS: Registry[EnricherSpec] = Registry("enricher")
