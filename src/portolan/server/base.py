"""How parts of Portolan add routes to the one HTTP server.

A module registers a :class:`MountSpec` in :data:`MOUNTS`; the server mounts every
registered app under its path (``/ssmon`` for the spyserver monitor's compatibility API,
for example). Each app gets the :class:`~portolan.runtime.Runtime`, and reads through the
store's query layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portolan.plugins import Registry

if TYPE_CHECKING:
    from portolan.runtime import Runtime


@dataclass(frozen=True)
class MountSpec:
    """An ASGI app mounted at ``path`` of the server."""

    path: str
    summary: str
    make: Callable[[Runtime], Any]
    """Returns the ASGI app (a Starlette ``Router`` or ``Starlette``)."""


#: Every app mounted in the server, by path.
MOUNTS: Registry[MountSpec] = Registry("server mount")
