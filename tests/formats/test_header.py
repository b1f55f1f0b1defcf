"""Syslog and journal headers: every form, and the year of times that have none."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from portolan.formats.header import SyslogClock, split

UTC = dt.UTC


def clock(now: dt.datetime, tz: dt.tzinfo | None = UTC) -> SyslogClock:
    return SyslogClock(lambda: now, tz)


@pytest.mark.parametrize(("line", "host", "program", "pid", "message"), [
    ("Nov 23 21:50:37 myhost sshd[21810]: hello", "myhost", "sshd", "21810", "hello"),
    ("Feb 7 16:01:07 linux-m899 sshd[5106]: hi there", "linux-m899", "sshd", "5106", "hi there"),
    ("Nov 23 21:50:19 sshd[8148]: Disconnecting: x", "", "sshd", "8148", "Disconnecting: x"),
    ("Mar  3 00:17:22 [sshd]: User root", "", "sshd", "", "User root"),
    ("Jun 25 23:53:34 [sshd] User root", "", "sshd", "", "User root"),
    ("2015-04-16T18:02:50.321974+00:00 host sshd[2716]: m", "host", "sshd", "2716", "m"),
    ("srv sshd-session[13709]: error: x", "srv", "sshd-session", "13709", "error: x"),
    ("<38>Nov 23 10:00:00 web1 sshd(pam_unix)[4]: m", "web1", "sshd(pam_unix)", "4", "m"),
    ('<38>1 2019-07-08T17:40:16.954167-04:00 h.example.com sshd 57915 - [a b="]"][c@1 d="e"] m',
     "h.example.com", "sshd", "57915", "m"),
    ("<38>1 - - - - - -", "-", "-", "", ""),
])
def test_forms(line: str, host: str, program: str, pid: str, message: str) -> None:
    head = split(line, clock(dt.datetime(2026, 11, 23, tzinfo=UTC)))
    assert head is not None
    assert (head.host, head.program, head.pid, head.message) == (host, program, pid, message)


@pytest.mark.parametrize("line", [
    "# failJSON: { \"time\": 1 }", "", "just words here", "<abc>Nov 23 10:00:00 h p[1]: m",
    "<38>1 2019-07-08T17:40:16Z host app 1 - [unterminated m",
])
def test_not_a_header(line: str) -> None:
    assert split(line, clock(dt.datetime(2026, 11, 23, tzinfo=UTC))) is None


def test_times() -> None:
    c = clock(dt.datetime(2026, 11, 23, tzinfo=UTC))
    rfc5424 = split("<38>1 2019-07-08T17:40:16.5-04:00 h a 1 - - m", c)
    assert rfc5424 is not None and rfc5424.ts == dt.datetime(2019, 7, 8, 21, 40, 16, 500000,
                                                             tzinfo=UTC)
    journal = split("srv sshd[1]: m", c)
    assert journal is not None and journal.ts is None


def test_the_year_across_new_year() -> None:
    # Read on the 1st of January: December is last year, January this one.
    c = clock(dt.datetime(2027, 1, 1, 0, 5, tzinfo=UTC))
    assert c("Dec", "31", "23", "59", "59") == dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert c("Jan", "1", "00", "04", "00") == dt.datetime(2027, 1, 1, 0, 4, tzinfo=UTC)
    # Up to a day ahead is allowed (a sender's clock slightly ahead).
    assert c("Jan", "1", "20", "00", "00") == dt.datetime(2027, 1, 1, 20, tzinfo=UTC)
    # Read in March, a file that spans New Year keeps its order.
    march = clock(dt.datetime(2027, 3, 1, tzinfo=UTC))
    assert march("Dec", "30", "10", "00", "00").year == 2026
    assert march("Jan", "2", "10", "00", "00").year == 2027
    # 29 February: the last year that had one.
    leap = clock(dt.datetime(2027, 3, 1, tzinfo=UTC))
    assert leap("Feb", "29", "12", "00", "00") == dt.datetime(2024, 2, 29, 12, tzinfo=UTC)
    assert c("Foo", "1", "00", "00", "00") is None


def test_local_time_zone() -> None:
    c = clock(dt.datetime(2026, 11, 23, tzinfo=UTC), ZoneInfo("America/New_York"))
    assert c("Jul", "4", "12", "00", "00") == dt.datetime(2026, 7, 4, 16, tzinfo=UTC)
