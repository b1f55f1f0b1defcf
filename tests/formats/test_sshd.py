"""The sshd format: its annotated samples, and the real fixtures of the shared data."""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from portolan.event import Event, make_id
from portolan.formats import sshd
from portolan.formats.base import ParseContext
from portolan.formats.header import SyslogClock, split
from portolan.store import Store
from tests.formats import samples

SAMPLE_FILE = samples.SAMPLES / "sshd.log"
NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)


def test_samples() -> None:
    samples.run(SAMPLE_FILE, "sshd")


def test_every_pattern_has_a_sample() -> None:
    clock = SyslogClock(lambda: NOW, dt.UTC)
    seen = set()
    for line in samples.run(SAMPLE_FILE, "sshd"):
        head = split(line, clock)
        if head is None:
            continue
        msg = head.message
        for prefix in ("message repeated 3 times: [ ", "kernel: [  970.699397] ",
                       "[ID 800047 auth.info] ", "error: ", "fatal: "):
            msg = msg.removeprefix(prefix)
        found = next((name for name, text, _ in sshd.PATTERNS if re.match(text, msg)), None)
        if found is not None:
            seen.add(found)
    missing = {name for name, _, _ in sshd.PATTERNS} - seen
    assert not missing, f"patterns without a sample: {sorted(missing)}"


def parse_file(path: Path, now: dt.datetime = NOW) -> tuple[list[tuple[int, Event]], int]:
    """(line number, event) for every event of a file, and the unmatched line count."""
    parser = sshd.SshdParser(ParseContext(sensor="t", source=path.name, now=lambda: now))
    out: list[tuple[int, Event]] = []
    unmatched = 0
    number = 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, raw in enumerate(f, 1):
            events = parser.parse(raw.rstrip("\r\n"))
            if events is None:
                unmatched += raw.strip() != "" and not raw.startswith("#")
                continue
            out.extend((number, e) for e in events)
    out.extend((number + 1, e) for e in parser.finish())
    return out, unmatched


def failed_password(events: list[tuple[int, Event]]) -> list[tuple[int, Event]]:
    return [(n, e) for n, e in events
            if e.action == "auth_failure" and e.attrs.get("method") == "password"]


def test_fail2ban_sshd_log_figures(shared_data: Path) -> None:
    path = shared_data / "ssh" / "fail2ban_sshd.log"
    truth = json.loads((shared_data / "ssh" / "fail2ban_sshd.log.truth.json").read_text())
    events, unmatched = parse_file(path)
    assert unmatched == 0
    fp = failed_password(events)
    by_line = {n for n, _ in fp}
    # The README's script counts 11 "Failed password" lines; counted the sshd way there are
    # 13: line 21 has no port and line 24 comes from `sshd-session`, which the script skips.
    assert truth["failed_password"]["lines"] == 11
    assert len(fp) == truth["failed_password"]["events"] + 2 == 13
    assert {21, 24} <= by_line
    by_ip = collections.Counter(e.src_ip for _, e in fp)
    # The injection on line 145: the script gives it to 10.10.1.2; sshd wrote 127.0.0.1.
    expected_ips = dict(truth["failed_password"]["by_ip_events"])
    expected_ips["127.0.0.1"] += expected_ips.pop("10.10.1.2")
    expected_ips["aaaa:bbbb:cccc:1234::1:1"] += 1  # line 21 (no port)
    expected_ips["192.0.2.1"] = 1  # line 24 (sshd-session)
    assert dict(by_ip) == expected_ips
    assert by_ip["127.0.0.1"] == 6 and "10.10.1.2" not in by_ip
    assert sum(not e.attrs["valid_user"] for _, e in fp) == (
        truth["failed_password"]["lines_invalid_user"] + 1)  # + line 21
    invalid = [e for _, e in events if e.action == "invalid_user"]
    assert len(invalid) == truth["invalid_user"]["lines"]
    assert collections.Counter(e.user for e in invalid) == truth["invalid_user"]["by_user"]
    assert collections.Counter(e.src_ip for e in invalid) == truth["invalid_user"]["by_ip"]
    accepted = [e for _, e in events if e.action == "auth_success"]
    assert len(accepted) == truth["accepted"]["total"]
    assert collections.Counter(e.attrs["method"] for e in accepted) == (
        truth["accepted"]["by_method"])
    assert collections.Counter(e.user for e in accepted) == truth["accepted"]["by_user"]
    assert collections.Counter(e.src_ip for e in accepted) == truth["accepted"]["by_ip"]
    assert sum(e.action == "auth_failure" and e.attrs.get("method") == "publickey"
               for _, e in events) == truth["failed_publickey"]
    # The 7 pam_unix failures: none is repeated by a Failed line of its process in this
    # file, so each is one attempt of its own.
    pam_rhosts = collections.Counter(e.src_ip for _, e in events
                                     if e.attrs.get("method") == "pam"
                                     and e.src_ip in truth["pam_auth_failure"]["by_rhost"])
    assert pam_rhosts == truth["pam_auth_failure"]["by_rhost"]


