"""Registries of formats, sources, enrichers, sinks and config sections.

Built-in pieces register themselves exactly the way a third-party plugin would: a module
calls ``FORMATS.add(...)`` (or another registry's ``add``) when it is imported. On first
use, a registry imports every module of the built-in packages that can hold its pieces,
then the modules named by the ``portolan.plugins`` entry point group of installed
distributions. Most registries take pieces from any package and so import them all; the
formats come from ``portolan.formats`` alone, so that ``portolan parse`` does not load the
store, the server and the enrichment data. A plugin that fails to import is logged and
skipped; the others still load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
from collections.abc import Iterable, Iterator
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

#: Built-in packages whose modules are imported already.
_imported: set[str] = set()
_entry_points_loaded = False
#: Plugins that failed to import: module name -> error text.
FAILED: dict[str, str] = {}


def load_all() -> None:
    """Import the built-in plugin modules and the installed plugins, once."""
    load(BUILTIN_PACKAGES)


def load(packages: Iterable[str]) -> None:
    """Import the modules of these built-in packages and the installed plugins, each once."""
    global _entry_points_loaded
    for package_name in packages:
        if package_name in _imported:
            continue
        _imported.add(package_name)
        try:
            package = importlib.import_module(package_name)
        except ImportError as exc:  # pragma: no cover - a broken install
            FAILED[package_name] = str(exc)
            continue
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            if info.name.rpartition(".")[2].startswith("_"):
                continue
            _import(info.name)
    if not _entry_points_loaded:
        _entry_points_loaded = True
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
    """Named pieces of one kind (formats, sources...), filled by the modules that define them.

    ``packages``: the built-in packages whose modules may register pieces of this kind
    (all of them unless told).
    """

    def __init__(self, kind: str, packages: tuple[str, ...] = BUILTIN_PACKAGES) -> None:
        self.kind = kind
        self.packages = packages
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
        load(self.packages)
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        load(self.packages)
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, piece) pairs, sorted by name."""
        load(self.packages)
        for name in sorted(self._items):
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        load(self.packages)
        return name in self._items
