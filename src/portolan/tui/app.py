"""The terminal live view: :class:`TopApp`, a Textual app over a :class:`Feed`.

Every ``refresh`` seconds a worker thread asks the feed a few cheap questions (counters,
the events-per-second series, the rows of the table on screen) and hands the answers to
the screen in one :class:`Snapshot`; the screen itself never waits on the store or the
network. Selected items are measured and exported every :data:`EXPORT_EVERY` seconds, and
at once when the selection changes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from rich.text import Text
from textual.app import App
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Input, Sparkline, Static

from portolan.text import printable
from portolan.tui import tables
from portolan.tui.export import (
    SELECTION_FILE,
    TSV_FILE,
    Exporter,
    Item,
    Measured,
    Selection,
    SelectionFull,
    measure,
    write_tsv,
)
from portolan.tui.feeds import Feed, FeedError
from portolan.tui.screens import HelpScreen, StoryScreen

#: Time windows the view offers: name and length in seconds (None: everything).
WINDOWS: Final[tuple[tuple[str, int | None], ...]] = (
    ("5m", 300), ("1h", 3600), ("24h", 86400), ("7d", 604800), ("all", None))
#: Rows asked for a table.
ROWS: Final = 200
#: Seconds between two measurements of the selection.
EXPORT_EVERY: Final = 10.0
_FAILED = ("auth_failure", "invalid_user")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def spark_range(window: int | None) -> tuple[int, int]:
    """The span and the bucket width of the sparkline for a window, in seconds: at least
    the last hour, per minute."""
    if window is None or window > 86400:
        return 604800, 3600
    if window > 3600:
        return 86400, 900
    return 3600, 60


def _span_name(seconds: int) -> str:
    return {3600: "1h", 86400: "24h", 604800: "7d"}.get(seconds, f"{seconds}s")


@dataclass
class Snapshot:
    """What one poll found."""

    when: dt.datetime
    table: str
    window: str = ""
    rows: list[tables.Row] = field(default_factory=list)
    events: int = 0
    failed: int = 0
    succeeded: int = 0
    countries: int = 0
    active: int = 0
    rate: float = 0.0
    spark: list[float] = field(default_factory=list)
    measured: list[Measured] | None = None
    error: str | None = None
    generation: int = 0


class TopApp(App[None]):
    """``portolan top``."""

    TITLE = "portolan top"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #title { height: 1; background: $primary-background; color: $text; }
    #counters { height: 1; }
    #rate { height: 2; }
    #spark-label { width: 11; height: 2; color: $text-muted; }
    #spark { height: 2; width: 1fr; }
    #tabs { height: 1; color: $text-muted; }
    #table { height: 1fr; }
    #filter { display: none; height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "keys"),
        Binding("slash", "filter", "filter"),
        Binding("space", "select", "select"),
        Binding("w", "window(1)", "window"),
        Binding("W", "window(-1)", "window", show=False),
        Binding("s", "sort", "sort", show=False),
        Binding("r", "reverse", "reverse", show=False),
        Binding("e", "export", "export", show=False),
        Binding("c", "clear_selection", "clear", show=False),
        Binding("p", "pause", "pause", show=False),
        Binding("tab", "table(1)", "next table", show=False, priority=True),
        Binding("shift+tab", "table(-1)", "previous table", show=False, priority=True),
        *[Binding(str(i + 1), f"show('{t.name}')", t.title, show=False)
          for i, t in enumerate(tables.TABLES)],
    ]

    def __init__(self, feed: Feed, data_dir: Path, *,
                 metrics: tuple[str, int] | None = ("127.0.0.1", 8001),
                 refresh: float = 2.0, window: str = "1h",
                 now: Callable[[], dt.datetime] = _utcnow) -> None:
        super().__init__()
        if window not in dict(WINDOWS):
            raise ValueError(f"window: {window!r}; allowed: "
                             f"{', '.join(n for n, _ in WINDOWS)}")
        self.feed = feed
        self.data_dir = data_dir
        self.metrics = metrics
        self.refresh_seconds = refresh
        self.now = now
        self.window_index = [n for n, _ in WINDOWS].index(window)
        self.spec = tables.TABLES[0]
        self.sort: dict[str, tuple[int, bool]] = {
            t.name: (t.default_sort, t.default_reverse) for t in tables.TABLES}
        self.filter_text = ""
        self.filter_pending = False
        """"/" was pressed and the filter box has not had the focus yet."""
        self.paused = False
        self.snapshot: Snapshot | None = None
        self.shown_rows: list[tables.Row] = []
        self.selection, self.selection_warning = Selection.load(data_dir / SELECTION_FILE)
        self.exporter = Exporter()
        self.metrics_port: int | None = None
        self.metrics_error: str | None = None
        self.measured: list[Measured] = []
        self.tsv_path = data_dir / TSV_FILE
        self._measured_at = -1e9
        self._generation = 0
        self._wanted = 0
        self._in_flight = 0

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> Any:
        yield Static(id="title")
        yield Static(id="counters")
        with Horizontal(id="rate"):
            yield Static(id="spark-label")
            yield Sparkline([], id="spark")
        yield Static(id="tabs")
        yield DataTable(id="table", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter: type to narrow the table", id="filter",
                    compact=True, select_on_focus=False)
        yield Footer()

    def on_mount(self) -> None:
        if self.metrics is not None:
            host, port = self.metrics
            try:
                self.metrics_port = self.exporter.serve(host, port)
            except OSError as exc:
                self.metrics_error = f"metrics on {host}:{port}: {exc.strerror or exc}"
                self.notify(self.metrics_error, severity="error", markup=False)
        if self.selection_warning:
            self.notify(self.selection_warning, severity="warning", markup=False)
        self._set_columns()
        self._draw_title()
        self._draw_tabs()
        self.poll()
        self.set_interval(self.refresh_seconds, self.tick)

    def on_unmount(self) -> None:
        self.exporter.stop()

    @property
    def window(self) -> tuple[str, int | None]:
        return WINDOWS[self.window_index]

    # -- polling -----------------------------------------------------------------------

    def tick(self) -> None:
        """The timer: poll, unless paused or the previous poll is still under way (a slow
        store or server gets no pile of queries)."""
        if not self.paused and self._in_flight == 0:
            self.poll(changed=False)

    def poll(self, *, changed: bool = True, force_measure: bool = False) -> None:
        """Start a fetch in a worker thread. After a change (table, window, selection)
        the answers of polls started before it are dropped."""
        due = force_measure or time.monotonic() - self._measured_at >= EXPORT_EVERY
        items = list(self.selection.items) if due else None
        if due:
            self._measured_at = time.monotonic()
        self._generation += 1
        if changed:
            self._wanted = self._generation
        self._in_flight += 1
        spec, window, chosen = self.spec, self.window, frozenset(self.selection.items)
        generation = self._generation
        self.run_worker(lambda: self._fetch(spec, window, chosen, items, generation),
                        thread=True, group="poll")

    def _fetch(self, spec: tables.TableSpec, window: tuple[str, int | None],
               chosen: frozenset[Item], items: list[Item] | None, generation: int) -> None:
        now = self.now()
        since = None if window[1] is None else now - dt.timedelta(seconds=window[1])
        snap = Snapshot(when=now, table=spec.name, window=window[0], generation=generation)
        try:
            self._fill(snap, spec, window[1], now, chosen)
            if items is not None:
                snap.measured = measure(self.feed, items, since)
        except FeedError as exc:
            snap.error = str(exc)
        self.call_from_thread(self._apply, snap)

    def _fill(self, snap: Snapshot, spec: tables.TableSpec, window: int | None,
              now: dt.datetime, chosen: frozenset[Item]) -> None:
        """Ask the feed what one refresh shows (in a worker thread: no screen access)."""
        feed = self.feed
        since = None if window is None else now - dt.timedelta(seconds=window)
        actions = feed.counts("action", since, 50)
        snap.events = actions.total
        snap.failed = sum(i.count for i in actions.items if i.key in _FAILED)
        snap.succeeded = sum(i.count for i in actions.items if i.key == "auth_success")
        snap.countries = len([i for i in feed.counts("country", since, 300).items
                              if i.key is not None])
        active = feed.active(1000)
        snap.active = len(active)
        span, step = spark_range(window)
        series = feed.series(now - dt.timedelta(seconds=span), step, now)
        snap.spark = [p.count / step for p in series.points]
        full = [p for p in series.points if p.t + dt.timedelta(seconds=step) <= now]
        snap.rate = full[-1].count / step if full else 0.0
        if spec.field is not None:
            counts = feed.counts(spec.field, since, ROWS)
            snap.rows = tables.count_rows(spec, counts,
                                          lambda key: (spec.select, key) in chosen)
        elif spec.name == "events":
            snap.rows = tables.event_rows(feed.events(since, ROWS))
        else:
            snap.rows = tables.session_rows(active[:ROWS], now)

    def _apply(self, snap: Snapshot) -> None:
        self._in_flight -= 1
        if snap.generation < self._wanted:
            return
        if snap.measured is not None and snap.error is None:
            self.measured = snap.measured
            self.exporter.update(snap.measured)
            try:
                write_tsv(self.tsv_path, snap.measured, snap.window, snap.when)
            except OSError as exc:
                self.notify(f"{self.tsv_path}: {exc.strerror or exc}", severity="error",
                            markup=False)
        if snap.error is not None:
            if self.snapshot is not None:
                self.snapshot.error = snap.error
                self._draw_counters(self.snapshot)
            else:
                self.snapshot = snap
                self._draw_counters(snap)
            return
        if snap.table != self.spec.name:
            return
        self.snapshot = snap
        self._draw_counters(snap)
        self.query_one("#spark", Sparkline).data = snap.spark or [0.0]
        span = spark_range(self.window[1])[0]
        label = Text(f"events/s\n{_span_name(span)} ", style="dim")
        label.append(f"{max(snap.spark or [0.0]):.3g}", style="bold")
        self.query_one("#spark-label", Static).update(label)
        self._draw_rows()
        self._draw_title()

    # -- drawing -----------------------------------------------------------------------

    def _draw_title(self) -> None:
        text = Text(" portolan top ", style="bold")
        text.append(printable(self.feed.where, 40), style="")
        text.append(f"  window {self.window[0]}", style="bold")
        if self.paused:
            text.append("  paused", style="bold yellow")
        if self.snapshot is not None:
            text.append(self.snapshot.when.astimezone(dt.UTC).strftime("  %H:%M:%S UTC"))
        self.query_one("#title", Static).update(text)

    def _draw_counters(self, snap: Snapshot) -> None:
        text = Text()
        if snap.error is not None:
            text.append(printable(snap.error, 78), style="bold red")
            self.query_one("#counters", Static).update(text)
            return
        for name, value, style in (
            ("events", f"{snap.events:,}", "bold"),
            ("now/s", f"{snap.rate:.2f}", "bold"),
            ("failed", f"{snap.failed:,}", "bold red"),
            ("ok", f"{snap.succeeded:,}", "bold green"),
            ("countries", f"{snap.countries}", "bold"),
            ("active", f"{snap.active}", "bold"),
            ("selected", f"{len(self.selection)}", "bold yellow"),
        ):
            text.append(f"{name} ", style="dim")
            text.append(value + "  ", style=style)
        if self.metrics_port is not None:
            text.append(f":{self.metrics_port}", style="dim")
        self.query_one("#counters", Static).update(text)

    def _draw_tabs(self) -> None:
        text = Text()
        for i, t in enumerate(tables.TABLES):
            style = "bold reverse" if t is self.spec else ""
            text.append(f"{i + 1}", style="bold yellow")
            text.append(f" {t.title} ", style=style)
        self.query_one("#tabs", Static).update(text)

    def _set_columns(self) -> None:
        table = self.query_one("#table", DataTable)
        table.clear(columns=True)
        column, reverse = self.sort[self.spec.name]
        for i, name in enumerate(self.spec.columns):
            label = Text(name, style="bold")
            if i == column and name:
                label.append(" ▼" if reverse else " ▲")
            table.add_column(label, key=str(i))

    def _draw_rows(self) -> None:
        table = self.query_one("#table", DataTable)
        current = None
        if self.shown_rows and 0 <= table.cursor_row < len(self.shown_rows):
            current = self.shown_rows[table.cursor_row].key
        rows = self.snapshot.rows if self.snapshot is not None else []
        rows = tables.filter_rows(rows, self.filter_text)
        column, reverse = self.sort[self.spec.name]
        rows = tables.sort_rows(rows, column, reverse)
        self.shown_rows = rows
        table.clear()
        for row in rows:
            table.add_row(*row.cells)
        for i, row in enumerate(rows):
            if row.key == current:
                table.move_cursor(row=i, animate=False)
                break

    # -- actions -----------------------------------------------------------------------

    _MAIN_ONLY: ClassVar[frozenset[str]] = frozenset({
        "filter", "select", "window", "sort", "reverse", "export", "clear_selection",
        "pause", "table", "show"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The keys of the tables act only while the tables are on screen (not under an
        address's story)."""
        if self.filter_pending and action in self._MAIN_ONLY | {"quit", "help"}:
            return False
        if action in self._MAIN_ONLY:
            return self.screen is self.default_screen
        return True

    def action_help(self) -> None:
        extra = f"selection: {self.selection.path}\nTSV export: {self.tsv_path}"
        if self.metrics_port is not None and self.metrics is not None:
            extra += f"\nmetrics: http://{self.metrics[0]}:{self.metrics_port}/metrics"
        elif self.metrics_error:
            extra += f"\n{self.metrics_error}"
        self.push_screen(HelpScreen(extra))

    def action_show(self, name: str) -> None:
        spec = tables.BY_NAME[name]
        if spec is self.spec:
            return
        self.spec = spec
        self.shown_rows = []
        box = self.query_one("#filter", Input)
        if box.value:
            box.value = ""  # a filter belongs to the table it was typed for
            box.display = False
        self.filter_text = ""
        if self.snapshot is not None:
            self.snapshot.rows = []
        self._set_columns()
        self._draw_rows()
        self._draw_tabs()
        self.poll()

    def action_table(self, step: int) -> None:
        index = tables.TABLES.index(self.spec)
        self.action_show(tables.TABLES[(index + step) % len(tables.TABLES)].name)

    def action_sort(self) -> None:
        spec = self.spec
        column = self.sort[spec.name][0]
        later = [c for c in spec.sortable if c > column]
        column = later[0] if later else spec.sortable[0]
        self.sort[spec.name] = (column, column in spec.descending)
        self._set_columns()
        self._draw_rows()

    def action_reverse(self) -> None:
        column, reverse = self.sort[self.spec.name]
        self.sort[self.spec.name] = (column, not reverse)
        self._set_columns()
        self._draw_rows()

    def action_window(self, step: int) -> None:
        self.window_index = (self.window_index + step) % len(WINDOWS)
        self._draw_title()
        self.poll(force_measure=True)

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._draw_title()
        if not self.paused:
            self.poll()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        # keys typed right after "/" (a paste, a slow link) may come before the box has
        # the focus: they go to the box too, not to the table's keys
        self.filter_pending = True
        self.screen.set_focus(box)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._draw_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        box = self.query_one("#filter", Input)
        if not box.value:
            box.display = False
        self.query_one("#table", DataTable).focus()

    def on_key(self, event: Any) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus:
            self.filter_pending = False
        elif self.filter_pending and event.is_printable and event.character:
            event.stop()
            box.insert_text_at_cursor(event.character)
            return
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.value = ""
            box.display = False
            self.query_one("#table", DataTable).focus()

    def current_row(self) -> tables.Row | None:
        table = self.query_one("#table", DataTable)
        if 0 <= table.cursor_row < len(self.shown_rows):
            return self.shown_rows[table.cursor_row]
        return None

    def action_select(self) -> None:
        row = self.current_row()
        kind = self.spec.select
        if row is None or kind is None or row.key is None:
            if kind is None:
                self.notify("rows of this table cannot be exported; select addresses (4), "
                            "HTTP hosts (8), countries (2) or ASNs (3)", markup=False)
            return
        try:
            chosen = self.selection.toggle(kind, row.key)
        except SelectionFull as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        except OSError as exc:
            self.notify(f"{self.selection.path}: {exc.strerror or exc}", severity="error",
                        markup=False)
            return
        if self.snapshot is not None:
            self.snapshot.rows = [self._remark(r, kind, chosen) if r.key == row.key else r
                                  for r in self.snapshot.rows]
            self._draw_counters(self.snapshot)
            self._draw_rows()
        self.poll(force_measure=True)

    @staticmethod
    def _remark(row: tables.Row, kind: str, chosen: bool) -> tables.Row:
        mark = tables.cell("●" if chosen else "", 1, style="bold yellow")
        return tables.Row(row.key, ("*" if chosen else "", *row.values[1:]),
                          (mark, *row.cells[1:]), row.address)

    def action_clear_selection(self) -> None:
        self.selection.clear()
        self.poll(force_measure=True)
        self.notify("selection cleared", markup=False)

    def action_export(self) -> None:
        self.poll(force_measure=True)
        self.notify(f"{len(self.selection)} items: {self.tsv_path}", markup=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        row = self.current_row()
        if row is None or not row.address:
            self.notify("no address on this row", markup=False)
            return
        self.push_screen(StoryScreen(self.feed, row.address))
