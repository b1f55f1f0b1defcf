"""What the routes share: privacy on events, finding hashed addresses."""

from __future__ import annotations

from pathlib import Path

from portolan.enrich.privacy import Privacy
from portolan.server.context import Resolver, ServerState

from .conftest import ev, make_runtime


def test_hashed_addresses_are_found_again(tmp_path: Path, sqlite_url: str) -> None:
    rt = make_runtime(tmp_path, sqlite_url, privacy={"mode": "hash"})
    store = rt.store()
    store.write([ev(i) for i in range(7)])
    privacy = Privacy("hash", b"k" * 32)
    resolver = Resolver(store, privacy)
    assert resolver.real(privacy.hash_ip("203.0.113.3")) == "203.0.113.3"
    assert resolver.real("0123456789abcdef") is None
    assert Resolver(store, Privacy("full", b"")).real("203.0.113.3") == "203.0.113.3"
    rt.close()


def test_shown_events_hide_addresses_and_sessions(tmp_path: Path, sqlite_url: str) -> None:
    rt = make_runtime(tmp_path, sqlite_url, privacy={"mode": "truncate"})
    st = ServerState.build(rt)
    e = ev(1, session="203.0.113.1:40001", dst_ip="2001:db8:1:2::5")
    shown = st.shown(e)
    assert shown.src_ip == "203.0.113.0/24" and shown.dst_ip == "2001:db8:1::/48"
    assert shown.session is not None and "203.0.113" not in shown.session
    assert e.src_ip == "203.0.113.1"  # the original is untouched
    rt.close()
