"""An address's story and the watch list, straight on the store (all three databases)."""

from __future__ import annotations

import pytest

from portolan.event import Payload
from portolan.store import Store, story
from tests.server.conftest import ev


@pytest.mark.parametrize(("payload", "kind"), [
    (b"", "empty"),
    (b"\x16\x03\x01\x02\x00\x01", "tls"),
    (b"SSH-2.0-libssh_0.9.6\r\n", "ssh"),
    (b"GET /.env HTTP/1.1\r\n", "http"),
    (b"PRI * HTTP/2.0\r\n", "http"),
    (b"hello there\n", "text"),
    (bytes(range(256)), "binary"),
])
def test_payload_kinds(payload: bytes, kind: str) -> None:
    assert story.payload_kind(payload) == kind


def test_story_queries(db_url: str) -> None:
    store = Store(db_url)
    store.migrate()
    store.write([ev(i, src_ip="198.51.100.7", payload=Payload(b"SSH-2.0-x"), user=f"u{i % 3}",
                    sensor=f"s{i % 2}") for i in range(12)])
    E = story.E
    with store.engine.begin() as conn:
        assert story.top(conn, "198.51.100.7", E.c.user) == [("u0", 4), ("u1", 4), ("u2", 4)]
        assert dict(story.top(conn, "198.51.100.7", E.c.sensor)) == {"s0": 6, "s1": 6}
        assert story.payload_kinds(conn, "198.51.100.7") == [("ssh", 12)]
        assert [e.user for e in story.recent(conn, "198.51.100.7", 2)] == ["u2", "u1"]
        assert story.set_watch(conn, "198.51.100.7", True, "x" * 5000) is True
        row = story.address(conn, "198.51.100.7")
        assert row is not None and row["starred"] is True
        assert len(row["note"]) == story.NOTE_MAX
        assert story.set_watch(conn, "192.0.2.1", True, None) is False
        assert [a["ip"] for a in story.addresses(conn, starred=True, limit=10)] == ["198.51.100.7"]
        assert story.set_watch(conn, "198.51.100.7", None, None, clear=True)
        assert story.addresses(conn, starred=True, limit=10) == []
    store.close()
