"""Registries of formats, sources, enrichers, sinks and config sections.

Built-in pieces register themselves exactly the way a third-party plugin would: a module
calls ``FORMATS.add(...)`` (or another registry's ``add``) when it is imported. The
registries import every module of Portolan's own plugin packages on first use, then the
modules named by the ``portolan.plugins`` entry point group of installed distributions.
A plugin that fails to import is logged and skipped; the others still load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
from collections.abc import Iterator
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Packages whose modules are imported to let the built-ins register.
BUILTIN_PACKAGES = (
    "portolan.formats",
    "portolan.sources",
    "portolan.enrich",
    "portolan.sinks",
    "portolan.alerts",
    "portolan.server",
)

_loaded = False
#: Plugins that failed to import: module name -> error text.
FAILED: dict[str, str] = {}


def load_all() -> None:
    """Import the built-in plugin modules and the installed plugins, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package_name in BUILTIN_PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ImportError as exc:  # pragma: no cover - a broken install
            FAILED[package_name] = str(exc)
            continue
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            if info.name.rpartition(".")[2].startswith("_"):
                continue
            _import(info.name)
    for ep in importlib.metadata.entry_points(group="portolan.plugins"):
        _import(ep.value)


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as exc:  # isolate a broken plugin from the rest
        FAILED[name] = f"{type(exc).__name__}: {exc}"
        log.warning("plugin %s failed to load: %s", name, FAILED[name])


class UnknownName(LookupError):
    """A name that no registered piece has; the message lists the ones that exist."""


class Registry(Generic[T]):
    """Named pieces of one kind (formats, sources...), filled by the modules that define them."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` under ``name``; a second piece with the same name is an error."""
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def remove(self, name: str) -> None:
        """Forget ``name`` (user-defined formats are replaced when the config is reloaded)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """The piece called ``name``, or :class:`UnknownName` listing the known ones."""
        load_all()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        load_all()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, piece) pairs, sorted by name."""
        load_all()
        for name in sorted(self._items):
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        load_all()
        return name in self._items
