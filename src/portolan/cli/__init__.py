"""The ``portolan`` command: one module per command group, discovered at start.

A module in this package adds its commands to :data:`portolan.cli.app.main` when it is
imported; nothing here needs to change for a new command.
"""

from __future__ import annotations

import importlib
import pkgutil

from portolan.cli.app import main as _group

__all__ = ["main"]


def _load() -> None:
    for info in pkgutil.iter_modules(__path__, __name__ + "."):
        if info.name.rpartition(".")[2] not in ("app", "common"):
            importlib.import_module(info.name)


def main() -> None:
    """Entry point of the console script."""
    _load()
    _group()
