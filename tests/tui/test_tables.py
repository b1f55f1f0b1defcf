"""Rows made safe to show: escaped, cut, never markup; sorting and filtering."""

from __future__ import annotations

import datetime as dt

from portolan.event import Event
from portolan.server import shapes
from portolan.tui import tables
from tests.tui.conftest import EVIL_USER


def test_cell_escapes_control_characters_and_keeps_markup_literal() -> None:
    text = tables.cell(EVIL_USER)
    assert text.plain == "\\x1b[31m[bold red]pwn[/]"
    assert "\x1b" not in text.plain
    assert text.spans == []  # "[bold red]" gave no style


def test_cell_cuts_long_values_with_an_ellipsis() -> None:
    text = tables.cell("a" * 500, 40)
    assert len(text.plain) == 40
    assert text.plain.endswith("…")
    assert tables.cell("\n" * 30, 10).plain == "\\n" * 4 + "\\…"


def test_every_table_has_sortable_columns_within_its_columns() -> None:
    for spec in tables.TABLES:
        assert spec.sortable
        assert all(0 <= c < len(spec.columns) for c in spec.sortable + spec.descending)
        assert spec.default_sort in spec.sortable
    assert len(tables.TABLES) == 9  # one per key, 1 to 9


def _counts(*items: tuple[object, str | None, int], other: int = 0) -> shapes.Counts:
    its = [shapes.CountItem(key=k, label=lab, count=n) for k, lab, n in items]  # type: ignore[arg-type]
    return shapes.Counts(field="x", items=its, other=other,
                         total=sum(i.count for i in its) + other)


def test_count_rows_hide_events_without_an_item_and_mark_the_selected() -> None:
    spec = tables.BY_NAME["hosts"]
    rows = tables.count_rows(spec, _counts(("a.test", None, 3), (None, None, 10),
                                           ("b.test", None, 1)), lambda k: k == "b.test")
    assert [r.key for r in rows] == ["a.test", "b.test"]
    assert [r.values[-1] for r in rows] == [75.0, 25.0]  # shares of the HTTP events only
    assert [r.values[0] for r in rows] == ["", "*"]
    assert rows[1].cells[0].plain == "●"

    countries = tables.count_rows(tables.BY_NAME["countries"],
                                  _counts(("NL", "Netherlands", 2), (None, None, 2)),
                                  lambda k: False)
    assert [r.key for r in countries] == ["NL", None]  # unlocated addresses are shown
    assert countries[1].cells[1].plain == "(none)"


def test_event_rows_show_the_remote_address_and_what_was_asked() -> None:
    t = dt.datetime(2026, 11, 23, 5, 0, 1, tzinfo=dt.UTC)
    rows = tables.event_rows([
        Event(id="a", ts=t, service="http", action="request", src_ip="192.0.2.1",
              attrs={"method": "GET", "host": "h.test", "path": "/x\x1b"}),
        Event(id="b", ts=t, service="tcp", action="connect", direction="outbound",
              src_ip="10.0.0.1", dst_ip="198.51.100.2", dst_port=443),
    ])
    assert rows[0].address == "192.0.2.1"
    assert rows[0].cells[6].plain == "GET h.test/x\\x1b"
    assert rows[0].cells[0].plain == "05:00:01"
    assert rows[1].address == "198.51.100.2"
    assert rows[1].cells[6].plain == "port 443"


def test_sort_puts_empty_values_last_both_ways() -> None:
    spec = tables.BY_NAME["asns"]
    rows = tables.count_rows(spec, _counts((64500, "B org", 1), (None, None, 5),
                                           (3, "a org", 2)), lambda k: False)
    assert [r.key for r in tables.sort_rows(rows, 1, False)] == [3, 64500, None]
    assert [r.key for r in tables.sort_rows(rows, 1, True)] == [64500, 3, None]
    assert [r.key for r in tables.sort_rows(rows, 2, False)] == [3, 64500, None]
    assert [r.key for r in tables.sort_rows(rows, 3, True)] == [None, 3, 64500]


def test_filter_matches_what_is_shown_case_insensitively() -> None:
    spec = tables.BY_NAME["users"]
    rows = tables.count_rows(spec, _counts((EVIL_USER, None, 1), ("Root", None, 2)),
                             lambda k: False)
    assert [r.key for r in tables.filter_rows(rows, "root")] == ["Root"]
    assert [r.key for r in tables.filter_rows(rows, "\\x1b")] == [EVIL_USER]
    assert len(tables.filter_rows(rows, "  ")) == 2
