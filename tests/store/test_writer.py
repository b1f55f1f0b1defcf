"""The writer's batch preparation, without a database."""

from __future__ import annotations

from portolan.event import FIELDS
from portolan.store.writer import event_columns, event_row, prepare

from .test_contract import ev


def test_columns_round_trip_rows() -> None:
    events = [ev(i, country="NL" if i % 2 else None, payload=b"x" if i == 3 else None,
                 attrs={"k": i} if i == 4 else {}) for i in range(6)]
    columns = event_columns(events)
    assert columns.count == 6
    rows = list(columns.rows())
    assert [list(r) for r in rows] == [event_row(e) for e in events]
    assert rows[4][FIELDS.index("attrs")] == '{"k":4}'
    assert rows[3][FIELDS.index("payload")] == b"x"
    assert rows[0][FIELDS.index("ts")] == int(events[0].ts.timestamp()) * 1_000_000


def test_shapes_name_only_the_columns_rows_fill() -> None:
    events = [ev(i, country="NL", asn=1136) if i % 3 else ev(i) for i in range(9)]
    shapes = event_columns(events).shapes()
    assert sorted(len(rows) for _, rows in shapes) == [3, 6]
    for columns, rows in shapes:
        named = {FIELDS[i] for i in columns}
        assert "id" in named and "ts" in named
        placed = {"country", "asn"} <= named
        assert placed == (len(rows) == 6)
        for row in rows:  # every value a row has is in a named column
            assert all(row[i] is None for i in range(len(FIELDS)) if i not in columns)
    every = [row for _, rows in shapes for row in rows]
    assert sorted(every) == sorted(event_columns(events).rows())


def test_prepare_drops_repeated_ids_and_counts_them() -> None:
    a, b = ev(1), ev(2)
    prepared = prepare([a, b, a])
    assert prepared.events == [a, b]
    assert prepared.received == 3
    assert prepared.columns.count == 2
