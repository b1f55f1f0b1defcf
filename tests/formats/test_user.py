"""User-defined formats: declared in the config, validated at load, used like built-ins."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from portolan.cli import _load
from portolan.cli.app import main
from portolan.config import ConfigError, load
from portolan.formats.base import FORMATS, ParseContext

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)
_load()

VPN = (r"^(?P<ts>\S+) vpn: login (?P<outcome>failed|ok) user=(?P<user>\S+) "
       r"peer=(?P<src_ip>[^:\s]+):(?P<src_port>\d+)")
CONFIG = f"""
[formats.vpnlog]
regex = '{VPN}'
""" + r"""service = "vpn"
action = "auth_failure"
summary = "our VPN concentrator"

[formats.appsys]
regex = '^(?P<ts>\w{3} +\d+ \d\d:\d\d:\d\d) app: (?P<action>connect|disconnect) (?P<src_ip>\S+)'
service = "app"
timezone = "UTC"

[formats.stamp]
regex = '^(?P<ts>\d+/\d+/\d+ \d+\.\d+) from (?P<src_ip>\S+)'
time_format = "%d/%m/%Y %H.%M"
timezone = "Europe/Paris"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "portolan.toml"
    path.write_text(text)
    return path


def parser(name: str):  # type: ignore[no-untyped-def]
    spec = FORMATS.get(name)
    assert spec.make_parser is not None
    return spec.make_parser(ParseContext(sensor="s", source="f", now=lambda: NOW))


def test_formats_from_the_config(tmp_path: Path) -> None:
    load(write(tmp_path, CONFIG))
    p = parser("vpnlog")
    [event] = p.parse("2026-11-23T05:00:00Z vpn: login failed user=<b>eve</b> "
                      "peer=203.0.113.4:5000 extra")
    assert (event.action, event.service, event.user, event.src_ip, event.src_port) == (
        "auth_failure", "vpn", "<b>eve</b>", "203.0.113.4", 5000)
    assert event.attrs == {"outcome": "failed"}
    assert event.ts == dt.datetime(2026, 11, 23, 5, tzinfo=dt.UTC)
    assert p.parse("something else") is None
    # a port out of range is dropped, not stored
    [bad_port] = p.parse("2026-11-23T05:00:00Z vpn: login ok user=a peer=203.0.113.4:99999")
    assert bad_port.src_port is None

    [conn] = parser("appsys").parse("Nov 23 10:00:00 app: disconnect 198.51.100.1")
    assert (conn.action, conn.service, conn.ts) == (
        "disconnect", "app", dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC))

    [stamped] = parser("stamp").parse("01/07/2026 12.00 from 192.0.2.1")
    assert stamped.ts == dt.datetime(2026, 7, 1, 10, tzinfo=dt.UTC)
    assert parser("stamp").parse("31/02/2026 12.00 from 192.0.2.1") is None


def test_reloading_replaces_a_format(tmp_path: Path) -> None:
    load(write(tmp_path, CONFIG))
    load(write(tmp_path, "[formats.vpnlog]\nregex = 'x(?P<user>\\w+)'\nservice = \"other\"\n"))
    [event] = parser("vpnlog").parse("xroot")
    assert (event.service, event.user) == ("other", "root")


@pytest.mark.parametrize(("table", "message"), [
    ("[formats.broken]\nregex = '(?P<src_ip>[0-9'\n",
     r"portolan.toml: formats.broken.regex: not a valid regex: unterminated character set"),
    ("[formats.nogroups]\nregex = 'failed'\n", r"formats.nogroups.regex: has no named group"),
    ("[formats.sshd]\nregex = '(?P<src_ip>\\S+)'\n", r"formats.sshd: 'sshd' is a built-in"),
    ("[formats.tz]\nregex = '(?P<src_ip>\\S+)'\ntimezone = 'Mars/Olympus'\n",
     r"formats.tz.timezone: unknown time zone"),
    ("[formats.typo]\nregexp = 'x'\n", r"unknown key 'formats.typo.regexp'"),
])
def test_bad_formats_stop_start_up(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, table))


def test_parse_summary_with_a_user_format(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG)
    log = tmp_path / "vpn.log"
    log.write_text("2026-11-23T05:00:00Z vpn: login failed user=a peer=203.0.113.4:1\n"
                   + "noise line\n" * 3
                   + "2026-11-23T05:00:01Z vpn: login ok user=b peer=203.0.113.5:2\n")
    result = CliRunner().invoke(main, ["-c", str(config), "parse", str(log), "-f", "vpnlog"])
    assert result.exit_code == 0, result.output
    assert "matched:   2 (2 events)" in result.output
    assert "unmatched: 3" in result.output
    assert "noise line" in result.output
    listed = CliRunner().invoke(main, ["-c", str(config), "parse", "--list"])
    assert "our VPN concentrator" in listed.output


def test_a_bad_regex_is_one_clear_line_on_the_command_line(tmp_path: Path) -> None:
    config = write(tmp_path, "[formats.broken]\nregex = '(?P<src_ip>[0-9'\n")
    result = CliRunner().invoke(main, ["-c", str(config), "parse", "--list"])
    assert result.exit_code == 2
    assert "formats.broken.regex: not a valid regex" in result.output
