"""API tokens: created once, shown once, stored only as a hash.

A token is ``ptk_`` followed by 32 random bytes in URL-safe base64. The store keeps its
SHA-256 (the token is random and long, so a fast hash is enough: there is nothing to guess),
a short public id to name it by, a name, and its scope:

- ``ingest``: may only ``POST /api/v1/ingest`` (a sensor's token);
- ``read``: may read everything the API shows;
- ``admin``: may do both, and change the watch list.

Revoking sets ``revoked``; a server notices within :data:`CACHE_SECONDS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import sqlalchemy as sa

from portolan.store import Store, StoreError, from_us, schema, to_us

Scope = Literal["ingest", "read", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("ingest", "read", "admin")
PREFIX: Final = "ptk_"
#: How long a server trusts what it looked up about a token, in seconds.
CACHE_SECONDS: Final = 10.0

tokens = sa.Table(
    "tokens",
    schema.metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("revoked", sa.BigInteger),
)


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token (never the token itself)."""

    id: str
    name: str
    scope: Scope
    created: dt.datetime
    revoked: dt.datetime | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def allows(scope: str, needed: Scope) -> bool:
    """True when a token of ``scope`` may do what needs ``needed``."""
    return scope == needed or scope == "admin"


class Tokens:
    """The tokens table of a store, with a short-lived cache for the server."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}

    def create(self, scope: str, name: str = "") -> tuple[str, TokenInfo]:
        """A new token: returns the secret (shown once) and its public info."""
        if scope not in SCOPES:
            raise StoreError(f"scope {scope!r} is not allowed; allowed: {', '.join(SCOPES)}")
        secret = PREFIX + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(4)
        now = to_us(_utcnow())
        row = {"id": token_id, "name": name[:256] or f"{scope}-{token_id}", "scope": scope,
               "hash": digest(secret), "created": now, "revoked": None}
        with self.store.engine.begin() as conn:
            conn.execute(tokens.insert().values(**row))
        return secret, _info(row)

    def list(self) -> list[TokenInfo]:
        with self.store.connect() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.created)).mappings()
            return [_info(dict(r)) for r in rows]

    def revoke(self, ref: str) -> int:
        """Revoke the tokens whose id or name is ``ref``; returns how many."""
        now = to_us(_utcnow())
        with self.store.engine.begin() as conn:
            result = conn.execute(
                tokens.update()
                .where(sa.or_(tokens.c.id == ref, tokens.c.name == ref), tokens.c.revoked.is_(None))
                .values(revoked=now)
            )
        self._cache.clear()
        return int(result.rowcount)

    def scope_of(self, token: str) -> str | None:
        """The scope of a valid (not revoked) token, else None. Cached briefly."""
        if not token.startswith(PREFIX) or len(token) > 128:
            return None
        key = digest(token)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.store.connect() as conn:
            row = conn.execute(
                sa.select(tokens.c.scope, tokens.c.revoked).where(tokens.c.hash == key)
            ).first()
        scope = row[0] if row is not None and row[1] is None else None
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[key] = (now + CACHE_SECONDS, scope)
        return scope


def _info(row: dict[str, Any]) -> TokenInfo:
    created = from_us(row["created"])
    assert created is not None
    return TokenInfo(id=str(row["id"]), name=str(row["name"]), scope=row["scope"],
                     created=created, revoked=from_us(row["revoked"]))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
