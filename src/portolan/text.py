"""Attacker text made safe to show in a terminal."""

from __future__ import annotations


def printable(text: str, limit: int | None = None) -> str:
    """Control characters and escape sequences shown escaped (``\\x1b``), never sent raw to
    a terminal; cut to ``limit`` characters with an ellipsis."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if limit is not None and len(out) > limit:
        out = out[: max(0, limit - 1)] + "…"
    return out
