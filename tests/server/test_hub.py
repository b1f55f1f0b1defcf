"""The hub without HTTP: numbering, the buffer, resuming, the matcher."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from portolan.server.hub import Hub, StreamSink, matches
from portolan.store import EventFilter

from .conftest import T0, ev


def test_resume_inside_and_beyond_the_buffer() -> None:
    hub = Hub(size=5)
    hub.publish([ev(i) for i in range(8)])
    assert [s for s, _ in hub.buffer] == [4, 5, 6, 7, 8]
    assert hub.start_after(f"{hub.boot}-6") == (6, False)
    assert hub.start_after(f"{hub.boot}-1") == (1, True)  # 2 and 3 are gone
    assert hub.start_after("other-6") == (8, True)
    assert hub.start_after(None) == (8, False)
    assert [s for s, _ in hub._since(1)] == [4, 5, 6, 7, 8]


def test_a_retried_batch_is_not_sent_twice() -> None:
    hub = Hub(size=3)
    hub.publish([ev(1), ev(2)])
    hub.publish([ev(2), ev(3)])
    assert [e.id for _, e in hub.buffer] == [ev(1).id, ev(2).id, ev(3).id]
    hub.publish([ev(4), ev(1)])  # 1 left the buffer when 4 came: it is new again
    assert [s for s, _ in hub.buffer] == [3, 4, 5]
    assert [e.id for _, e in hub.buffer] == [ev(3).id, ev(4).id, ev(1).id]


async def test_follow_wakes_on_publish_and_ends_on_close() -> None:
    hub = Hub()
    sink = StreamSink(hub)
    got: list[int] = []

    async def reader() -> None:
        async for batch in hub.follow(0):
            if batch:
                got.extend(s for s, _ in batch)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    await sink.write([ev(1), ev(2)])
    for _ in range(100):
        if len(got) == 2:
            break
        await asyncio.sleep(0.01)
    hub.close()
    await asyncio.wait_for(task, 5)
    assert got == [1, 2]


def test_matches_like_the_store() -> None:
    e = ev(3, user="root", attrs={"path": "/wp-login.php"})
    assert matches(EventFilter(ip="203.0.113.0/24", country="de"), e) is (e.country == "DE")
    assert matches(EventFilter(text="wp-login"), e)
    assert not matches(EventFilter(text="nothing"), e)
    assert not matches(EventFilter(since=T0 + dt.timedelta(seconds=4)), e)
    assert matches(EventFilter(until=T0 + dt.timedelta(seconds=4), asn=e.asn), e)
    assert not matches(EventFilter(ip="bad/net"), e)
    assert not matches(EventFilter(service="http"), e)


def test_a_batch_larger_than_the_buffer_keeps_the_newest_and_counts_all() -> None:
    hub = Hub(size=3)
    hub.publish([ev(1)])
    hub.publish([ev(1), *[ev(i) for i in range(2, 9)]])  # 1 again, then 7 new ones
    assert [e.id for _, e in hub.buffer] == [ev(6).id, ev(7).id, ev(8).id]
    assert [s for s, _ in hub.buffer] == [6, 7, 8]
    assert hub.start_after(f"{hub.boot}-1") == (1, True)


def test_commands_without_a_server_leave_the_live_stream_out(tmp_path: Path) -> None:
    from portolan.config import validate
    from portolan.runtime import Runtime

    rt = Runtime(config=validate({"data_dir": str(tmp_path)}))
    assert any(isinstance(s, StreamSink) for s in rt.sinks())
    assert not any(isinstance(s, StreamSink) for s in rt.sinks(live=False))
