"""The journald source on real journal files, written by systemd-journal-remote and read by
journalctl as a user's system would."""


from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from portolan.sources.base import SourceContext
from portolan.sources.journald import JournaldOptions, JournaldSource
from tests.sources.test_file import Collector, until

REMOTE = Path("/lib/systemd/systemd-journal-remote")
pytestmark = pytest.mark.skipif(
    not REMOTE.exists() or shutil.which("journalctl") is None,
    reason="needs systemd-journal-remote and journalctl (Debian: systemd-journal-remote)")


def entry(n: int, message: bytes | str, ident: str = "sshd") -> bytes:
    fields = [f"__REALTIME_TIMESTAMP={1_763_874_000_000_000 + n * 1_000_000}",
              "_HOSTNAME=srv", f"SYSLOG_IDENTIFIER={ident}", f"_PID={1000 + n}"]
    out = "".join(f + "\n" for f in fields).encode()
    if isinstance(message, str):
        return out + f"MESSAGE={message}\n\n".encode()
    # the export format's binary form, for a message that is not UTF-8
    return out + b"MESSAGE\n" + struct.pack("<Q", len(message)) + message + b"\n\n"


def write(journal: Path, *entries: bytes) -> None:
    subprocess.run([str(REMOTE), f"--output={journal}", "-"], input=b"".join(entries),
                   check=True, capture_output=True)


def make(tmp_path: Path, journal: Path, **kw: object) -> JournaldSource:
    options = JournaldOptions(type="journald", name="j", files=[str(journal)],
                              format_options={"timezone": "UTC"}, **kw)  # type: ignore[arg-type]
    ctx = SourceContext(sensor="s", data_dir=tmp_path / "data",
                        now=lambda: dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    return JournaldSource(options, ctx)


async def run_until(src: JournaldSource, count: int, then: object = None) -> Collector:
    out = Collector()
    task = asyncio.create_task(src.run(out))
    try:
        await until(lambda: len(out.events) >= count, 20)
        if callable(then):
            then()
            await until(lambda: len(out.events) >= count + 1, 20)
        await asyncio.sleep(0.3)  # anything more would be wrong
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return out


async def test_follows_the_journal_and_resumes_after_its_cursor(tmp_path: Path) -> None:
    journal = tmp_path / "t.journal"
    write(journal,
          entry(0, "Failed password for root from 203.0.113.5 port 4242 ssh2"),
          entry(1, "Started session 1 of user root.", ident="systemd-logind"),
          entry(2, b"Invalid user \xff\xfeadm from 203.0.113.6 port 1"),
          entry(3, "Accepted publickey for alice from 198.51.100.2 port 2222 ssh2: ED25519 x"))
    src = make(tmp_path, journal, start_at="beginning")
    out = await run_until(src, 3, lambda: write(journal, entry(
        4, "Connection closed by 203.0.113.9 port 77 [preauth]", ident="sshd-session")))
    assert [(e.action, e.src_ip) for e in out.events] == [
        ("auth_failure", "203.0.113.5"), ("invalid_user", "203.0.113.6"),
        ("auth_success", "198.51.100.2"), ("disconnect", "203.0.113.9")]
    assert out.events[0].ts == dt.datetime.fromtimestamp(1_763_874_000, dt.UTC)
    assert out.events[1].user == "\ufffd\ufffdadm"
    assert out.events[2].session  # the session opened by the accepted login

    write(journal, entry(5, "Invalid user bob from 203.0.113.10 port 5"))
    again = await run_until(make(tmp_path, journal, start_at="beginning"), 1)
    assert [e.user for e in again.events] == ["bob"]  # after the saved cursor only

    # Ids come from the journal cursor: reading everything again gives the same ids.
    shutil.rmtree(tmp_path / "data")
    everything = await run_until(make(tmp_path, journal, start_at="beginning"), 5)
    assert [e.id for e in everything.events[:4]] == [e.id for e in out.events]


async def test_start_at_end_reads_only_new_entries(tmp_path: Path) -> None:
    journal = tmp_path / "t.journal"
    write(journal, entry(0, "Invalid user old from 203.0.113.1 port 1"))
    src = make(tmp_path, journal)

    def more() -> None:
        write(journal, entry(1, "Invalid user new from 203.0.113.2 port 2"))

    out = Collector()
    task = asyncio.create_task(src.run(out))
    try:
        await asyncio.sleep(1.0)  # journalctl is following
        more()
        await until(lambda: len(out.events) >= 1, 20)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [e.user for e in out.events] == ["new"]


def test_the_command_line(tmp_path: Path) -> None:
    src = make(tmp_path, tmp_path / "x.journal")
    cmd = src.command()
    assert cmd[:2] == ["journalctl", "--follow"]
    assert "--merge" in cmd and "--lines=0" in cmd
    assert "SYSLOG_IDENTIFIER=sshd" in cmd and f"--file={tmp_path / 'x.journal'}" in cmd


def test_defaults_take_the_journal_only_without_a_readable_log(tmp_path: Path) -> None:
    from portolan.sources.journald import sshd_journal_defaults

    journal = tmp_path / "t.journal"
    where = (f"--file={journal}",)
    log = tmp_path / "auth.log"
    assert sshd_journal_defaults((str(log),), where=where) == []  # no journal file yet
    write(journal, entry(0, "Invalid user a from 203.0.113.1 port 1"))
    [found] = sshd_journal_defaults((str(log),), where=where)
    assert isinstance(found, JournaldOptions) and found.format == "sshd"
    log.write_text("")
    assert sshd_journal_defaults((str(log),), where=where) == []  # the file source's
    assert sshd_journal_defaults((str(tmp_path / "none"),), journalctl="no-such-journalctl",
                                 where=where) == []


async def test_a_missing_journalctl_is_retried_not_fatal(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    src = make(tmp_path, tmp_path / "x.journal", journalctl=str(tmp_path / "no-journalctl"))
    task = asyncio.create_task(src.run(Collector()))
    await until(lambda: "cannot run" in caplog.text, 10)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
