"""The writer's batch preparation, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from portolan.event import FIELDS
from portolan.store.writer import event_columns, prepare

from .test_contract import ev


def test_columns_hold_what_the_table_stores() -> None:
    events = [ev(i, country="NL" if i % 2 else None, payload=b"x" if i == 3 else None,
                 attrs={"k": i} if i == 4 else {}) for i in range(6)]
    columns = event_columns(events)
    assert columns.count == 6
    rows = [dict(zip(FIELDS, row, strict=True)) for row in columns.rows()]
    for e, row in zip(events, rows, strict=True):
        assert row["ts"] == int(e.ts.timestamp()) * 1_000_000
        assert type(row["ts"]) is int
        for name in ("id", "sensor", "service", "action", "src_ip", "src_port", "user",
                     "country", "received"):
            assert row[name] == getattr(e, name)
    assert [row["attrs"] for row in rows] == [None, None, None, None, '{"k":4}', None]
    assert [row["payload"] for row in rows] == [None, None, None, b"x", None, None]
    assert type(rows[3]["payload"]) is bytes  # the Payload subclass is not bound as is
    assert [row["country"] for row in rows] == [None, "NL"] * 3


def test_shapes_name_only_the_columns_rows_fill() -> None:
    events = [ev(i, country="NL", asn=1136) if i % 3 else ev(i) for i in range(9)]
    table = event_columns(events)
    every_row = list(table.rows())
    shapes = [(columns, [every_row[i] for i in positions] if positions is not None
               else every_row) for columns, positions in table.shapes()]
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


def test_statements_cut_at_the_parameter_limit_keep_every_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of two shapes, cut into statements of a few rows each (the limit made small):
    every stored row holds the values of its own event."""
    import sqlite3

    from portolan.store import Store, writer

    monkeypatch.setattr(writer, "_PARAMS_PER_STATEMENT", 40)
    events = [ev(i, country="NL", asn=1136 + i) if i % 3 else ev(i, user=f"u{i}")
              for i in range(25)]
    table = event_columns(events)
    statements = table.inserts(True)
    assert len(statements) > 4
    assert all(len(flat) <= 40 for _, flat in statements)
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    store.migrate()
    assert store.write(events).stored == 25
    store.close()
    with sqlite3.connect(tmp_path / "p.db") as conn:
        stored = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, user, country, asn, src_port FROM events")}
    assert stored == {e.id: (e.user, e.country, e.asn, e.src_port) for e in events}
