"""The terminal view's secondary screens: one address's story, and the list of keys.

Everything an address's story shows that a peer chose (user names, paths, client names)
goes through :func:`~portolan.tui.tables.cell` or :func:`~portolan.text.printable` into
:class:`rich.text.Text`, never into markup.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from portolan.server import shapes
from portolan.text import printable
from portolan.tui.tables import CELL_MAX

if TYPE_CHECKING:
    from portolan.tui.feeds import Feed

#: The keys of the main screen, as the help screen lists them.
KEYS: tuple[tuple[str, str], ...] = (
    ("1-9, tab", "switch table (the bar above the table names them)"),
    ("/", "filter rows by typing; enter keeps it, escape clears it"),
    ("s / r", "sort by the next column / reverse the order"),
    ("w / W", "time window longer / shorter: 5m 1h 24h 7d all"),
    ("space", "select a row for export (ips, hosts, countries, asns)"),
    ("e", "export now: TSV file and metrics"),
    ("c", "clear the selection"),
    ("enter", "open the row's address: its story (* stars it)"),
    ("p", "pause or resume live updates"),
    ("?", "this list (any key closes it)"),
    ("q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    """The keys, over the main screen; any key closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 78; max-height: 22; border: round $accent;
                          background: $surface; padding: 0 1; }
    """

    def __init__(self, extra: str = "") -> None:
        super().__init__()
        self.extra = extra

    def compose(self) -> Any:
        text = Text("Keys\n", style="bold")
        for key, what in KEYS:
            text.append(f"{key:>9}  ", style="bold yellow")
            text.append(what + "\n")
        if self.extra:
            text.append("\n" + "\n".join(printable(line, 74)
                                          for line in self.extra.splitlines()), style="dim")
        yield Static(text, id="help")

    def on_key(self, event: Any) -> None:
        event.stop()
        self.dismiss()


def _when(t: dt.datetime | None) -> str:
    return "" if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _count_list(title: str, items: list[shapes.CountItem], limit: int = 8) -> Text:
    text = Text(f"{title}: ", style="bold")
    if not items:
        text.append("none", style="dim")
    for i, item in enumerate(items[:limit]):
        if i:
            text.append(", ")
        key = "(none)" if item.key is None else printable(str(item.key), CELL_MAX)
        text.append(key, style="cyan")
        text.append(f" {item.count}", style="dim")
    if len(items) > limit:
        text.append(f", … {len(items) - limit} more", style="dim")
    return text


def story_text(story: shapes.Story) -> Text:
    """An address's story as one Text (safe: no markup, escaped attacker text)."""
    a = story.address
    out = Text()
    out.append(printable(a.ip, 64), style="bold cyan")
    if a.starred:
        out.append("  ★ starred", style="bold yellow")
    out.append("\n")
    place = " ".join(x for x in (a.country or "", f"AS{a.asn}" if a.asn is not None else "",
                                 printable(a.as_org or "", 60)) if x)
    if place:
        out.append(place + "\n")
    out.append(f"first seen {_when(a.first_seen)}\nlast seen  {_when(a.last_seen)}\n")
    out.append(f"events {a.events}   failed logins {a.failures}   "
               f"successful logins {a.successes}\n", style="bold")
    if a.note:
        out.append("note: " + printable(a.note, 200) + "\n", style="italic")
    for title, items in (("services", story.services), ("actions", story.actions),
                         ("users tried", story.users), ("ports", story.ports),
                         ("payloads", story.payload_kinds), ("sensors", story.sensors)):
        out.append_text(_count_list(title, items))
        out.append("\n")
    out.append("\nnewest events\n", style="bold")
    for e in story.recent:
        out.append(e.ts.astimezone(dt.UTC).strftime("%m-%d %H:%M:%S "), style="dim")
        out.append(f"{printable(e.service, 8):<8} {printable(e.action, 14):<14} ")
        if e.user is not None:
            out.append("user ")
            out.append(printable(e.user, CELL_MAX), style="yellow")
            out.append(" ")
        if e.dst_port is not None:
            out.append(f"port {e.dst_port}")
        out.append("\n")
    if story.links:
        out.append("\n")
        for name, url in story.links.items():
            out.append(f"{name}: {url}\n", style="dim")
    return out


class StoryScreen(Screen[None]):
    """One address: what it did, from the same data as the API's ``/ips/{ip}``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace,left", "app.pop_screen", "back"),
        Binding("asterisk,s", "star", "star/unstar"),
        Binding("q", "app.quit", "quit"),
    ]
    DEFAULT_CSS = """
    StoryScreen #story { padding: 0 1; }
    """

    def __init__(self, feed: Feed, ip: str) -> None:
        super().__init__()
        self.feed = feed
        self.ip = ip
        self.story: shapes.Story | None = None

    def compose(self) -> Any:
        with VerticalScroll():
            yield Static(Text(f"{printable(self.ip, 64)}: reading…", style="dim"), id="story")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def load(self) -> None:
        self.run_worker(self._fetch, thread=True, exclusive=True, group="story")

    def _fetch(self) -> None:
        from portolan.tui.feeds import FeedError

        try:
            found = self.feed.story(self.ip)
        except FeedError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._show, found)

    def _show_error(self, message: str) -> None:
        self.query_one("#story", Static).update(Text(printable(message, 300), style="red"))

    def _show(self, found: shapes.Story | None) -> None:
        self.story = found
        widget = self.query_one("#story", Static)
        if found is None:
            widget.update(Text(f"{printable(self.ip, 64)} has not been seen", style="dim"))
        else:
            widget.update(story_text(found))

    def action_star(self) -> None:
        if self.story is None:
            return
        want = not self.story.address.starred
        self.run_worker(lambda: self._star(want), thread=True, group="star")

    def _star(self, want: bool) -> None:
        from portolan.tui.feeds import FeedError

        try:
            self.feed.star(self.ip, want)
        except FeedError as exc:
            self.app.call_from_thread(self.app.notify, printable(str(exc), 200),
                                      severity="error", markup=False)
            return
        self._fetch()
