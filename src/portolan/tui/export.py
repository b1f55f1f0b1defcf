"""What the user chose to export from the terminal view, and the two ways it leaves.

The :class:`Selection` is a short list of items (addresses, HTTP hosts, countries, ASNs),
kept in a small JSON file in the data directory so that the next ``portolan top`` starts
with it. :func:`measure` counts each selected item's events (all time, and in the view's
window) through the view's :class:`~portolan.tui.feeds.Feed`. :class:`Exporter` serves
those counts as Prometheus metrics from its own registry on its own port, and
:func:`write_tsv` writes them as a TSV file.

Label values are bounded: at most :data:`SELECTION_MAX` items, each shown escaped and cut
to :data:`LABEL_MAX` characters.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from prometheus_client.registry import CollectorRegistry

from portolan.text import printable
from portolan.times import rfc3339

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from portolan.tui.feeds import Feed

log = logging.getLogger(__name__)

#: Kinds of item that can be selected, and the rollup dimension each is counted by.
KINDS: Final = {"ip": "ip", "host": "host", "country": "country", "asn": "asn"}
#: Most items in a selection (so the metrics' label values stay bounded).
SELECTION_MAX: Final = 100
#: Longest label value, in characters.
LABEL_MAX: Final = 128
#: How many items of a dimension are counted to find the selected ones among them.
COUNT_LIMIT: Final = 1000
SELECTION_FILE: Final = "top-selection.json"
TSV_FILE: Final = "top-export.tsv"


class SelectionFull(Exception):
    """The selection already holds :data:`SELECTION_MAX` items."""


Item = tuple[str, Any]


class Selection:
    """Selected items in the order they were chosen, saved to ``path`` on every change."""

    def __init__(self, path: Path, items: Iterable[Item] = ()) -> None:
        self.path = path
        self.items: list[Item] = []
        for item in items:
            if item not in self.items and len(self.items) < SELECTION_MAX:
                self.items.append(item)

    @classmethod
    def load(cls, path: Path) -> tuple[Selection, str | None]:
        """The selection saved at ``path`` (empty when there is none), and a warning when
        the file could not be used."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path), None
        except (OSError, ValueError) as exc:
            return cls(path), f"{path}: not read ({exc}); starting with no selection"
        items: list[Item] = []
        bad = 0
        for entry in raw.get("items", []) if isinstance(raw, dict) else []:
            kind = entry.get("kind") if isinstance(entry, dict) else None
            key = entry.get("key") if isinstance(entry, dict) else None
            asn = kind == "asn" and isinstance(key, int) and not isinstance(key, bool)
            text = kind in KINDS and kind != "asn" and isinstance(key, str) and len(key) <= 1024
            if (asn or text) and isinstance(kind, str):
                items.append((kind, key))
            else:
                bad += 1
        warning = f"{path}: {bad} entries skipped (not a kind and key)" if bad else None
        return cls(path, items), warning

    def __contains__(self, item: object) -> bool:
        return item in self.items

    def __len__(self) -> int:
        return len(self.items)

    def toggle(self, kind: str, key: Any) -> bool:
        """Select or unselect an item and save; returns whether it is now selected."""
        if kind not in KINDS:
            raise ValueError(f"cannot select a {kind!r}; allowed: {', '.join(KINDS)}")
        item = (kind, key)
        if item in self.items:
            self.items.remove(item)
            now = False
        else:
            if len(self.items) >= SELECTION_MAX:
                raise SelectionFull(f"at most {SELECTION_MAX} items can be selected")
            self.items.append(item)
            now = True
        self.save()
        return now

    def clear(self) -> None:
        self.items.clear()
        self.save()

    def save(self) -> None:
        """Write the file atomically (a crash leaves the old one or the new one)."""
        body = json.dumps({"version": 1, "items": [{"kind": k, "key": v}
                                                   for k, v in self.items]}, indent=1)
        _write_atomic(self.path, body + "\n")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Measured:
    """One selected item and its counts."""

    kind: str
    key: Any
    name: str | None
    """Country name or AS organisation, where there is one."""
    total: int
    """Events of all time (among the :data:`COUNT_LIMIT` biggest items of its kind)."""
    window: int
    """Events in the view's time window."""


def measure(feed: Feed, items: Iterable[Item], since: dt.datetime | None) -> list[Measured]:
    """Counts of the selected items; an item not among the :data:`COUNT_LIMIT` biggest of
    its kind counts 0."""
    wanted: dict[str, list[Any]] = {}
    for kind, key in items:
        wanted.setdefault(kind, []).append(key)
    out = []
    for kind, keys in wanted.items():
        field = KINDS[kind]
        ever = {i.key: i for i in feed.counts(field, None, COUNT_LIMIT).items}
        recent = {i.key: i.count for i in feed.counts(field, since, COUNT_LIMIT).items}
        for key in keys:
            found = ever.get(key)
            out.append(Measured(kind, key, found.label if found else None,
                                found.count if found else 0, recent.get(key, 0)))
    return out


def label(value: Any) -> str:
    """A label value or TSV field: escaped, bounded."""
    return "" if value is None else printable(str(value), LABEL_MAX)


def write_tsv(path: Path, rows: Iterable[Measured], window: str, now: dt.datetime) -> None:
    """The measured items as a TSV file (header line first), written atomically."""
    lines = ["kind\tkey\tname\tevents_total\tevents_window\twindow\tupdated"]
    stamp = rfc3339(now)
    for r in rows:
        lines.append("\t".join([r.kind, label(r.key), label(r.name), str(r.total),
                                str(r.window), window, stamp or ""]))
    _write_atomic(path, "\n".join(lines) + "\n")


class Exporter:
    """The selected items' counts as Prometheus metrics, in a registry of its own.

    ``portolan_top_selected_events_total{kind,key,name}`` counts each item's events of
    all time; ``portolan_top_selected_window_events{kind,key,name}`` those in the view's
    window; ``portolan_top_selected_items`` how many items are selected.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._rows: list[Measured] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.registry.register(self)

    def update(self, rows: list[Measured]) -> None:
        with self._lock:
            self._rows = list(rows)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self._lock:
            rows = list(self._rows)
        labels = ["kind", "key", "name"]
        total = CounterMetricFamily(
            "portolan_top_selected_events",
            "Events of each item selected in portolan top, all time.", labels=labels)
        window = GaugeMetricFamily(
            "portolan_top_selected_window_events",
            "Events of each item selected in portolan top, in its time window.",
            labels=labels)
        for r in rows:
            values = [r.kind, label(r.key), label(r.name)]
            total.add_metric(values, r.total)
            window.add_metric(values, r.window)
        yield total
        yield window
        yield GaugeMetricFamily("portolan_top_selected_items",
                                "Items selected for export in portolan top.", len(rows))

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` in a thread; returns the port bound."""
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        bound: int = self._server.server_address[1]
        return bound

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(5)
            self._server = None
