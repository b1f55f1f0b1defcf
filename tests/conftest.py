"""Fixtures shared by the whole suite: the three stores, the shared sample data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Real sample logs, captures and GeoIP test databases, kept beside the repository.
SHARED_DATA = Path(os.environ.get("PORTOLAN_TEST_SHARED_DATA", REPO.parent / "shared" / "data"))
REQUIRE_SERVICES = os.environ.get("PORTOLAN_TEST_REQUIRE_SERVICES") == "1"

PG_ADMIN = os.environ.get("PORTOLAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN = os.environ.get("PORTOLAN_TEST_MARIADB", "mysql://root@127.0.0.1:3306/")


def unavailable(what: str, why: str) -> None:
    """Skip (on a laptop) or fail (in CI, where every service must be there)."""
    message = f"{what} is not reachable ({why}); start it to run these tests"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def shared_data() -> Path:
    """The folder of real sample data; the test skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"sample data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def _postgres_db() -> Iterator[str]:
    import psycopg

    name = f"portolan_test_{uuid.uuid4().hex[:10]}"
    dsn = PG_ADMIN
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL at " + dsn, str(exc).splitlines()[0])
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = dsn.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mariadb_db() -> Iterator[str]:
    import pymysql

    name = f"portolan_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=3)
    except pymysql.err.OperationalError as exc:
        unavailable("MariaDB at 127.0.0.1:3306", str(exc))
    with admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"{MARIADB_ADMIN.rstrip('/')}/{name}"
    finally:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root")
        with admin, admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind (the contract suite runs on all three)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'portolan.db'}"
    elif request.param == "postgresql":
        yield from _postgres_db()
    else:
        yield from _mariadb_db()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'portolan.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server."""
    yield from _postgres_db()


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never read the developer's own config or data directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.delenv("PORTOLAN_CONFIG", raising=False)
    monkeypatch.delenv("PORTOLAN_DATA_DIR", raising=False)
