"""The store: events and the tables kept beside them, in SQLite, PostgreSQL or MariaDB.

:class:`Store` is the one interface. It is synchronous (the pipeline's store sink calls it
from a worker thread; the server from its own threads) and safe to share between
threads: every call takes a connection from the engine's pool.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from portolan.event import Event
from portolan.store import query, schema
from portolan.store.checkpoint import Checkpointer
from portolan.store.engine import (
    StoreError,
    create,
    default_url,
    explain,
    from_us,
    is_transient,
    parse_url,
    safe_url,
    to_us,
)
from portolan.store.query import EventFilter, QueryError
from portolan.store.writer import (
    WRITE_HOOKS,
    Prepared,
    PreparedHook,
    WriteHook,
    WriteResult,
    prepare,
    write_prepared,
)

__all__ = [
    "HEAD",
    "PURGE_HOOKS",
    "WRITE_HOOKS",
    "EventFilter",
    "Prepared",
    "PreparedHook",
    "QueryError",
    "Store",
    "StoreError",
    "WriteHook",
    "WriteResult",
    "from_us",
    "is_transient",
    "to_us",
]

log = logging.getLogger(__name__)

#: The newest revision of the schema: the head of ``migrations`` (a test checks).
HEAD = "c_collation"

PurgeHook = Callable[[Connection, int], None]
"""Called by :meth:`Store.purge` inside a transaction with the time before which data goes
(microseconds): a table kept beside the events forgets that past too."""

#: Hooks run by every purge, in order (the rollups, the traffic per network...).
PURGE_HOOKS: list[PurgeHook] = []


class Store:
    """Events in a SQL database; see the module docstring."""

    def __init__(self, url: str, *, data_dir: Path | None = None) -> None:
        text = url or default_url(data_dir or Path("."))
        self.url = parse_url(text)
        self.display = safe_url(make_url(text))
        self.dialect = self.url.get_backend_name()
        self.engine: Engine = create(self.url)
        self.checkpointer = (Checkpointer(Path(self.url.database).expanduser())
                             if self.dialect == "sqlite" and self.url.database else None)
        # Parts that keep tables beside the events (rollups) register write hooks when
        # imported: load them, so that every writer keeps those tables in step.
        from portolan.plugins import load_all

        load_all()

    @property
    def where(self) -> str:
        """The database, for messages (no password)."""
        return self.display

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise explain(exc, self.display) from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading (errors become :class:`StoreError`)."""
        with self._errors(), self.engine.connect() as conn:
            yield conn

    # -- schema ------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Bring the schema up to date; returns the revisions applied. (A database that is
        up to date already is told by its revision alone, without loading alembic.)"""
        with self._errors(), self.engine.connect() as conn:
            if sa.inspect(conn).has_table("alembic_version") and list(conn.execute(
                    sa.text("SELECT version_num FROM alembic_version")).scalars()) == [HEAD]:
                return []
        from alembic import command
        from alembic.config import Config as AlembicConfig
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        location = importlib.resources.files("portolan.store") / "migrations"
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(location))
        script = ScriptDirectory.from_config(cfg)
        with self._errors(), self.engine.begin() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            head = script.get_current_head()
        applied = []
        if before != head:
            for rev in script.iterate_revisions(head, before):
                applied.append(rev.revision)
        return list(reversed(applied))

    def revision(self) -> str | None:
        """The schema revision of the database (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.connect() as conn:
            rev: str | None = MigrationContext.configure(conn).get_current_revision()
            return rev

    # -- writing -----------------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> WriteResult:
        """Store a batch in one transaction; ids already stored are skipped."""
        if not events:
            return WriteResult()
        return self.write_prepared([self.prepare(events)])

    def prepare(self, events: Sequence[Event]) -> Prepared:
        """What :meth:`write_prepared` needs, made without the database (any thread)."""
        return prepare(events, dialect=self.dialect)

    def write_prepared(self, parts: Sequence[Prepared]) -> WriteResult:
        """Store prepared batches in one transaction; ids already stored are skipped."""
        if not any(part.events for part in parts):
            return WriteResult(duplicates=sum(part.received for part in parts))
        now_us = to_us(dt.datetime.now(dt.UTC))
        with self.engine.begin() as conn:
            result = write_prepared(conn, parts, now_us)
        if self.checkpointer is not None:
            self.checkpointer.poke()
        return result

    def purge(self, before: dt.datetime, *, chunk: int = 50000) -> int:
        """Delete events older than ``before``, in transactions of about ``chunk`` events,
        oldest first; then what the tables beside them keep of that past: the sessions
        that ended before it, the addresses not seen since (unless starred or annotated),
        and whatever the :data:`PURGE_HOOKS` forget (the rollups and the traffic per
        network of the whole minutes, hours and days before it). Returns the events
        deleted."""
        cutoff = to_us(before)
        E, S, A = schema.events, schema.sessions, schema.ips
        deleted = 0
        with self._errors():
            while True:
                with self.engine.begin() as conn:
                    edge = conn.execute(
                        sa.select(E.c.ts).order_by(E.c.ts).offset(chunk).limit(1)
                    ).scalar()
                    upto = cutoff if edge is None else min(cutoff, edge)
                    gone = conn.execute(sa.delete(E).where(E.c.ts < upto)).rowcount
                deleted += gone
                if upto == cutoff:
                    break
            with self.engine.begin() as conn:
                conn.execute(sa.delete(S).where(S.c.end_ts < cutoff))
                conn.execute(sa.delete(A).where(A.c.last_seen < cutoff, sa.not_(A.c.starred),
                                                A.c.note.is_(None)))
                for hook in PURGE_HOOKS:
                    hook(conn, cutoff)
        return deleted

    # -- reading -----------------------------------------------------------------------

    def events(self, f: EventFilter | None = None, *, limit: int = 100,
               before: tuple[dt.datetime, str] | None = None) -> list[Event]:
        with self.connect() as conn:
            return query.events(conn, f or EventFilter(), limit=limit, before=before)

    def stats(self, field: str, f: EventFilter | None = None, *, limit: int = 10,
              ) -> tuple[list[tuple[object, int]], int]:
        with self.connect() as conn:
            return query.stats(conn, field, f or EventFilter(), limit=limit)

    def sessions(self, *, since: dt.datetime | None = None, active: bool = False,
                 limit: int = 100, service: str | None = None) -> list[dict[str, object]]:
        with self.connect() as conn:
            return query.sessions(conn, since=since, active=active, limit=limit, service=service)

    def count(self, f: EventFilter | None = None) -> int:
        with self.connect() as conn:
            return query.count_events(conn, f)

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.dispose()


def wait_for(store: Store, seconds: float = 0.0) -> None:
    """Check that the database answers, retrying for up to ``seconds``; raises
    :class:`StoreError` with the reason when it does not."""
    deadline = time.monotonic() + seconds
    delay = 0.2
    while True:
        try:
            with store.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return
        except StoreError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


# The rollups are part of every write (a hook in each batch's transaction).
from portolan.store import rollups as _rollups  # noqa: E402, F401
