"""An address's story as text: attacker text escaped, no markup read."""

from __future__ import annotations

import datetime as dt

from portolan.store import Store
from portolan.tui.feeds import StoreFeed
from portolan.tui.screens import KEYS, story_text


def test_story_text_escapes_and_stays_literal(filled_store: Store) -> None:
    story = StoreFeed(filled_store).story("198.51.100.7")
    assert story is not None
    story.address.note = "[blink]note\x1b]0;title\x07"
    text = story_text(story)
    plain = text.plain
    assert "\x1b" not in plain and "\x07" not in plain
    assert "users tried: \\x1b[31m[bold red]pwn[/] 5" in plain
    assert "note: [blink]note\\x1b]0;title\\x07" in plain
    assert "failed logins 5" in plain
    assert "https://www.shodan.io/host/198.51.100.7" in plain
    assert not any("red" in str(span.style) and "pwn" in plain[span.start:span.end]
                   for span in text.spans)
    recent = [line for line in plain.splitlines() if line.startswith(
        story.recent[0].ts.astimezone(dt.UTC).strftime("%m-%d"))]
    assert len(recent) == len(story.recent)


def test_every_key_fits_one_line_of_the_help() -> None:
    assert all(len(f"{key:>9}  {what}") <= 74 for key, what in KEYS)