def test_fail2ban_sshd_journal_figures(shared_data: Path) -> None:
    path = shared_data / "ssh" / "fail2ban_sshd-journal.log"
    truth = json.loads((shared_data / "ssh" / "fail2ban_sshd-journal.log.truth.json").read_text())
    events, unmatched = parse_file(path)
    assert unmatched == 0
    fp = failed_password(events)
    # 11 by the script, 14 the sshd way: line 25 has no port, lines 66 and 68 stand behind
    # a `kernel: [...]` prefix.
    assert truth["failed_password"]["events"] == 11
    assert len(fp) == 14
    by_ip = collections.Counter(e.src_ip for _, e in fp)
    assert by_ip["127.0.0.1"] == 6 and "10.10.1.2" not in by_ip
    invalid = [e for _, e in events if e.action == "invalid_user"]
    assert len(invalid) == truth["invalid_user"]["lines"]
    accepted = [e for _, e in events if e.action == "auth_success"]
    assert len(accepted) == truth["accepted"]["total"]
    assert collections.Counter(e.attrs["method"] for e in accepted) == (
        truth["accepted"]["by_method"])
    # No time on these lines: the time is when they were read.
    assert all(e.ts == NOW for _, e in events)


def test_one_attempt_is_one_event_with_pam() -> None:
    lines = [
        "Nov 23 10:00:00 h sshd[7]: pam_unix(sshd:auth): authentication failure; logname= "
        "uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.1  user=root",
        "Nov 23 10:00:02 h sshd[7]: Failed password for root from 203.0.113.1 port 1 ssh2",
        "Nov 23 10:00:04 h sshd[7]: Failed password for root from 203.0.113.1 port 1 ssh2",
        "Nov 23 10:00:05 h sshd[7]: PAM 1 more authentication failure; logname= uid=0 euid=0 "
        "tty=ssh ruser= rhost=203.0.113.1  user=root",
    ]
    parser = sshd.SshdParser(ParseContext(now=lambda: NOW))
    events = [e for line in lines for e in parser.parse(line) or []] + parser.finish()
    assert [e.action for e in events] == ["auth_failure", "auth_failure"]
    assert all(e.attrs["method"] == "password" for e in events)


def test_pam_failure_alone_is_released_after_a_while() -> None:
    parser = sshd.SshdParser(ParseContext(now=lambda: NOW))
    assert parser.parse(
        "Nov 23 10:00:00 h sshd[7]: pam_unix(sshd:auth): authentication failure; logname= "
        "uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.1  user=root") == []
    later = parser.parse("Nov 23 10:00:30 h sshd[8]: Server listening on 0.0.0.0 port 22.")
    assert later is not None and [(e.action, e.src_ip) for e in later] == [
        ("auth_failure", "203.0.113.1")]
    assert parser.finish() == []


def test_sessions_pair_in_the_store(sqlite_url: str) -> None:
    lines = [
        "Nov 23 10:00:00 h sshd[7]: Connection from 203.0.113.9 port 5000 on 10.0.0.1 port 22",
        "Nov 23 10:00:01 h sshd[7]: Accepted publickey for alice from 203.0.113.9 port 5000 ssh2",
        "Nov 23 10:00:02 h sshd[8]: Accepted password for bob from 203.0.113.10 port 6000 ssh2",
        "Nov 23 10:05:00 h sshd[7]: Received disconnect from 203.0.113.9 port 5000:11: bye",
        "Nov 23 10:05:00 h sshd[7]: Disconnected from user alice 203.0.113.9 port 5000",
        # the same pid later serves another connection: another session
        "Nov 23 11:00:00 h sshd[7]: Accepted password for carol from 203.0.113.11 port 7 ssh2",
    ]
    parser = sshd.SshdParser(ParseContext(sensor="s1", now=lambda: NOW,
                                          options={"timezone": "UTC"}))
    events = [e for line in lines for e in parser.parse(line) or []]
    for i, e in enumerate(events):
        e.id = f"e{i}"
    store = Store(sqlite_url)
    store.migrate()
    store.write(events)
    with store.connect() as conn:
        from portolan.store import schema

        rows = conn.execute(schema.sessions.select()).mappings().all()
    store.close()
    by_user = {r["user"]: r for r in rows}
    assert set(by_user) == {"alice", "bob", "carol"}
    assert by_user["alice"]["duration"] == 300.0
    assert by_user["alice"]["end_ts"] is not None
    assert by_user["bob"]["end_ts"] is None  # still connected
    assert by_user["carol"]["end_ts"] is None
    assert len({r["id"] for r in rows}) == 3


