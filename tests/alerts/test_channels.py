"""Channels deliver through Apprise to a real HTTP server on loopback: the text arrives,
failures are retried with back-off, a hanging or full channel is given up and counted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from portolan.alerts.channels import Channel, Counters
from portolan.alerts.message import untrusted
from portolan.alerts.throttle import Outgoing
from portolan.config import ConfigError


def channel(url: str, counters: Counters, **kw: object) -> Channel:
    kw.setdefault("first_retry", 0.05)
    return Channel("hook", url, title="Portolan", counters=counters, **kw)  # type: ignore[arg-type]


async def settle(ch: Channel, counters: Counters, done: int) -> None:
    """Wait until ``done`` messages are sent or failed."""
    deadline = time.monotonic() + 20
    while sum(counters.sent.values()) + sum(counters.failed.values()) < done:
        assert time.monotonic() < deadline, "channel did not settle"
        await asyncio.sleep(0.02)


async def test_json_webhook_receives_title_and_text(receiver: Any) -> None:
    counters = Counters()
    ch = channel(receiver.url("json"), counters)
    assert ch.offer(Outgoing("sdr", ("hook",), "Open 100.200.30.40#hf.config Chicago"))
    await settle(ch, counters, 1)
    await ch.drain(1)
    (request,) = receiver.requests
    assert request.path == "/hook"
    body = request.json()
    assert body["title"] == "Portolan"
    assert body["message"] == "Open 100.200.30.40#hf.config Chicago"
    assert counters.sent == {("sdr", "hook"): 1}


async def test_slack_compatible_target_gets_no_mention(receiver: Any) -> None:
    """Mattermost speaks Slack's webhook format; hostile text stays inert there."""
    counters = Counters()
    ch = channel(f"mmost://127.0.0.1:{receiver.port}/tokentokentoken", counters)
    hostile = untrusted("<!channel> @here <https://evil.example|x> & co")
    ch.offer(Outgoing("r", ("hook",), f"Login as {hostile} on ssh"))
    await settle(ch, counters, 1)
    await ch.drain(1)
    text = receiver.requests[0].json()["text"]
    assert "Login as" in text
    for bad in ("<!channel>", "@here", "<https://", "|x>"):
        assert bad not in text


async def test_500_then_200_is_retried(receiver: Any) -> None:
    receiver.statuses = [500, 503]
    counters = Counters()
    ch = channel(receiver.url(), counters, retries=3)
    ch.offer(Outgoing("r", ("hook",), "hello"))
    await settle(ch, counters, 1)
    await ch.drain(1)
    assert [r.json()["message"] for r in receiver.requests] == ["hello"] * 3
    assert counters.retries == {"hook": 2}
    assert counters.sent == {("r", "hook"): 1}
    assert not counters.failed


async def test_gives_up_after_the_retries_and_goes_on(receiver: Any) -> None:
    receiver.statuses = [500] * 3
    counters = Counters()
    ch = channel(receiver.url(), counters, retries=2)
    ch.offer(Outgoing("r", ("hook",), "first"))
    ch.offer(Outgoing("r", ("hook",), "second"))
    await settle(ch, counters, 2)
    await ch.drain(1)
    assert counters.failed == {("r", "hook"): 1}
    assert counters.sent == {("r", "hook"): 1}
    assert receiver.messages() == ["first"] * 3 + ["second"]


async def test_unreachable_channel_fails_without_blocking() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    counters = Counters()
    ch = channel(f"json://127.0.0.1:{port}/x", counters, retries=1)
    ch.offer(Outgoing("r", ("hook",), "x"))
    await settle(ch, counters, 1)
    await ch.drain(1)
    assert counters.failed == {("r", "hook"): 1}


async def test_hanging_channel_full_queue_and_shutdown(receiver: Any) -> None:
    receiver.hang.set()
    counters = Counters()
    ch = channel(receiver.url(), counters, queue_size=2)
    results = [ch.offer(Outgoing("r", ("hook",), f"m{i}")) for i in range(3)]
    assert results == [True, True, False]  # the third finds the queue full
    assert counters.failed == {("r", "hook"): 1}
    await receiver.arrived(1)  # the first is being delivered, and hangs
    await asyncio.wait_for(ch.drain(0.3), 10)  # gives up on the hanging delivery
    # the hanging one and the one still queued are given up
    assert counters.failed == {("r", "hook"): 3}
    assert not counters.sent


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"alerts.channels.hook: Apprise cannot use this "
                                          r"URL \(scheme 'nosuch'\)"):
        channel("nosuch://x/y", Counters())


async def test_e_mail_through_a_real_smtp_server(mail_server: Any) -> None:
    import email
    import email.policy

    counters = Counters()
    ch = channel(f"mailto://127.0.0.1:{mail_server.port}?from=portolan@example.org"
                 "&to=ops@example.org", counters)
    ch.offer(Outgoing("r", ("hook",), f"Login as {untrusted('<b>root</b>')} from 192.0.2.1"))
    await settle(ch, counters, 1)
    await ch.drain(1)
    assert counters.sent == {("r", "hook"): 1}
    (raw,) = mail_server.messages
    message = email.message_from_string(raw, policy=email.policy.default)
    assert message["To"] == "ops@example.org"
    assert message["Subject"] == "Portolan"
    body = message.get_body(("plain", "html"))
    assert body is not None
    text = body.get_content()
    assert "Login as ＜b＞root＜/b＞ from 192.0.2.1" in text
    assert "<b>" not in text


async def test_ntfy_on_loopback(receiver: Any) -> None:
    counters = Counters()
    ch = channel(f"ntfy://127.0.0.1:{receiver.port}/portolan", counters)
    ch.offer(Outgoing("r", ("hook",), "Open 192.0.2.9#hf.config"))
    await settle(ch, counters, 1)
    await ch.drain(1)
    (request,) = receiver.requests
    assert request.json() == {"topic": "portolan", "title": "Portolan",
                              "message": "Open 192.0.2.9#hf.config"}
