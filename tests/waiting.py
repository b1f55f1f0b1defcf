"""Waiting for a condition with a deadline, instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], within: float = 10.0,
                     step: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``within`` seconds pass; returns its last value."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() >= deadline:
            return condition()
        await asyncio.sleep(step)
    return True


def eventually_sync(condition: Callable[[], bool], timeout: float = 10.0,
                    step: float = 0.02) -> bool:
    """The same, for tests that are not async (processes, sockets)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(step)
    return True
