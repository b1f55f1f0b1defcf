"""Tokens: stored hashed, scoped, revocable, on all three databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portolan.server.tokens import CACHE_SECONDS, Tokens, allows, digest, tokens
from portolan.store import Store, StoreError


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


def test_create_keeps_only_a_hash(store: Store) -> None:
    t = Tokens(store)
    secret, info = t.create("ingest", "edge-1")
    assert secret.startswith("ptk_") and len(secret) > 40
    with store.connect() as conn:
        rows = conn.execute(sa.select(tokens)).mappings().all()
    assert len(rows) == 1
    assert secret not in str(dict(rows[0]))
    assert rows[0]["hash"] == digest(secret)
    assert t.scope_of(secret) == "ingest"
    assert [i.name for i in t.list()] == ["edge-1"] and info.scope == "ingest"


def test_unknown_scope_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="allowed: ingest, read, admin"):
        Tokens(store).create("root")


def test_revocation_is_seen_once_the_cache_expires(store: Store) -> None:
    now = [1000.0]
    t = Tokens(store, clock=lambda: now[0])
    secret, info = t.create("read", "reader")
    assert t.scope_of(secret) == "read"
    other = Tokens(store, clock=lambda: now[0])  # another server process
    assert other.scope_of(secret) == "read"
    assert t.revoke(info.id) == 1
    assert t.scope_of(secret) is None  # the revoking process knows at once
    assert other.scope_of(secret) == "read"  # the other one still trusts its cache...
    now[0] += CACHE_SECONDS + 0.1
    assert other.scope_of(secret) is None  # ...until it expires
    assert t.revoke(info.id) == 0
    assert t.list()[0].revoked is not None


def test_garbage_is_no_token(store: Store) -> None:
    t = Tokens(store)
    assert t.scope_of("") is None
    assert t.scope_of("ptk_" + "x" * 500) is None
    assert t.scope_of("'; DROP TABLE tokens; --") is None


def test_scopes() -> None:
    assert allows("admin", "ingest") and allows("admin", "read") and allows("read", "read")
    assert not allows("read", "ingest") and not allows("ingest", "read")
