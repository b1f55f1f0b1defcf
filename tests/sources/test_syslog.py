"""The syslog receiver on real sockets on 127.0.0.1: RFC 3164 and 5424, UDP and TCP with
both framings, and the size bound."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from pathlib import Path

import pytest

from portolan.sources.base import SourceContext
from portolan.sources.syslog import SyslogOptions, SyslogSource, parse_listen
from tests.sources.test_file import Collector, until

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def msg(n: int, pri: str = "<38>") -> bytes:
    return (f"{pri}Nov 23 10:00:{n % 60:02d} web{n} sshd[{n}]: Invalid user u{n} "
            f"from 203.0.113.{n % 250} port {n}").encode()


@pytest.fixture
async def receiver(tmp_path: Path):  # type: ignore[no-untyped-def]
    options = SyslogOptions(type="syslog", listen=["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
                            max_message=2048, format_options={"timezone": "UTC"})
    ctx = SourceContext(sensor="s", data_dir=tmp_path, now=lambda: NOW)
    src = SyslogSource(options, ctx)
    out = Collector()
    task = asyncio.create_task(src.run(out))
    await asyncio.wait_for(src.ready.wait(), 10)
    yield src, out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def port(src: SyslogSource, proto: str) -> int:
    return next(p for kind, _, p in src.bound if kind == proto)


async def test_udp_rfc3164_and_rfc5424(receiver) -> None:  # type: ignore[no-untyped-def]
    src, out = receiver
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(msg(1), ("127.0.0.1", port(src, "udp")))
        s.sendto(b"<38>1 2026-11-23T10:00:05.5+01:00 web2 sshd 77 - [x@1 a=\"]\"] "
                 b"Failed password for root from 2001:db8::5 port 22 ssh2\n",
                 ("127.0.0.1", port(src, "udp")))
        s.sendto(b"<13>Nov 23 10:00:06 web3 CRON[5]: (root) CMD (true)",
                 ("127.0.0.1", port(src, "udp")))
        await until(lambda: len(out.events) == 2 and src.stats.lines == 3)
    first, second = out.events
    assert (first.action, first.user, first.src_ip) == ("invalid_user", "u1", "203.0.113.1")
    assert first.ts == dt.datetime(2026, 11, 23, 10, 0, 1, tzinfo=dt.UTC)
    assert (second.action, second.src_ip) == ("auth_failure", "2001:db8::5")
    assert second.ts == dt.datetime(2026, 11, 23, 9, 0, 5, 500000, tzinfo=dt.UTC)
    assert len({e.id for e in out.events}) == 2


async def test_tcp_octet_counting_and_newlines_in_any_pieces(receiver) -> None:  # type: ignore[no-untyped-def]
    src, out = receiver
    stream = b""
    for n in range(10, 20):
        m = msg(n)
        stream += str(len(m)).encode() + b" " + m
    stream += b"".join(msg(n) + b"\n" for n in range(20, 30))
    _, writer = await asyncio.open_connection("127.0.0.1", port(src, "tcp"))
    for i in range(0, len(stream), 7):  # cut anywhere, even inside a length
        writer.write(stream[i:i + 7])
        await writer.drain()
    writer.close()
    await writer.wait_closed()
    await until(lambda: len(out.events) == 20)
    assert [e.user for e in out.events] == [f"u{n}" for n in range(10, 30)]


async def test_size_bound(receiver) -> None:  # type: ignore[no-untyped-def]
    src, out = receiver
    huge = msg(40) + b"x" * 5000
    _, writer = await asyncio.open_connection("127.0.0.1", port(src, "tcp"))
    writer.write(str(len(huge)).encode() + b" " + huge)  # skipped, the next one read
    writer.write(str(len(msg(41))).encode() + b" " + msg(41))
    writer.write(huge + b"\n" + msg(42) + b"\n")  # a line too long, then a good one
    await writer.drain()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(msg(43) + b" " + b"y" * 4000, ("127.0.0.1", port(src, "udp")))  # cut
        await until(lambda: src.stats.lines == 3)
    writer.close()
    await writer.wait_closed()
    assert sorted(e.user for e in out.events) == ["u41", "u42"]
    assert src.stats.lines == 3  # the cut message was read, and recognised as noise
    counters = src.ctx.counters
    assert counters["syslog: message too long (skipped)"] == 2
    assert counters["syslog: message too long (cut)"] == 1


async def test_garbage_does_not_stop_the_receiver(receiver) -> None:  # type: ignore[no-untyped-def]
    src, out = receiver
    reader, writer = await asyncio.open_connection("127.0.0.1", port(src, "tcp"))
    writer.write(b"99999999999999999999 nonsense")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the peer is dropped
    writer.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x00\xff\xfe garbage", ("127.0.0.1", port(src, "udp")))
        s.sendto(msg(50), ("127.0.0.1", port(src, "udp")))
        await until(lambda: len(out.events) == 1)
    assert src.stats.unmatched == 1
    assert src.ctx.counters["syslog: bad frame"] == 1


def test_listen_addresses() -> None:
    assert parse_listen("udp://[::1]:514") == ("udp", "::1", 514)
    with pytest.raises(ValueError, match="use udp://HOST:PORT"):
        parse_listen("http://x:1")
