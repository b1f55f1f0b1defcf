"""The tables of the terminal view: what each shows, and its rows made safe to display.

A table is described by a :class:`TableSpec` (its columns, the rollup dimension it counts
by or the list it shows, and which kind of item its rows can be selected as). Rows are
built from the API's shapes into :class:`Row` values: the raw values (to sort and filter
by) and the cells, which are :class:`rich.text.Text` objects made with :func:`cell`, so
that attacker text is shown escaped (:func:`portolan.text.printable`), cut with an
ellipsis, and never read as Rich markup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rich.text import Text

from portolan.event import Event
from portolan.server import shapes
from portolan.text import printable

#: Longest text shown in a cell, in characters (the rest is cut with an ellipsis).
CELL_MAX: Final = 40


def cell(value: Any, limit: int = CELL_MAX, *, style: str = "", right: bool = False) -> Text:
    """One cell: ``value`` as text, control characters escaped, cut to ``limit``; a Text
    object, so that ``[bold]`` in attacker text stays literal."""
    if value is None:
        text = ""
    elif isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).strftime("%H:%M:%S")
    else:
        text = printable(str(value), limit)
    return Text(text, style=style, justify="right" if right else "left", no_wrap=True,
                overflow="ellipsis")


@dataclass(frozen=True)
class Row:
    """One row: its identity, raw values (for sorting and filtering), and its cells."""

    key: Any
    """What the row stands for: an address, a country code, an ASN, an event id..."""
    values: tuple[Any, ...]
    cells: tuple[Text, ...]
    address: str | None = None
    """The address that Enter opens, if any."""


@dataclass(frozen=True)
class TableSpec:
    """One table of the view."""

    name: str
    title: str
    columns: tuple[str, ...]
    field: str | None = None
    """The rollup dimension a counts table counts by (None: events or active sessions)."""
    select: str | None = None
    """The kind its rows are selected and exported as (``ip``, ``host``, ``country``,
    ``asn``); None when rows cannot be selected."""
    numeric: tuple[int, ...] = ()
    """Columns shown right-aligned."""
    sortable: tuple[int, ...] = ()
    """Columns that ``s`` steps through, in order."""
    descending: tuple[int, ...] = ()
    """Columns sorted largest (newest) first when chosen."""
    default_sort: int = 0
    default_reverse: bool = False
    hide_none: bool = True
    """Leave out the events without an item (no user name, not HTTP); shares are then of
    the events with one."""


def _counts_spec(name: str, title: str, field: str, key_title: str, *,
                 label: str | None = None, select: str | None = None,
                 hide_none: bool = True) -> TableSpec:
    columns = ("", key_title, *((label,) if label else ()), "events", "%")
    n = len(columns)
    return TableSpec(name, title, columns, field=field, select=select,
                     numeric=(n - 2, n - 1), sortable=tuple(range(1, n - 1)),
                     descending=(n - 2,), default_sort=n - 2, default_reverse=True,
                     hide_none=hide_none)


#: Every table, in the order of their keys (1 to 9).
TABLES: Final[tuple[TableSpec, ...]] = (
    TableSpec("events", "events", ("time", "service", "action", "address", "cc", "user",
                                   "detail"), sortable=(0, 1, 2, 3, 4, 5, 6),
              descending=(0,), default_sort=0, default_reverse=True),
    _counts_spec("countries", "countries", "country", "cc", label="country",
                 select="country", hide_none=False),
    _counts_spec("asns", "asns", "asn", "asn", label="organisation", select="asn",
                 hide_none=False),
    _counts_spec("ips", "ips", "ip", "address", select="ip"),
    _counts_spec("users", "users", "user", "user tried"),
    _counts_spec("services", "services", "service", "service"),
    _counts_spec("ports", "ports", "dst_port", "port"),
    _counts_spec("hosts", "hosts", "host", "http host", select="host"),
    TableSpec("active", "active", ("since", "service", "address", "port", "user", "cc",
                                   "open"), numeric=(3, 6), sortable=(0, 1, 2, 3, 4, 5, 6),
              descending=(0, 6), default_sort=0, default_reverse=True),
)
BY_NAME: Final = {t.name: t for t in TABLES}


def _detail(e: Event) -> str:
    a = e.attrs or {}
    if a.get("host") or a.get("path"):
        return f"{a.get('method') or ''} {a.get('host') or ''}{a.get('path') or ''}".strip()
    if a.get("sni"):
        return f"sni {a['sni']}"
    if a.get("client"):
        return str(a["client"])
    return "" if e.dst_port is None else f"port {e.dst_port}"


def event_rows(events: Iterable[Event]) -> list[Row]:
    rows = []
    for e in events:
        address = e.src_ip if e.direction == "inbound" else e.dst_ip
        detail = _detail(e)
        values = (e.ts, e.service, e.action, address, e.country, e.user, detail)
        style = ("red" if e.action in ("auth_failure", "invalid_user")
                 else "bold green" if e.action == "auth_success" else "")
        cells = (cell(e.ts, style="dim"), cell(e.service, 8), cell(e.action, 12, style=style),
                 cell(address, 39, style="cyan"), cell(e.country, 2), cell(e.user, 16),
                 cell(detail, 30))
        rows.append(Row(e.id, values, cells, address))
    return rows


def count_rows(spec: TableSpec, counts: shapes.Counts,
               selected: Callable[[Any], bool]) -> list[Row]:
    rows = []
    items = counts.items
    total = counts.total
    if spec.hide_none:
        total -= sum(i.count for i in items if i.key is None)
        items = [i for i in items if i.key is not None]
    total = max(total, 1)
    for item in items:
        key = item.key
        share = 100.0 * item.count / total
        mark = spec.select is not None and key is not None and selected(key)
        label: tuple[Any, ...] = (item.label,) if len(spec.columns) == 5 else ()
        values = ("*" if mark else "", key, *label, item.count, share)
        cells = (cell("●" if mark else "", 1, style="bold yellow"),
                 cell("(none)" if key is None else key, 39,
                      style="dim" if key is None else "cyan" if spec.field == "ip" else ""),
                 *[cell(v, 28) for v in label],
                 cell(item.count, right=True), cell(f"{share:.1f}", right=True))
        address = key if spec.field == "ip" and isinstance(key, str) else None
        rows.append(Row(key, values, cells, address))
    return rows


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def session_rows(sessions: Iterable[shapes.Session], now: dt.datetime) -> list[Row]:
    rows = []
    for s in sessions:
        open_for = (now - s.start).total_seconds() if s.start is not None else 0.0
        values = (s.start, s.service, s.src_ip, s.dst_port, s.user, s.country, open_for)
        cells = (cell(s.start, style="dim"), cell(s.service, 8), cell(s.src_ip, 39,
                                                                      style="cyan"),
                 cell(s.dst_port, right=True), cell(s.user, 16), cell(s.country, 2),
                 cell(_age(open_for), right=True))
        rows.append(Row(s.session, values, cells, s.src_ip))
    return rows


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None or value == "":
        return (2, "")
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, dt.datetime):
        return (0, value.timestamp())
    return (1, str(value).casefold())


def sort_rows(rows: Sequence[Row], column: int, reverse: bool) -> list[Row]:
    """Rows ordered by one column (empty values last either way)."""
    filled = [r for r in rows if _sort_key(r.values[column])[0] != 2]
    empty = [r for r in rows if _sort_key(r.values[column])[0] == 2]
    filled.sort(key=lambda r: _sort_key(r.values[column]), reverse=reverse)
    return filled + empty


def filter_rows(rows: Sequence[Row], text: str) -> list[Row]:
    """Rows where any value contains ``text`` (case-insensitive, as shown on screen)."""
    needle = text.casefold().strip()
    if not needle:
        return list(rows)
    return [r for r in rows
            if any(needle in printable(str(v)).casefold() for v in r.values if v is not None)]
