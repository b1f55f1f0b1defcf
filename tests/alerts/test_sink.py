"""The alert sink in a real pipeline: a real file source, a durable JSON lines sink, and a
real HTTP receiver standing in for the channel."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from portolan import config
from portolan.alerts.sink import AlertSink, sink_of
from portolan.enrich.privacy import Privacy, load_secret
from portolan.event import Event, decode_lines, encode_lines
from portolan.pipeline import Pipeline
from portolan.runtime import SERVICES, Runtime
from portolan.sinks.jsonl import JsonLinesSink
from portolan.sources.lines import FileOnceSource, LineStats

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def runtime(tmp_path: Path, alerts: str, *, now: Any = None, privacy: str = "full") -> Runtime:
    path = tmp_path / "portolan.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[store]\nenabled = false\n'
        f'[privacy]\nmode = "{privacy}"\n' + alerts)
    cfg = config.load(path, environ={})
    return Runtime(config=cfg, now=now or (lambda: T0 + dt.timedelta(minutes=5)))


def alert_sink(rt: Runtime) -> AlertSink:
    sinks = [s for s in rt.sinks() if s.name == "alerts"]
    assert len(sinks) == 1
    assert isinstance(sinks[0], AlertSink)
    return sinks[0]


def spyserver_events() -> list[Event]:
    common: dict[str, Any] = dict(
        sensor="s1", source="spyserver:hf.config", service="spyserver",
        src_ip="100.200.30.40", src_port=5678, session="hf.config/100.200.30.40:5678",
        city="Chicago", country="US", country_name="United States",
        attrs={"instance": "hf.config", "client": "SDR# 1700.0.0.1 on Windows",
               "software": "SDR#", "version": "1700.0.0.1", "os": "Windows"})
    return [Event(id="a1", ts=T0, action="connect", **common),
            Event(id="a2", ts=T0 + dt.timedelta(seconds=65), action="disconnect",
                  duration=65.0, **common)]


def events_file(tmp_path: Path, events: list[Event]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(encode_lines(events))
    return path


async def run_pipeline(rt: Runtime, path: Path, out: Path) -> Any:
    ctx = rt.source_context()
    source = FileOnceSource(path, ctx.parser("jsonl", path.name), ctx, LineStats())
    durable = JsonLinesSink(path=out, name="copy")
    pipeline = Pipeline([source], [], [durable, *rt.sinks()], batch_size=100,
                        batch_delay=0.01)
    return await pipeline.run()


async def test_spyserver_alerts_are_one_line_of_config(tmp_path: Path, receiver: Any) -> None:
    """The old monitor's Slack messages: Open/Close with instance, place and duration,
    addresses hashed by the privacy mode."""
    rt = runtime(tmp_path, f'[alerts]\nchannels.slack = "{receiver.url()}"\n'
                           'rules.sdr = { kind = "spyserver" }\ngroup_window = 0\n',
                 privacy="hash")
    path = events_file(tmp_path, spyserver_events())
    stats = await run_pipeline(rt, path, tmp_path / "copy.jsonl")
    assert stats.written == 2
    await receiver.arrived(2)
    hashed = Privacy("hash", load_secret(tmp_path / "data" / "privacy.key")).hash_ip(
        "100.200.30.40")
    assert sorted(receiver.messages()) == sorted([
        f"Open {hashed}#hf.config Chicago, United States running SDR# 1700.0.0.1 on Windows",
        f"Close {hashed}#hf.config Chicago, United States @00:01:05",
    ])
    assert all("100.200.30.40" not in r.body.decode() for r in receiver.requests)


async def test_grouped_into_one_message_by_default(tmp_path: Path, receiver: Any) -> None:
    rt = runtime(tmp_path, f'[alerts]\nchannels.hook = "{receiver.url()}"\n'
                           'rules.sdr = { kind = "spyserver" }\n')
    await run_pipeline(rt, events_file(tmp_path, spyserver_events()), tmp_path / "c.jsonl")
    (message,) = [r.json()["message"] for r in await receiver.arrived(1)]
    assert message.startswith("2 alerts of rule sdr:\n- Open 100.200.30.40#hf.config")
    assert "\n- Close 100.200.30.40#hf.config Chicago, United States @00:01:05" in message


async def test_a_hanging_channel_never_blocks_the_pipeline(tmp_path: Path,
                                                           receiver: Any) -> None:
    receiver.hang.set()
    rt = runtime(tmp_path, f'[alerts]\nchannels.hook = "{receiver.url()}"\n'
                           'group_window = 0\nqueue_size = 5\nshutdown_grace = "0.5s"\n'
                           '[alerts.rules.all]\nthrottle = 0\n')
    events = [Event(id=f"h{i}", ts=T0 + dt.timedelta(seconds=i), sensor="s1", service="ssh",
                    action="auth_failure", src_ip=f"198.51.100.{i % 250}")
              for i in range(3000)]
    path = events_file(tmp_path, events)
    out = tmp_path / "copy.jsonl"
    # a pipeline held up by the channel would never finish: wait_for fails the test
    stats = await asyncio.wait_for(run_pipeline(rt, path, out), 60)
    # every event reached the durable sink while the channel hung
    copied = list(decode_lines(out.read_bytes()))
    assert [e.id for e in copied] == [e.id for e in events]
    assert stats.written == 3000
    sink = sink_of(rt)
    assert sink is not None
    assert sink.dispatcher.outcomes[("all", "sent")] == 3000
    assert sum(sink.counters.failed.values()) >= 3000 - 5
    assert not sink.counters.sent
    assert receiver.requests  # it was reached, and hung


async def test_first_seen_is_remembered_across_restarts(tmp_path: Path,
                                                        receiver: Any) -> None:
    alerts = (f'[alerts]\nchannels.hook = "{receiver.url()}"\ngroup_window = 0\n'
              '[alerts.rules.new]\nkind = "first_seen"\nmatch = { service = "ssh" }\n')

    def ev(i: int, country: str) -> Event:
        return Event(id=f"f{i}", ts=T0 + dt.timedelta(seconds=i), service="ssh",
                     action="auth_failure", src_ip="203.0.113.9", country=country)

    first = runtime(tmp_path, alerts)
    await run_pipeline(first, events_file(tmp_path, [ev(1, "FR"), ev(2, "FR"), ev(3, "DE")]),
                       tmp_path / "c1.jsonl")
    await receiver.arrived(2)
    second = runtime(tmp_path, alerts)
    await run_pipeline(second, events_file(tmp_path, [ev(4, "DE"), ev(5, "BR")]),
                       tmp_path / "c2.jsonl")
    await receiver.arrived(3)
    assert [m.split(":")[0] for m in receiver.messages()] == [
        "First country FR on ssh", "First country DE on ssh", "First country BR on ssh"]


async def test_daily_digest_on_time_and_once(tmp_path: Path, receiver: Any) -> None:
    clock = [T0]
    alerts = (f'[alerts]\nchannels.hook = "{receiver.url()}"\ndigest_time = "08:00"\n'
              'throttle = "1h"\ngroup_window = 0\n[alerts.rules.fail]\n'
              'match = { action = "auth_failure" }\n')
    rt = runtime(tmp_path, alerts, now=lambda: clock[0])
    sink = alert_sink(rt)
    events = [Event(id=f"d{i}", ts=T0, service="ssh", action="auth_failure",
                    src_ip="203.0.113.1" if i < 4 else "203.0.113.2") for i in range(6)]
    await sink.write(events)
    await receiver.arrived(2)
    clock[0] = dt.datetime(2026, 11, 24, 7, 59, tzinfo=dt.UTC)
    await sink.tick()
    assert len(receiver.requests) == 2
    clock[0] = dt.datetime(2026, 11, 24, 8, 0, 1, tzinfo=dt.UTC)
    await sink.tick()
    requests = await receiver.arrived(3)
    digest = requests[2].json()["message"]
    assert digest == ("Digest 2026-11-23 12:00 to 2026-11-24 08:00 (UTC):\n"
                      "- fail: 6 alerts (2 sent, 4 throttled); most: 203.0.113.1 (4), "
                      "203.0.113.2 (2)")
    await sink.tick()
    await sink.close()
    # a restart does not send it again
    again = alert_sink(runtime(tmp_path, alerts, now=lambda: clock[0]))
    again.start()
    await again.tick()
    await again.close()
    assert len(receiver.requests) == 3


async def test_a_failing_rule_is_counted_and_the_others_go_on(
        tmp_path: Path, receiver: Any, caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime(tmp_path, f'[alerts]\nchannels.hook = "{receiver.url()}"\ngroup_window = 0\n'
                           '[alerts.rules.a]\nthrottle = 0\n[alerts.rules.b]\nthrottle = 0\n')
    sink = alert_sink(rt)

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    sink.rules[0].check = broken  # type: ignore[method-assign]
    await sink.write([Event(id="x1", ts=T0, service="ssh", src_ip="203.0.113.1"),
                      Event(id="x2", ts=T0, service="ssh", src_ip="203.0.113.2")])
    await receiver.arrived(2)
    await sink.close()
    assert sink.errors == {"a": 2}
    assert sum("alert rule a failed" in r.getMessage() for r in caplog.records) == 1


async def test_attacker_text_reaches_slack_inert(tmp_path: Path, receiver: Any) -> None:
    """A user name crafted to ping a whole Slack workspace arrives as plain text."""
    rt = runtime(tmp_path, f'[alerts]\nchannels.chat = "mmost://127.0.0.1:{receiver.port}/'
                           'tokentokentoken"\ngroup_window = 0\n[alerts.rules.login]\n'
                           'match = { action = "auth_success" }\n')
    sink = alert_sink(rt)
    user = "<!channel> @here <https://evil.example|sign in> [x](https://evil.example)\x1b[2J"
    await sink.write([Event(id="u1", ts=T0, service="ssh", action="auth_success",
                            src_ip="203.0.113.4", user=user + "A" * 2000)])
    (request,) = await receiver.arrived(1)
    await sink.close()
    text = request.json()["text"]
    assert "\nlogin: ssh auth_success from 203.0.113.4 (unknown), user ＜" in text
    for bad in ("<!channel>", "@here", "<https://", "](", "\x1b", "evil.example|"):
        assert bad not in text
    assert len(text) < 300


async def test_old_events_teach_but_do_not_alert(tmp_path: Path, receiver: Any) -> None:
    """Importing last month's log must not flood the channels."""
    alerts = (f'[alerts]\nchannels.hook = "{receiver.url()}"\ngroup_window = 0\n'
              'max_age = "1h"\n[alerts.rules.new]\nkind = "first_seen"\n')
    rt = runtime(tmp_path, alerts)
    sink = alert_sink(rt)
    old = T0 - dt.timedelta(days=30)
    await sink.write([Event(id="o1", ts=old, service="ssh", country="FR"),
                      Event(id="o2", ts=T0, service="ssh", country="FR"),
                      Event(id="o3", ts=T0, service="ssh", country="DE")])
    await receiver.arrived(1)
    await sink.close()
    assert [m.split(":")[0] for m in receiver.messages()] == ["First country DE on ssh"]
    assert sink.dispatcher.outcomes[("new", "stale")] == 1


def test_no_sink_without_rules_or_channels(tmp_path: Path) -> None:
    assert [s for s in runtime(tmp_path, "").sinks() if s.name == "alerts"] == []
    rt = runtime(tmp_path, '[alerts]\nrules.x = { kind = "match" }\n')
    assert [s for s in rt.sinks() if s.name == "alerts"] == []
    off = runtime(tmp_path, '[alerts]\nenabled = false\nchannels.h = "json://127.0.0.1/x"\n'
                            'rules.x = { kind = "match" }\n')
    assert [s for s in off.sinks() if s.name == "alerts"] == []


async def test_the_service_keeps_time_beside_the_pipeline(tmp_path: Path,
                                                          receiver: Any) -> None:
    rt = runtime(tmp_path, f'[alerts]\nchannels.hook = "{receiver.url()}"\n'
                           'rules.x = { kind = "match" }\n[server]\nenabled = false\n')
    sink = alert_sink(rt)
    coro = SERVICES.get("alerts").make(rt)
    assert coro is not None
    task = asyncio.ensure_future(coro)
    deadline = time.monotonic() + 10
    while sink._ticker is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sink.close()
