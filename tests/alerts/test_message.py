"""Attacker text in alert messages: bounded, one line, no markup any channel reads."""

from __future__ import annotations

import pytest

from portolan.alerts.message import check_template, duration, render, untrusted
from portolan.config import ConfigError


@pytest.mark.parametrize(
    "hostile",
    [
        "<!channel> wake up",
        "<!here|here>",
        "<@U024BE7LH>",
        "<https://evil.example/|click me>",
        "[click](https://evil.example/)",
        "@everyone @here",
        "<b>bold</b><script>alert(1)</script>",
        "`code` *bold* ~strike~ ||spoiler||",
    ],
)
def test_markup_of_every_channel_is_neutralised(hostile: str) -> None:
    safe = untrusted(hostile)
    for char in "<>&@[]`*|~":
        assert char not in safe
    assert "://" not in safe
    # still readable for a human: the letters survive
    assert "".join(c for c in hostile if c.isalnum())[:6] in "".join(
        c for c in safe if c.isalnum())


def test_control_and_format_characters_are_removed() -> None:
    text = "root\nClient disconnected: 1.2.3.4:5\x1b[31mred\u202eevil\u200b!\x00"
    safe = untrusted(text, limit=200)
    assert "\n" not in safe and "\x1b" not in safe and "\x00" not in safe
    assert "\u202e" not in safe and "\u200b" not in safe
    assert safe.startswith("root Client disconnected")


def test_text_is_bounded() -> None:
    safe = untrusted("A" * 10_000, limit=50)
    assert len(safe) == 50
    assert safe.endswith("…")
    assert untrusted(None) == ""


def test_duration_never_wraps_at_a_day() -> None:
    assert duration(5.4) == "00:00:05"
    assert duration(3 * 3600 + 62) == "03:01:02"
    assert duration(2 * 86400 + 3661) == "2d 01:01:01"
    assert duration(None) == "?"


def test_templates_take_only_known_placeholders() -> None:
    check_template("Open {src_ip} at {place}", "w", {"src_ip", "place"})
    with pytest.raises(ConfigError, match=r"unknown placeholder \{nope\}; allowed: place"):
        check_template("{nope}", "w", {"place"})
    with pytest.raises(ConfigError, match="braces"):
        check_template("{place.__class__!r}", "w", {"place"})
    assert render("{a} and {b}", {"a": "x"}) == "x and ?"
