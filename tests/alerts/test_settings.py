"""The [alerts] table: every mistake stops start-up naming the file, the key and what is
allowed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from portolan import config
from portolan.alerts.settings import (
    AlertsSection,
    QuietHours,
    check_section,
    parse_rules,
    quiet_hours,
    seconds,
)
from portolan.config import ConfigError


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "portolan.toml"
    path.write_text(text)
    return config.load(path, environ={})


BASE = '[alerts]\nchannels = { hook = "json://127.0.0.1:9/x" }\n'


def test_rules_as_named_tables_and_one_line(tmp_path: Path) -> None:
    cfg = load(tmp_path, BASE + 'rules.sdr = { kind = "spyserver" }\n'
               '[alerts.rules.root]\nmatch = { user = ["root", "admin"], asn = 64500 }\n'
               'cidr = { src_ip = "198.51.100.0/24" }\nthrottle = "0"\n')
    rules = parse_rules(cfg.get(AlertsSection), "x")
    assert rules["sdr"].kind == "spyserver"
    assert rules["root"].match == {"user": ["root", "admin"], "asn": 64500}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('kind = "first_time"', "alerts.rules.r.kind: 'first_time' is not allowed; allowed: "
                                "match, first_seen"),
        ('match = { usr = "x" }', "alerts.rules.r.match: unknown field 'usr'; allowed: id,"),
        ('regex = { user = "[" }', "alerts.rules.r.regex.user: '[' is not a valid regular"),
        ('cidr = { user = "10.0.0.0/8" }', "'user' is not an address field; allowed: src_ip"),
        ('exclude_cidr = { src_ip = ["10.0.0.0/8", "10.0.0.300/32"] }',
         "alerts.rules.r.exclude_cidr.src_ip: '10.0.0.300/32' is not a network"),
        ('channels = ["pager"]', "alerts.rules.r.channels: no channel 'pager'; known: hook"),
        ("treshold = 5", "unknown key 'alerts.rules.r.treshold'; allowed here: kind,"),
        ('window = "forever"', "alerts.rules.r.window: 'forever' is not a duration"),
        ('actions = ["close"]', "alerts.rules.r.actions: 'close' is not allowed; allowed: "
                                "connect, disconnect"),
        ("failures = 0", "alerts.rules.r.failures: must be at least 1"),
        ('field = "attrs."', "alerts.rules.r.field: unknown field 'attrs.'"),
        ('message = "{ip}"', "unknown placeholder {ip}; allowed: action,"),
        ('threshold = "many"', "alerts.rules.r.threshold: Expected `int`, got `str`"),
    ],
)
def test_bad_rules_name_file_key_and_allowed(tmp_path: Path, rule: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, BASE + "[alerts.rules.r]\n" + rule + "\n")
    text = str(info.value)
    assert text.startswith(str(tmp_path / "portolan.toml") + ": ")
    assert message in text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('quiet_hours = "22-07"', "alerts.quiet_hours: '22' is not a time of day; use HH:MM"),
        ('quiet_hours = "22:00"', "alerts.quiet_hours: '22:00' is not a span"),
        ('timezone = "Mars/Olympus"', "alerts.timezone: unknown time zone 'Mars/Olympus'"),
        ('digest_time = "25:00"', "alerts.digest_time: '25:00' is not a time of day"),
        ('group_window = "soon"', "alerts.group_window: 'soon' is not a duration"),
        ("group_max = 0", "alerts.group_max: must be at least 1"),
    ],
)
def test_bad_section_keys(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("'", "'")):
        load(tmp_path, BASE + line + "\n")


def test_channel_url_needs_a_scheme(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"alerts.channels.hook: 'hooks.example' is not an "
                                          r"Apprise URL"):
        load(tmp_path, '[alerts]\nchannels = { hook = "hooks.example" }\n')


def test_channel_secret_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "portolan.toml"
    path.write_text(BASE)
    cfg = config.load(path, environ={"PORTOLAN_ALERTS__CHANNELS__SLACK": "slack://a/b/c"})
    assert cfg.get(AlertsSection).channels["slack"] == "slack://a/b/c"


def test_durations() -> None:
    assert seconds(90, "w") == 90
    assert seconds("90s", "w") == 90
    assert seconds("10m", "w") == 600
    assert seconds("1.5h", "w") == 5400
    assert seconds("2d", "w") == 172800
    with pytest.raises(ConfigError):
        seconds(True, "w")
    with pytest.raises(ConfigError, match="negative"):
        seconds(-1, "w")


def test_quiet_hours_across_midnight() -> None:
    span = quiet_hours("22:00-07:00", "w")
    assert span == QuietHours(dt.time(22), dt.time(7))
    assert span.contains(dt.time(23, 30)) and span.contains(dt.time(6, 59))
    assert not span.contains(dt.time(7)) and not span.contains(dt.time(12))
    day = quiet_hours("12:00-13:00", "w")
    assert day is not None and day.contains(dt.time(12, 30)) and not day.contains(dt.time(13))
    assert quiet_hours("", "w") is None


def test_the_defaults_are_valid() -> None:
    assert check_section(AlertsSection(), "x") == {}


def test_every_key_kind_and_placeholder_is_documented() -> None:
    from portolan.alerts.rules import PLACEHOLDERS
    from portolan.alerts.settings import KINDS, RuleSettings

    docs = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    for name in [*AlertsSection.__struct_fields__, *RuleSettings.__struct_fields__, *KINDS]:
        assert f"`{name}`" in docs or name in ("channels", "rules"), name
    assert "[alerts.channels]" in docs and "[alerts.rules.NAME]" in docs
    for name in PLACEHOLDERS:
        assert f"`{{{name}}}`" in docs, name
