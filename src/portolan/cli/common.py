"""What the commands share: loading the config into a runtime, logging, running until a
signal, options that several commands take, and printing data."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import msgspec

from portolan import config as config_mod
from portolan.pipeline import PipelineStats
from portolan.runtime import Runtime
from portolan.times import parse_time

T = TypeVar("T")
log = logging.getLogger("portolan")

_json = msgspec.json.Encoder()

db_option = click.option(
    "--db", "db_url", metavar="URL",
    help="Database URL (default: [store] url of the config, else SQLite in the data "
         "directory). sqlite:///FILE, postgresql://USER@HOST/DB, mysql://USER@HOST/DB.",
)
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print data as JSON lines, one object per line.")


def runtime(ctx: click.Context, db_url: str | None = None,
            sensor: str | None = None) -> Runtime:
    """Load the config (``-c``, environment) into a :class:`Runtime`, and set up logging."""
    obj = ctx.find_root().obj or {}
    path = config_mod.find_config(obj.get("config_path"))
    config = config_mod.load(path)
    if sensor:
        config.top.sensor = sensor
    setup_logging(config.top.log_level, obj.get("verbosity", 0))
    return Runtime(config=config, db_url=db_url)


def setup_logging(level: str, verbosity: int = 0) -> None:
    """Log lines to stderr: ``portolan: LEVEL: message``."""
    number = getattr(logging, level.upper(), logging.INFO)
    if verbosity < 0:
        number = logging.WARNING
    elif verbosity == 1:
        number = min(number, logging.INFO)
    elif verbosity >= 2:
        number = logging.DEBUG
    root = logging.getLogger()
    if not any(getattr(h, "_portolan", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("portolan: %(levelname)s: %(message)s"))
        handler._portolan = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Libraries (alembic, asyncio) speak at WARNING unless debugging; Portolan at `level`.
    root.setLevel(logging.DEBUG if number <= logging.DEBUG else logging.WARNING)
    logging.getLogger("portolan").setLevel(number)


def since_option(default: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    return click.option(
        "--since", metavar="TIME", default=default,
        help="Only what happened since TIME: an age (30m, 2h, 7d) or a date (2026-11-23)."
             + (f" Default: {default}." if default else ""),
    )


def parse_since(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text, dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def print_json(obj: Any) -> None:
    """One JSON object on one line of stdout."""
    sys.stdout.buffer.write(_json.encode(obj) + b"\n")


def run_until_signal(
    make: Callable[[asyncio.Event], Coroutine[Any, Any, T]],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run a coroutine; the first SIGINT/SIGTERM sets the stop event (drain), a second one
    ends the process at once. ``loop_factory`` picks another event loop (uvloop)."""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        hits = 0

        def on_signal(signame: str) -> None:
            nonlocal hits
            hits += 1
            if hits == 1:
                log.info("%s: stopping; writing what was read (again to quit at once)", signame)
                stop.set()
            else:
                log.warning("%s again: quitting without draining", signame)
                os._exit(130)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        return await make(stop)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def report_counts(rt: Runtime, stats: PipelineStats) -> None:
    """After a one-shot run: what the sources counted (skipped input, notes) and what
    failed; a failure makes the exit status 1."""
    for reason, count in rt.source_context().counters.most_common():
        click.echo(f"  {reason}: {count}", err=True)
    if sum(stats.failures.values()):
        for where, count in stats.failures.items():
            click.echo(f"  failed: {where}: {count}", err=True)
        sys.exit(1)
