"""Database URLs, engines, and errors a user can act on.

``sqlite:///FILE`` (the default, WAL mode, one writer), ``postgresql://...`` (psycopg 3) and
``mysql://...`` / ``mariadb://...`` (PyMySQL). Errors from the database become a
:class:`StoreError` with a one-line message that names the database (without password).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from portolan.store.checkpoint import AUTOCHECKPOINT_PAGES

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ONE_US = dt.timedelta(microseconds=1)


class StoreError(Exception):
    """The store cannot do what was asked; the message says why, in one line."""


def to_us(ts: dt.datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (the stored form)."""
    return (ts - EPOCH) // ONE_US


def from_us(value: int | None) -> dt.datetime | None:
    """The stored form back to an aware UTC datetime."""
    return None if value is None else EPOCH + dt.timedelta(microseconds=value)


def default_url(data_dir: Path) -> str:
    """SQLite in the data directory."""
    return f"sqlite:///{data_dir / 'portolan.db'}"


def parse_url(text: str) -> URL:
    """A user's database URL as the SQLAlchemy URL with Portolan's drivers."""
    try:
        url = make_url(text)
    except Exception:
        raise StoreError(f"{text!r} is not a database URL; {_ALLOWED}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise StoreError(f"{text!r}: SQLite needs a file: sqlite:///path/portolan.db")
        return url.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend in ("mysql", "mariadb"):
        query = dict(url.query)
        query.setdefault("charset", "utf8mb4")
        return url.set(drivername="mysql+pymysql", query=query)
    raise StoreError(f"{text!r}: unsupported database {backend!r}; {_ALLOWED}")


_ALLOWED = "use sqlite:///FILE, postgresql://USER@HOST/DB or mysql://USER@HOST/DB"


def safe_url(url: URL) -> str:
    """The URL for messages: no password."""
    return url.render_as_string(hide_password=True)


def create(url: URL) -> Engine:
    """An engine with the settings Portolan relies on."""
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=sa.pool.QueuePool,
            pool_size=4,
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-65536")
    # a bound only: the store's checkpointer thread copies the log back long before
    cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Python's sqlite3 opens a transaction only before INSERT, UPDATE and DELETE, so a
    # SAVEPOINT before them would start (and its RELEASE commit) a transaction of its
    # own. SQLAlchemy's transactions are made real instead: BEGIN when one begins.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def explain(exc: BaseException, where: str) -> StoreError:
    """A database error as a one-line :class:`StoreError` about ``where``."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if isinstance(orig, sqlite3.DatabaseError) and "not a database" in text:
        return StoreError(f"{where}: the file is not a SQLite database (corrupt or another file)")
    if "locked" in text:
        return StoreError(f"{where}: the database is locked by another program")
    return StoreError(f"{where}: {text}")


def is_transient(exc: BaseException) -> bool:
    """True for errors that may go away on their own (server down, lost connection, lock)."""
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
