"""What the alerts remember across restarts: a small SQLite file in the data directory.

- the values each ``first_seen`` rule has seen (bounded: the least recently seen are
  forgotten first), so a restart does not announce every country again;
- every hit with what became of it (sent, throttled, held, digest only, failed), for the
  daily digest; kept for :data:`HITS_DAYS` days and at most :data:`HITS_MAX` rows;
- when the last digest went out.

The file belongs to the alert sink alone and is used from one thread at a time (the
sink's state thread), so a plain ``sqlite3`` connection is enough.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Final

HITS_DAYS: Final = 8
HITS_MAX: Final = 200_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    rule TEXT NOT NULL, scope TEXT NOT NULL, value TEXT NOT NULL, last REAL NOT NULL,
    PRIMARY KEY (rule, scope, value)
);
CREATE TABLE IF NOT EXISTS hits (
    ts REAL NOT NULL, rule TEXT NOT NULL, subject TEXT NOT NULL, line TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hits_ts ON hits (ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SeenValues:
    """One ``first_seen`` rule's memory: (scope, value) pairs, least recently seen first.

    :meth:`add` is answered from memory; changes wait in :attr:`dirty` and
    :attr:`evicted` until :meth:`State.save` writes them.
    """

    def __init__(self, rule: str, limit: int) -> None:
        self.rule = rule
        self.limit = limit
        self.items: collections.OrderedDict[tuple[str, str], float] = (
            collections.OrderedDict()
        )
        self.dirty: dict[tuple[str, str], float] = {}
        self.evicted: set[tuple[str, str]] = set()
        self.lock = threading.Lock()

    def add(self, scope: str, value: str, ts: float) -> bool:
        """Remember a sighting; True when the value is new."""
        key = (scope, value)
        with self.lock:
            new = key not in self.items
            last = max(ts, self.items.pop(key, ts))
            self.items[key] = last
            self.dirty[key] = last
            self.evicted.discard(key)
            while len(self.items) > self.limit:
                old, _ = self.items.popitem(last=False)
                self.dirty.pop(old, None)
                self.evicted.add(old)
        return new

    def take(self) -> tuple[list[tuple[str, str, float]], list[tuple[str, str]]]:
        with self.lock:
            dirty = [(s, v, t) for (s, v), t in self.dirty.items()]
            evicted = list(self.evicted)
            self.dirty.clear()
            self.evicted.clear()
        return dirty, evicted


class State:
    """The alert sink's SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.lock = threading.Lock()

    def seen(self, rule: str, limit: int) -> SeenValues:
        """The values ``rule`` has seen, most recent ``limit`` of them."""
        values = SeenValues(rule, limit)
        with self.lock:
            rows = self.db.execute(
                "SELECT scope, value, last FROM seen WHERE rule = ? ORDER BY last DESC LIMIT ?",
                (rule, limit),
            ).fetchall()
        for scope, value, last in reversed(rows):
            values.items[(scope, value)] = last
        return values

    def save(self, seen: Iterable[SeenValues],
             hits: Iterable[tuple[float, str, str, str, str]] = ()) -> None:
        """Write what changed: sightings, forgotten values, new hits."""
        with self.lock, self.db:
            self.db.execute("BEGIN")
            for values in seen:
                dirty, evicted = values.take()
                self.db.executemany(
                    "INSERT INTO seen (rule, scope, value, last) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (rule, scope, value) DO UPDATE SET last = excluded.last",
                    [(values.rule, s, v, t) for s, v, t in dirty],
                )
                self.db.executemany(
                    "DELETE FROM seen WHERE rule = ? AND scope = ? AND value = ?",
                    [(values.rule, s, v) for s, v in evicted],
                )
            self.db.executemany(
                "INSERT INTO hits (ts, rule, subject, line, outcome) VALUES (?, ?, ?, ?, ?)",
                list(hits),
            )

    def prune(self, now: float) -> None:
        """Forget hits older than :data:`HITS_DAYS` days, and beyond :data:`HITS_MAX`."""
        with self.lock, self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM hits WHERE ts < ?", (now - HITS_DAYS * 86400,))
            self.db.execute(
                "DELETE FROM hits WHERE rowid <= "
                "(SELECT rowid FROM hits ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
                (HITS_MAX,),
            )

    def summary(self, since: float, until: float, top: int = 3
                ) -> dict[str, tuple[collections.Counter[str], list[tuple[str, int]]]]:
        """Per rule: hits by outcome, and the most frequent subjects, within the span."""
        out: dict[str, tuple[collections.Counter[str], list[tuple[str, int]]]] = {}
        with self.lock:
            rows = self.db.execute(
                "SELECT rule, outcome, COUNT(*) FROM hits WHERE ts >= ? AND ts < ? "
                "GROUP BY rule, outcome", (since, until),
            ).fetchall()
            for rule, outcome, count in rows:
                out.setdefault(rule, (collections.Counter(), []))[0][outcome] += count
            for rule, (_, subjects) in out.items():
                subjects.extend(self.db.execute(
                    "SELECT subject, COUNT(*) AS n FROM hits WHERE rule = ? AND ts >= ? "
                    "AND ts < ? AND subject != '' GROUP BY subject ORDER BY n DESC, subject "
                    "LIMIT ?", (rule, since, until, top),
                ).fetchall())
        return out

    def get(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value),
            )

    def close(self) -> None:
        with self.lock:
            self.db.close()
