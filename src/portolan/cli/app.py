"""The top-level command group and how user errors become one clear line."""

from __future__ import annotations

import sys
from typing import Any

import click

from portolan import __version__
from portolan.config import ConfigError
from portolan.event import EventError
from portolan.plugins import UnknownName

#: Errors that are the user's to fix: shown as one line, no traceback, exit status 2.
#: The store's own (``StoreError``, ``QueryError``) are added by :func:`user_errors` once
#: the store is loaded: commands that never touch a database (``parse``) do not pay for
#: importing SQLAlchemy.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, UnknownName, EventError)


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that are the user's to fix, among the modules loaded so far."""
    store = sys.modules.get("portolan.store")
    if store is None:  # nothing has connected to a database: no store error can occur
        return USER_ERRORS
    return (*USER_ERRORS, store.StoreError, store.QueryError)


class PortolanGroup(click.Group):
    """Turns the user errors of any command into ``portolan: error: ...``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not isinstance(exc, user_errors()):
                raise
            click.echo(f"portolan: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=PortolanGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="portolan")
@click.option("-c", "--config", "config_path", metavar="FILE", envvar="PORTOLAN_CONFIG",
              help="Config file (default: $PORTOLAN_CONFIG, ~/.config/portolan/portolan.toml, "
                   "/etc/portolan/portolan.toml).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Portolan shows who connects to your services, from where, and what they do.

    It reads log files, journald, syslog, the console of programs it supervises, its own
    catch-all listener and packet capture; puts every connection on the map (country,
    city, network); keeps them in SQLite, PostgreSQL or MariaDB; and shows them on a web
    dashboard, a terminal view, a REST API and Prometheus metrics.

    Start with `portolan run` (no config needed), or `portolan init` to write a config.
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["verbosity"] = -1 if quiet else verbose
