"""The spyserver format: annotated samples, hostile client names, read boundaries."""

from __future__ import annotations

import collections
import datetime as dt
import json
from pathlib import Path

import pytest

from portolan.event import Event
from portolan.formats.base import ParseContext
from portolan.formats.spyserver import (
    CLOSE_ALL,
    NAME_MAX,
    NOISE,
    SpyserverParser,
    client_parts,
)
from portolan.sources.lines import LineStats, read_events

SAMPLES = Path(__file__).parent / "samples" / "spyserver.txt"
T0 = dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC)


class Clock:
    """One second per call: every line arrives a second after the one before."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> dt.datetime:
        self.t += dt.timedelta(seconds=1)
        return self.t


def parser(instance: str = "hf") -> SpyserverParser:
    ctx = ParseContext(sensor="s1", source=f"spyserver:{instance}",
                       options={"instance": instance}, now=Clock(),
                       counters=collections.Counter())
    return SpyserverParser(ctx)


def samples() -> list[tuple[int, str, str]]:
    """(line number, expectation, console line) for every annotated sample."""
    lines = SAMPLES.read_text(encoding="utf-8").split("\n")
    out = []
    for number, line in enumerate(lines, 1):
        if line.startswith("#> "):
            out.append((number + 1, line[3:], lines[number]))
    return out


def check(event: Event, expected: str, where: str) -> None:
    action, ip, port, *pairs = expected.split()
    assert (event.action, event.src_ip, event.src_port) == (action, ip, int(port)), where
    assert event.service == "spyserver" and event.proto == "tcp", where
    for pair in pairs:
        key, _, raw = pair.partition("=")
        want = raw.encode().decode("unicode_escape")
        got = event.attrs.get(key) if key in event.attrs or not hasattr(event, key) \
            else getattr(event, key)
        if key == "version" and key not in event.attrs:
            got = None
        if want == "-":
            assert got is None, f"{where}: {key}: {got!r} is not None"
        else:
            assert str(got) == want, f"{where}: {key}: {got!r} != {want!r}"


def test_every_annotated_sample() -> None:
    p = parser()
    checked = 0
    for number, expected, line in samples():
        where = f"{SAMPLES.name}:{number}: {line!r}"
        result = p.parse(line)
        if expected == "ignored":
            assert result == [], where
        elif expected == "unmatched":
            assert result is None, where
        else:
            wanted = [e.strip() for e in expected.split(";")]
            assert result is not None and len(result) == len(wanted), f"{where}: {result}"
            for event, want in zip(result, wanted, strict=True):
                check(event, want, where)
        checked += 1
    assert checked >= 40
    assert p.finish() == []


def test_every_pattern_has_a_sample() -> None:
    lines = [line for _, _, line in samples()]
    for text in CLOSE_ALL:
        assert text in lines, f"no sample for {text!r}"
    body = NOISE.pattern.removeprefix("^(?:").removesuffix(")")
    for alternative in body.split("|"):
        import re

        rx = re.compile("^" + alternative)
        assert any(rx.match(line) for line in lines) or alternative in _DRIVER_ONLY, (
            f"no sample for noise {alternative!r}")


#: rtl-sdr driver messages with no sample line of their own (printed by librtlsdr, not
#: spyserver; kept so a real console with an RTL dongle reads clean).
_DRIVER_ONLY = {
    r"\[R828D\]", r"\[E4K\]", r"\[FC00\d\]", "Using device ", "Detached kernel driver",
    "Exact sample rate is", "Sampling at ", "Tuner ", "Allocating ", "Disabled direct sampling",
    "Enabled direct sampling", "usb_claim_interface", "Reattaching kernel driver",
    "Failed to open rtlsdr device", "No supported devices found", "rtlsdr_",
}


def test_sessions_pair_and_carry_duration() -> None:
    p = parser()
    (connect,) = p.parse("Accepted client 100.200.30.40:5678 running SDR++") or []
    (gone,) = p.parse("Client disconnected: 100.200.30.40:5678") or []
    assert connect.session and gone.session == connect.session
    assert gone.duration == (gone.ts - connect.ts).total_seconds() == 1.0
    assert gone.attrs["client"] == "SDR++" and gone.attrs["instance"] == "hf"
    # the same address and port again is a new connection with a session of its own
    (again,) = p.parse("Accepted client 100.200.30.40:5678 running SDR++") or []
    assert again.session != connect.session


def test_a_connect_for_an_open_key_ends_the_old_session() -> None:
    p = parser()
    (first,) = p.parse("Accepted client 1.2.3.4:5 running A") or []
    ended, second = p.parse("Accepted client 1.2.3.4:5 running B") or []
    assert (ended.action, ended.session, ended.attrs["reason"]) == (
        "disconnect", first.session, "replaced")
    assert second.action == "connect" and second.session != first.session


def test_instances_are_kept_apart() -> None:
    hf, one = parser("hf"), parser("one")
    (a,) = hf.parse("Accepted client 1.2.3.4:5 running A") or []
    (b,) = one.parse("Accepted client 1.2.3.4:5 running A") or []
    assert a.session != b.session
    assert [e.attrs["instance"] for e in one.parse("Closing all connections...") or []] == ["one"]
    (still,) = hf.finish()
    assert still.session == a.session and still.attrs["reason"] == "exit"


def test_shutdown_then_late_disconnect_lines_add_nothing() -> None:
    p = parser()
    p.parse("Accepted client 1.2.3.4:5 running A")
    assert [e.attrs["reason"] for e in p.parse("Closing all connections...") or []] == [
        "shutdown"]
    assert p.parse("Client disconnected: 1.2.3.4:5") == []
    # but a disconnect nobody connected is kept, as such
    (orphan,) = p.parse("Client disconnected: 1.2.3.4:6") or []
    assert orphan.attrs["unmatched"] is True and orphan.duration is None and orphan.session


def test_a_new_banner_ends_the_sessions_of_the_previous_run() -> None:
    p = parser()
    p.parse("Accepted client 1.2.3.4:5 running A")
    (ended,) = p.parse("SPY Server v2.0.1700") or []
    assert ended.attrs["reason"] == "restart"


def test_forged_lines_in_a_name_within_one_read() -> None:
    p = parser()
    (victim,) = p.parse("Accepted client 9.9.9.9:1000 running SDR++") or []
    p.start_read()
    assert p.parse("Accepted client 6.6.6.6:666 running SDR#") == []
    assert p.parse("Client disconnected: 9.9.9.9:1000") == []
    assert p.parse("Closing all connections...") == []
    (hostile,) = p.end_read()
    assert hostile.attrs["client"] == (
        "SDR#\nClient disconnected: 9.9.9.9:1000\nClosing all connections...")
    assert hostile.attrs["client_lines"] == 3 and hostile.attrs["software"] is None
    assert p.ctx.counters["spyserver: closing line inside a client name"] == 2
    assert ("9.9.9.9", 1000) in p.open
    # the victim's real disconnect comes in a read of its own and ends the right session
    p.start_read()
    (gone,) = p.parse("Client disconnected: 9.9.9.9:1000") or []
    assert p.end_read() == []
    assert gone.session == victim.session and gone.attrs["reason"] == "client"
    # and the attacker's session ends with the name as it really was
    (left,) = p.finish()
    assert left.session == hostile.session and left.attrs["client_lines"] == 3


def test_lines_that_stand_in_the_same_read() -> None:
    p = parser()
    p.start_read()
    assert p.parse("Accepted client 1.1.1.1:1 running SDR++") == []
    (first,) = p.parse("Accepted client 2.2.2.2:2 running SDR#") or []
    assert first.src_ip == "1.1.1.1" and first.attrs["client"] == "SDR++"
    (rejected,) = p.parse("Client 3.3.3.3:3 rejected (Max Clients reached)") or []
    assert rejected.action == "rejected"
    (held,) = p.end_read()
    assert held.src_ip == "2.2.2.2" and held.attrs["client"] == "SDR#"


def test_a_closing_line_beyond_the_name_limit_is_real() -> None:
    p = parser()
    p.parse("Accepted client 9.9.9.9:1000 running X")
    p.start_read()
    name = "N" * (NAME_MAX - 10)
    p.parse(f"Accepted client 6.6.6.6:666 running {name}")
    closed = p.parse("Client disconnected: 9.9.9.9:1000") or []
    assert [e.action for e in closed] == ["connect", "disconnect"]
    assert closed[0].attrs["client"] == name


def test_without_read_boundaries_lines_stand_as_they_are() -> None:
    p = parser()
    p.parse("Accepted client 9.9.9.9:1000 running X")
    (connect,) = p.parse("Accepted client 6.6.6.6:666 running SDR#") or []
    (gone,) = p.parse("Client disconnected: 9.9.9.9:1000") or []
    assert connect.attrs["client"] == "SDR#" and gone.src_ip == "9.9.9.9"


@pytest.mark.parametrize(("name", "parts"), [
    ("SDR# 1700.0.0.1 on Windows", ("SDR#", "1700.0.0.1", "Windows")),
    ("SDR# 1.0.0.1716 on Linux 5.4", ("SDR#", "1.0.0.1716", "Linux 5.4")),
    ("SDR++", ("SDR++", None, None)),
    ("SpyClient for Python v1.0", ("SpyClient for Python", "1.0", None)),
    ("SDR Console 3.0.26", ("SDR Console", "3.0.26", None)),
    ("", (None, None, None)),
    ("line\nbreak", (None, None, None)),
    ("x" * 300, (None, None, None)),
    ("\x1b[2J", (None, None, None)),
])
def test_client_parts(name: str, parts: tuple[str | None, ...]) -> None:
    found = client_parts(name)
    assert (found["software"], found["version"], found["os"]) == parts


def test_hostile_names_are_bounded_and_never_move_the_address() -> None:
    p = parser()
    name = "Client disconnected: 8.8.8.8:53 " + "\ufffd" * 2000
    (event,) = p.parse(f"Accepted client 1.2.3.4:5 running {name}") or []
    assert event.src_ip == "1.2.3.4" and event.src_port == 5
    assert len(event.attrs["client"]) <= 512


def test_spyserver_banner_sample(shared_data: Path) -> None:
    path = shared_data / "spyserver" / "banner.txt"
    truth = json.loads((shared_data / "spyserver" / "banner.txt.truth.json").read_text())
    stats = LineStats()
    events = [e for batch in read_events(path, parser(), "s1", stats) for e in batch]
    assert stats.lines == truth["lines"]
    assert truth["accepted_clients"] == 0 and events == []
    assert stats.ignored == truth["lines"] and stats.unmatched == 0