def test_memory_is_bounded_by_processes() -> None:
    parser = sshd.SshdParser(ParseContext(now=lambda: NOW))
    for pid in range(sshd.MAX_PROCESSES * 3):
        parser.parse(f"Nov 23 10:00:00 h sshd[{pid}]: Invalid user a from 192.0.2.1 port 1")
    assert len(parser.conns) == sshd.MAX_PROCESSES


def test_hostile_lines_never_crash() -> None:
    parser = sshd.SshdParser(ParseContext(now=lambda: NOW))
    nasty = [
        "Nov 23 10:00:00 h sshd[1]: Failed password for " + "from 1.2.3.4 " * 2000 + "port 1",
        "Nov 23 10:00:00 h sshd[1]: message repeated 99999999999 times: [ Failed password "
        "for root from 1.2.3.4 port 1 ssh2]",
        "Nov 23 10:00:00 h sshd[1]: Failed password for root from 1.2.3.4 port 99999999 ssh2",
        "Feb 30 10:00:00 h sshd[1]: Failed password for root from 1.2.3.4 port 1 ssh2",
        "<999999>1 - - - - - -", "\x00\x1b[2J", "Nov 23 10:00:00 h sshd[1]: " + "\ufffd" * 100,
    ]
    for line in nasty:
        result = parser.parse(line)
        assert result is None or isinstance(result, list)
    repeated = parser.parse(nasty[1])
    assert repeated is not None and len(repeated) == 10000  # bounded


def test_a_pam_failure_that_times_out_is_reported_once() -> None:
    """A PAM failure with no Failed line after it is released once, not again with every
    later line (the released list must not be the held one)."""
    from portolan.formats.base import ParseContext
    from portolan.formats.sshd import SshdParser

    clock = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    parser = SshdParser(ParseContext(sensor="t", now=lambda: clock))
    lines = [
        "Nov 20 10:00:00 h sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 "
        "euid=0 tty=ssh ruser= rhost=198.51.100.9  user=root",
        "Nov 20 10:05:00 h sshd[2]: Connection closed by 198.51.100.1 port 1 [preauth]",
        "Nov 20 10:06:00 h sshd[3]: Connection closed by 198.51.100.2 port 2 [preauth]",
        "Nov 20 10:07:00 h sshd[4]: Connection closed by 198.51.100.3 port 3 [preauth]",
    ]
    events = [e for line in lines for e in (parser.parse(line) or [])] + parser.finish()
    pam = [e for e in events if e.attrs.get("method") == "pam"]
    assert len(pam) == 1
    assert len({id(e) for e in events}) == len(events)


def stateful_lines() -> list[str]:
    """Lines whose events depend on what came before: PAM failures folded, released by
    time and by forgetting their process, repeats, probes that close a session, a reused
    pid, headers the fast path does not take, prefixes, and lines of other programs."""
    out = []
    for i in range(sshd.MAX_PROCESSES + 300):
        pid = i % 50 if i % 3 else 1000 + i  # a few processes again and again, and new ones
        t = f"Nov 23 10:{i // 600 % 60:02d}:{i // 10 % 60:02d}"
        ip = f"203.0.113.{i % 7}"
        out += [
            f"{t} h sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 "
            f"euid=0 tty=ssh ruser= rhost={ip}  user=root",
            f"{t} h sshd[{pid}]: Failed password for root from {ip} port {i} ssh2"
            if i % 4 == 0 else f"{t} h sshd[{pid}]: Connection from {ip} port {i} on "
                               "10.0.0.1 port 22",
            f"{t} h sshd[{pid}]: message repeated {i % 4} times: [ Failed password for root "
            f"from {ip} port {i} ssh2]",
            f"{t} h sshd[{pid}]: Accepted password for u from {ip} port {i} ssh2"
            if i % 5 == 0 else f"{t} h cron[{pid}]: (root) CMD (true)",
            f"{t} h sshd[{pid}]: error: kex_exchange_identification: Connection closed by "
            "remote host",
            f"{t} h sshd[{pid}]: fatal: Timeout before authentication for {ip} port {i}",
            f"{t} h sshd[{pid}]: Connection closed by {ip} port {i} [preauth]",
            f"{t} [sshd]: User root from {ip} not allowed because not listed in AllowUsers",
            f"2026-11-23T10:00:{i % 60:02d}.5+00:00 h sshd[{pid}]: Invalid user x from {ip}",
            f"{t} h sshd[{pid}]: [ID 800047 auth.info] Failed keyboard-interactive for u from "
            f"{ip} port {i} ssh2",
            f"{t} h sshd[{pid}]: Server listening on 0.0.0.0 port 22.",
            f"{t} h sshd[{pid}]: something sshd never says",
            "",
        ]
    # PAM failures of new processes in the same second, till the oldest are forgotten
    for pid in range(100_000, 100_000 + sshd.MAX_PROCESSES + 10):
        out.append(f"Nov 23 11:00:00 h sshd[{pid}]: pam_unix(sshd:auth): authentication "
                   "failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.77")
    out.append("Nov 23 11:00:00 h sshd[1]: Server listening on 0.0.0.0 port 22.")
    return out


