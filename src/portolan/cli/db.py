"""``portolan db`` and ``portolan init``: housekeeping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from portolan.cli.app import main
from portolan.cli.common import db_option, runtime
from portolan.config import example_config, markdown_reference
from portolan.plugins import load_all
from portolan.times import parse_time


@main.group()
def db() -> None:
    """The database: migrate the schema, purge old events."""


@db.command()
@db_option
@click.pass_context
def migrate(ctx: click.Context, db_url: str | None) -> None:
    """Bring the schema up to date (also done on every start)."""
    from portolan.store import Store  # SQLAlchemy: only for the commands that need it

    rt = runtime(ctx, db_url)
    url = db_url if db_url is not None else rt.config.store.url
    store = Store(url, data_dir=rt.data_dir)
    applied = store.migrate()
    click.echo(f"{store.where}: " + (f"migrated to {applied[-1]} ({', '.join(applied)})"
                                     if applied else f"up to date at {store.revision()}"))


@db.command()
@db_option
@click.option("--older-than", metavar="AGE", help="Delete events older than AGE (30d, 12h) "
              "or before a date; default: [store] retention_days.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def purge(ctx: click.Context, db_url: str | None, older_than: str | None, yes: bool) -> None:
    """Delete old events, and what the other tables keep of that time: the sessions that
    ended before it, the addresses not seen since (starred or annotated ones stay), and the
    counts of the whole minutes, hours and days before it (charts, traffic per network)."""
    rt = runtime(ctx, db_url)
    now = dt.datetime.now(dt.UTC)
    if older_than is not None:
        try:
            before = parse_time(older_than, now)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--older-than") from None
    elif rt.config.store.retention_days > 0:
        before = now - dt.timedelta(days=rt.config.store.retention_days)
    else:
        raise click.UsageError("give --older-than, or set [store] retention_days")
    store = rt.store()
    if not yes:
        click.confirm(f"delete events before {before:%Y-%m-%d %H:%M} UTC from {store.where}?",
                      abort=True)
    deleted = store.purge(before)
    click.echo(f"{deleted} events deleted")


@main.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--markdown", is_flag=True, help="Print the reference of every option as "
              "Markdown instead (docs/configuration.md).")
def init(path: Path | None, force: bool, markdown: bool) -> None:
    """Write a config file with every option, commented, at its default.

    PATH defaults to ~/.config/portolan/portolan.toml; - prints it.
    """
    load_all()
    text = markdown_reference() if markdown else example_config()
    if markdown or (path is not None and str(path) == "-"):
        click.echo(text, nl=False)
        return
    from portolan.config import DEFAULT_LOCATIONS

    target = path or DEFAULT_LOCATIONS[0]
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; use --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}; edit it, then: portolan -c {target} run")
