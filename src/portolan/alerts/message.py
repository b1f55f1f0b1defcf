"""The text of an alert: attacker text made harmless, and ``{field}`` templates.

A message goes to channels that read markup: Slack (``<!channel>``, ``<@U123>``,
``<url|text>``), Discord (``@everyone``, ``[text](url)``), Telegram and e-mail (HTML),
Matrix (HTML and Markdown). Text a remote peer chose (user names, client names, paths)
is therefore bounded, stripped of control and format characters, and its markup
characters are replaced by look-alikes that no channel reads as markup. The look-alikes
keep the text readable for a human, and the same message is safe on every channel,
whatever each Apprise plugin escapes or not. Links are defanged (``http∶//``) so no
channel turns them into clickable links or previews.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Final

from portolan.config import ConfigError

#: Longest attacker text kept in a message, in characters.
TEXT_LIMIT: Final = 80

# Markup characters of Slack, Discord, Markdown and HTML, and their full-width forms.
_LOOKALIKE: Final = str.maketrans({
    "<": "＜", ">": "＞", "&": "＆", "@": "＠", "[": "［", "]": "］", "`": "｀",
    "*": "＊", "|": "｜", "~": "～", "\\": "＼",
})
_SCHEME = re.compile(r"(?i)([a-z][a-z0-9+.-]*):(?=//)")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def untrusted(text: object, limit: int = TEXT_LIMIT) -> str:
    """Attacker text as it may appear in a message: one line, bounded, no control or
    format characters (bidi overrides, zero-width), markup replaced by look-alikes."""
    raw = "" if text is None else str(text)
    raw = raw[: limit * 4]  # bound the work before cleaning
    out = []
    for char in raw:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(" " if char in "\t\n\r\x0b\x0c\u2028\u2029" else "?")
        else:
            out.append(char)
    cleaned = " ".join("".join(out).split())
    cleaned = _SCHEME.sub(r"\1∶", cleaned).translate(_LOOKALIKE)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned


def duration(value: float | None) -> str:
    """Seconds as ``H:MM:SS`` (``2d 03:04:05`` beyond a day; never wraps at 24 h)."""
    if value is None:
        return "?"
    total = round(value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def check_template(template: str, where: str, known: Iterable[str]) -> None:
    """A template may hold only ``{name}`` placeholders of ``known`` names (no format
    specs, no indexing, no other braces)."""
    allowed = sorted(known)
    stripped = _PLACEHOLDER.sub("", template)
    if "{" in stripped or "}" in stripped:
        raise ConfigError(
            f"{where}: {template!r}: braces are only for placeholders like {{src_ip}}; "
            f"allowed: {', '.join(allowed)}"
        )
    for name in _PLACEHOLDER.findall(template):
        if name not in allowed:
            raise ConfigError(
                f"{where}: unknown placeholder {{{name}}}; allowed: {', '.join(allowed)}"
            )


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders from ``values`` (already made safe); unknown names
    become ``?``."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], "?"), template)