def test_counting_gives_the_number_of_events_that_parsing_gives(shared_data: Path) -> None:
    """count_events(line) is len(parse(line)) line after line, state and all: the figures of
    `portolan parse` without --json are those of the events."""
    files = [SAMPLE_FILE, shared_data / "ssh" / "fail2ban_sshd.log",
             shared_data / "ssh" / "fail2ban_sshd-journal.log"]
    inputs = [f.read_text(encoding="utf-8", errors="replace").splitlines() for f in files]
    for lines in [*inputs, stateful_lines()]:
        parsing = sshd.SshdParser(ParseContext(sensor="t", now=lambda: NOW))
        counting = sshd.SshdParser(ParseContext(sensor="t", now=lambda: NOW))
        kinds: collections.Counter[str] = collections.Counter()
        for line in lines:
            events = parsing.parse(line)
            counted = counting.count_events(line)
            assert counted == (None if events is None else len(events)), line
            kinds["none" if events is None else str(min(len(events), 3))] += 1
        assert len(counting.finish()) == len(parsing.finish())
        assert kinds["none"] and kinds["0"] and kinds["1"]
    # the generated lines reach the paths that carry state
    parser = sshd.SshdParser(ParseContext(sensor="t", now=lambda: NOW))
    events = [e for line in stateful_lines() for e in parser.parse(line) or []]
    actions = collections.Counter(e.action for e in events)
    assert actions["auth_failure"] and actions["probe"] and actions["disconnect"]
    assert sum(e.attrs.get("method") == "pam" for e in events) > 100
    assert any(e.duration is not None for e in events)
    # (before the end of the input, only forgetting their process lets these go)
    assert sum(e.src_ip == "198.51.100.77" for e in events) == 10


def test_session_ids() -> None:
    """A session's id is make_id("ssh", sensor, host and pid, start)."""
    parser = sshd.SshdParser(ParseContext(sensor="s1", now=lambda: NOW,
                                          options={"timezone": "UTC"}))
    events = parser.parse(
        "Nov 23 10:00:01 h sshd[7]: Accepted publickey for alice from 203.0.113.9 port 5 ssh2")
    assert events is not None
    start = dt.datetime(2026, 11, 23, 10, 0, 1, tzinfo=dt.UTC)
    assert events[0].session == make_id("ssh", "s1", "h\x1f7", start.isoformat())


def test_headers_read_as_the_syslog_header_reader_reads_them() -> None:
    """The parser reads the common headers itself: it must find in them what
    portolan.formats.header.split finds (time, host and pid, and so the session)."""
    heads = [
        "Nov 23 10:00:01 h sshd[7]:", "Nov  3 10:00:01 h sshd[7]:", "Nov 23 10:00:01 sshd[7]:",
        "2026-11-23T10:00:01.123456+02:00 h sshd[7]:", "2026-11-23T10:00:01Z h sshd[7]:",
        "2026-11-23 10:00:01+0200 h sshd[7]:", "2026-11-23T10:00:01 h sshd[7]:",
        "2026-11-23T10:00:01.5-05:00 sshd[7]:", "2026-02-30T10:00:01Z h sshd[7]:",
        "Feb 30 10:00:01 h sshd[7]:", "Nov 23 10:00:01.250 h sshd[7]:",
        "2026-11-23T10:00:01Z h sshd[7]", "2026-11-23T10:00:01Z h [sshd]:",
    ]
    for timezone in ("UTC", "Europe/Paris"):
        tz = ZoneInfo(timezone)
        clock = SyslogClock(lambda: NOW, tz)
        for head in heads:
            line = f"{head} Accepted password for u from 192.0.2.1 port 22 ssh2"
            parser = sshd.SshdParser(ParseContext(sensor="s", now=lambda: NOW,
                                                  options={"timezone": timezone}))
            events = parser.parse(line)
            header = split(line, clock, tz)
            assert header is not None and events is not None, line
            assert [e.ts for e in events] == [header.ts or NOW], line
            start = header.ts or NOW
            session = make_id("ssh", "s", f"{header.host}\x1f{header.pid}", start.isoformat())
            assert [e.session for e in events] == [session if header.pid else None], line
