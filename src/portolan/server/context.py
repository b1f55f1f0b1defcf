"""What every route of the server shares: the runtime's store, the privacy mode, tokens,
the live-stream hub, and the access check.

Access: ingest always needs a token of scope ``ingest`` (or ``admin``). Reads are open to
clients on the loopback address unless ``[server] read_token_required``; other clients
need a ``read`` (or ``admin``) token. Changes to the watch list need ``admin`` when a
token is given, and are open to loopback clients like reads.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from starlette.requests import HTTPConnection
from starlette.responses import Response

from portolan.enrich.base import Enricher
from portolan.enrich.privacy import Privacy, PrivacySection
from portolan.event import Event, Payload
from portolan.runtime import Runtime
from portolan.server.hub import Hub, hub_for
from portolan.server.settings import ServerSection
from portolan.server.shapes import Problem
from portolan.server.tokens import Tokens, allows
from portolan.store import Store

Need = Literal["read", "ingest", "watch"]

_encoder = msgspec.json.Encoder()


def _enc_hook(obj: object) -> object:
    if isinstance(obj, Payload):
        return obj.hex()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    """A JSON response from a shape (msgspec escapes every string: no raw control bytes;
    payloads become hex, as in every other JSON Portolan writes)."""
    body = msgspec.json.encode(obj, enc_hook=_enc_hook)
    return Response(body, status, headers=headers, media_type="application/json")


def problem(status: int, message: str, **extra: Any) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response(Problem(error=message, **extra), status, headers)


@dataclass
class Counters:
    """The server's own counters, for ``/metrics``."""

    ingest_requests: dict[int, int] = field(default_factory=dict)
    ingest_events: int = 0
    ingest_stored: int = 0
    enrich_failures: int = 0
    stream_clients: int = 0


class Resolver:
    """Finds the real address behind what a client sees in ``hash`` mode (the clients only
    know hashes). Rebuilt from the ``ips`` table at most every 30 seconds."""

    def __init__(self, store: Store, privacy: Privacy) -> None:
        self.store = store
        self.privacy = privacy
        self._map: dict[str, str] = {}
        self._built = -1e9
        self._lock = threading.Lock()

    def real(self, shown: str) -> str | None:
        """The address a client named, or None when no stored address has that hash."""
        if self.privacy.mode != "hash":
            return shown
        with self._lock:
            found = self._map.get(shown)
            if found is None and time.monotonic() - self._built > 30:
                import sqlalchemy as sa

                from portolan.store import schema

                with self.store.connect() as conn:
                    ips = conn.execute(sa.select(schema.ips.c.ip)).scalars().all()
                self._map = {self.privacy.hash_ip(ip): ip for ip in ips}
                self._built = time.monotonic()
                found = self._map.get(shown)
            return found


@dataclass
class ServerState:
    """Everything the routes need, built once per app."""

    runtime: Runtime
    settings: ServerSection
    store: Store
    privacy: Privacy
    tokens: Tokens
    hub: Hub
    resolver: Resolver
    enrichers: list[Enricher] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)

    @classmethod
    def build(cls, runtime: Runtime) -> ServerState:
        store = runtime.store()
        privacy = Privacy.from_settings(runtime.config.get(PrivacySection), runtime.data_dir)
        settings = runtime.config.get(ServerSection)
        return cls(runtime=runtime, settings=settings, store=store, privacy=privacy,
                   tokens=Tokens(store), hub=hub_for(runtime, settings.stream_buffer),
                   resolver=Resolver(store, privacy), enrichers=runtime.enrichers())

    def shown(self, event: Event) -> Event:
        """An event as this server may show it (privacy applied to addresses and to the
        session id, which sources may build from addresses)."""
        if self.privacy.mode == "full":
            return event
        out = self.privacy.event(event)
        if out.session is not None:
            out = msgspec.structs.replace(out, session=self.privacy.hash_ip(out.session))
        return out

    def deny(self, conn: HTTPConnection, need: Need) -> Response | None:
        """None when the client may do what needs ``need``; else the 401/403 response."""
        header = conn.headers.get("authorization", "")
        if header:
            kind, _, token = header.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                return problem(401, "authorization: use 'Bearer TOKEN'")
            scope = self.tokens.scope_of(token.strip())
            if scope is None:
                return problem(401, "the token is unknown or revoked")
            wanted = "admin" if need == "watch" else need
            if allows(scope, wanted):
                return None
            return problem(403, f"a token of scope {scope!r} may not do this; "
                                f"it needs {wanted!r}")
        if need != "ingest" and not self.settings.read_token_required and _loopback(conn):
            return None
        what = "ingest" if need == "ingest" else ("admin" if need == "watch" else "read")
        return problem(401, f"a bearer token of scope {what!r} is required "
                            "(portolan token create --scope " + what + ")")


def _loopback(conn: HTTPConnection) -> bool:
    client = conn.client
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client.host).is_loopback
    except ValueError:
        return False
