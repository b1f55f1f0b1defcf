"""SQLite's log copied back into the database file by the store's own thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from portolan.store import Store
from portolan.store.checkpoint import AUTOCHECKPOINT_PAGES, Checkpointer

from ..waiting import eventually_sync
from .test_contract import ev


def test_the_log_is_copied_back_by_the_thread_not_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "portolan.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    assert store.checkpointer is not None
    store.checkpointer.pages = 64  # a small log suffices here
    try:
        with store.connect() as conn:  # the writer's own checkpoint is only a bound
            pragma = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pragma == AUTOCHECKPOINT_PAGES
        before = db.stat().st_size
        for k in range(6):
            store.write([ev(i, user="u" * 500) for i in range(k * 200, k * 200 + 200)])
        assert eventually_sync(lambda: store.checkpointer is not None
                               and store.checkpointer.done >= 1)
        # the events are in the database file itself now, not only in the log
        assert eventually_sync(lambda: db.stat().st_size > before + 200 * 1024)
    finally:
        store.close()
    check = sqlite3.connect(db)
    assert check.execute("SELECT count(*) FROM events").fetchone()[0] == 1200
    check.close()


def test_a_short_log_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "portolan.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.write([ev(1)])
    try:
        assert Path(f"{db}-wal").stat().st_size > 0
        patient = Checkpointer(db, pages=10_000)
        patient.poke()
        assert eventually_sync(lambda: patient.looked == 1)
        patient.close()
        assert patient.done == 0
        patient.poke()  # closed: does nothing, starts nothing
        assert patient.done == 0
        eager = Checkpointer(db, pages=1)
        eager.poke()
        assert eventually_sync(lambda: eager.done == 1)
        eager.close()
    finally:
        store.close()
