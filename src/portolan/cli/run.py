"""``portolan run``: every sensor, sink and service of the config in one process."""

from __future__ import annotations

import asyncio
import logging

import click

from portolan.cli.app import main
from portolan.cli.common import db_option, run_until_signal, runtime
from portolan.pipeline import PipelineStats

log = logging.getLogger("portolan")


@main.command()
@db_option
@click.pass_context
def run(ctx: click.Context, db_url: str | None) -> None:
    """Run everything the config names, until stopped (Ctrl-C or SIGTERM).

    With no config, runs on the defaults: SQLite in the data directory, the HTTP server on
    127.0.0.1:8080 when it is installed, and the sensors that make sense on this machine
    (sshd's log or journal when readable, a listener on a few loopback ports). It prints
    what it started and where to look. On stop, every event already read is stored before
    the process exits.
    """
    rt = runtime(ctx, db_url)
    sinks = rt.sinks()
    sources = rt.sources()
    services = rt.services()
    where = f"from {rt.config.path}" if rt.config.path else "on the built-in defaults (no config)"
    click.echo(f"portolan: running {where}; sensor {rt.sensor!r}", err=True)
    if rt._store is not None:
        click.echo(f"portolan: store: {rt._store.where}", err=True)
    for source in sources:
        click.echo(f"portolan: source: {source.name}", err=True)
    if not sources:
        click.echo("portolan: no sources: add [[sources]] to the config (portolan init)",
                   err=True)
    for name, _ in services:
        click.echo(f"portolan: service: {name}", err=True)

    async def go(stop: asyncio.Event) -> PipelineStats:
        pipeline = rt.pipeline(sources, sinks)
        tasks: list[asyncio.Task[None]] = [
            asyncio.ensure_future(coro) for _, coro in services
        ]
        try:
            stats = await pipeline.run(stop)
            if tasks and not stop.is_set():
                log.warning("every source has ended; services keep running until stopped")
                await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return stats

    stats = run_until_signal(go)
    rt.close()
    click.echo(
        f"portolan: stopped; {stats.received} events received, "
        f"{stats.extra.get('stored', 0)} stored, {stats.extra.get('duplicates', 0)} duplicates",
        err=True,
    )
