"""The alerts' SQLite file: bounded first-seen memory, hits for the digest, meta."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from portolan.alerts.state import HITS_DAYS, State


def test_seen_values_are_bounded_least_recently_seen_first(tmp_path: Path) -> None:
    state = State(tmp_path / "alerts.db")
    seen = state.seen("r", limit=3)
    assert seen.add("ssh", "FR", 1.0)
    assert seen.add("ssh", "DE", 2.0)
    assert seen.add("ssh", "IT", 3.0)
    assert not seen.add("ssh", "FR", 4.0)  # FR is now the most recent
    assert seen.add("ssh", "ES", 5.0)  # DE, the least recently seen, is forgotten
    state.save([seen])
    state.close()

    again = State(tmp_path / "alerts.db")
    reloaded = again.seen("r", limit=3)
    assert set(reloaded.items) == {("ssh", "FR"), ("ssh", "IT"), ("ssh", "ES")}
    assert reloaded.add("ssh", "DE", 6.0)
    assert not reloaded.add("ssh", "FR", 7.0)
    rows = sqlite3.connect(tmp_path / "alerts.db").execute(
        "SELECT COUNT(*) FROM seen WHERE rule = 'r'").fetchone()
    assert rows == (3,)
    assert again.seen("other", 3).items == {}


def test_summary_counts_outcomes_and_top_subjects(tmp_path: Path) -> None:
    state = State(tmp_path / "alerts.db")
    hits = [(100.0 + i, "ssh", "a" if i < 3 else "b", "line", "sent" if i % 2 else "throttled")
            for i in range(5)]
    hits.append((50.0, "ssh", "old", "line", "sent"))
    hits.append((101.0, "sdr", "", "line", "held"))
    state.save([], hits)
    summary = state.summary(100.0, 200.0)
    outcomes, top = summary["ssh"]
    assert outcomes == {"sent": 2, "throttled": 3}
    assert top == [("a", 3), ("b", 2)]
    assert summary["sdr"][0] == {"held": 1} and summary["sdr"][1] == []


def test_prune_and_meta(tmp_path: Path) -> None:
    state = State(tmp_path / "alerts.db")
    now = 10 * 86400.0
    state.save([], [(now - HITS_DAYS * 86400 - 1, "r", "", "x", "sent"),
                    (now - 10, "r", "", "y", "sent")])
    state.prune(now)
    assert state.summary(0, now)["r"][0] == {"sent": 1}
    assert state.get("last_digest") is None
    state.put("last_digest", "2026-11-23T08:00:00+00:00")
    state.put("last_digest", "2026-11-24T08:00:00+00:00")
    assert state.get("last_digest") == "2026-11-24T08:00:00+00:00"
