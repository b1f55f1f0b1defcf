"""SQLite: the write-ahead log copied back into the database file by a thread of its own.

In WAL mode every commit appends pages to ``FILE-wal``; a *checkpoint* copies them into the
database file and syncs both to disk. SQLite does it by itself in the committing
connection once the log passes 1,000 pages, and the writer then waits for the copy and
for the disk. The store's connections leave that to a :class:`Checkpointer` instead: after
each batch the store calls :meth:`Checkpointer.poke`, and once the log has grown past
``pages`` the thread runs a ``PASSIVE`` checkpoint (which neither waits for nor blocks
readers and the writer) while the writer goes on with the next batch. The connections keep
an automatic checkpoint at a far larger size (:data:`AUTOCHECKPOINT_PAGES`), so that
the log stays bounded even without the thread (other programs, a stopped thread).

Nothing is at risk when the process dies: what is in the log is the database's, and the
next connection to open the file uses it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

#: Automatic checkpoint of every connection, as a bound: the thread usually acts first.
AUTOCHECKPOINT_PAGES: Final = 50_000
#: Log size, in pages, from which the thread checkpoints.
PAGES: Final = 2_000


class Checkpointer:
    """Checkpoints one SQLite database in a daemon thread, when poked."""

    def __init__(self, path: Path, *, pages: int = PAGES) -> None:
        self.path = path
        self.wal = Path(f"{path}-wal")
        self.pages = pages
        self.page_size = 4096
        self.done = 0
        """Checkpoints run so far."""
        self.looked = 0
        """Times the thread looked at the log's size."""
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        """A batch was committed: checkpoint soon if the log is long (returns at once)."""
        with self._lock:
            if self._thread is None:
                if self._stop:
                    return
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread (after the checkpoint it may be running)."""
        with self._lock:
            self._stop = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)

    def _due(self) -> bool:
        try:
            size = os.stat(self.wal).st_size
        except OSError:
            return False
        return size >= self.pages * self.page_size

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                   isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("%s: no background checkpoints: %s", self.path, exc)
            return
        try:
            self.page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute("PRAGMA busy_timeout=30000")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                due = self._due()
                self.looked += 1
                if not due:
                    continue
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.done += 1
                except sqlite3.Error as exc:  # the writer's own checkpoint will do
                    log.debug("%s: checkpoint: %s", self.path, exc)
        finally:
            conn.close()
