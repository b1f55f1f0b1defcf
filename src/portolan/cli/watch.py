"""``portolan watch``: run one program, supervise it, and turn its console into events."""

from __future__ import annotations

import asyncio
import sys

import click

from portolan.cli.app import main
from portolan.cli.common import db_option, json_option, run_until_signal, runtime
from portolan.event import Event, encode_lines
from portolan.pipeline import PipelineStats
from portolan.sinks.base import Sink
from portolan.sources.base import SOURCES
from portolan.sources.process import ProcessOptions, ProcessSource
from portolan.text import printable
from portolan.times import rfc3339


class PrintSink:
    """Events as they come, on standard output: one line each, or JSON lines."""

    name = "print"
    durable = True

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    async def write(self, events: list[Event]) -> None:
        out = sys.stdout
        try:
            if self.as_json:
                out.buffer.write(encode_lines(events))
            else:
                out.write("".join(describe(e) + "\n" for e in events))
            out.flush()
        except BrokenPipeError:
            pass

    async def close(self) -> None:
        return None


def describe(e: Event) -> str:
    """One event as a line for a terminal (attacker text escaped)."""
    who = f"{e.src_ip or '-'}:{e.src_port if e.src_port is not None else '-'}"
    parts = [rfc3339(e.ts) or "", str(e.attrs.get("instance") or e.source), f"{e.action:10}", who]
    client = e.attrs.get("client")
    if client:
        parts.append(printable(str(client), 80))
    if e.duration is not None:
        parts.append(f"after {e.duration:.1f} s")
    reason = e.attrs.get("reason")
    if reason and reason != "client":
        parts.append(f"({printable(str(reason), 40)})")
    return "  ".join(parts)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("-f", "--format", "format_name", default="spyserver", show_default=True,
              metavar="NAME", help="Format of the program's output.")
@click.option("--instance", metavar="NAME",
              help="Instance name in the events (default: base name of the last argument).")
@click.option("--echo/--no-echo", default=True, show_default=True,
              help="Copy the program's output to stderr, prefixed with the instance name.")
@click.option("--store/--no-store", default=True, show_default=True,
              help="Keep the events in the store (--db, else the config's).")
@click.option("--restart/--no-restart", default=True, show_default=True,
              help="Start the program again when it exits (with back-off).")
@click.option("--pty/--pipe", "use_pty", default=True, show_default=True,
              help="Run the program on a pseudo-terminal (so it writes each line at once) "
                   "or on a pipe.")
@click.option("--skip-private", is_flag=True, help="Drop events from non-public addresses.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Drop events from these addresses: 203.0.113.7, 10.0.0.0/8, 192.168.*.* "
                   "(repeatable).")
@click.option("--sensor", metavar="NAME", help="Sensor name in the events.")
@db_option
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD ARGS")
@click.pass_context
def watch(ctx: click.Context, format_name: str, instance: str | None, echo: bool, store: bool,
          restart: bool, use_pty: bool, skip_private: bool, exclude: tuple[str, ...],
          sensor: str | None, db_url: str | None, as_json: bool,
          command: tuple[str, ...]) -> None:
    """Run CMD, keep it running, and print the events of its console as they happen.

    For example `portolan watch --instance hf -- spyserver hf.config`: every client that
    connects to or leaves that spyserver is printed (and stored, with --store), with its
    place on the map once enrichment is configured. On Ctrl-C or SIGTERM the program gets
    SIGTERM (then SIGKILL), its open sessions end, and what was read is written.
    """
    rt = runtime(ctx, db_url, sensor)
    options = ProcessOptions(
        type="process", command=list(command), instance=instance or "", format=format_name,
        echo=echo, pty=use_pty, restart=restart, skip_private=skip_private,
        exclude=list(exclude),
    )
    source = SOURCES.get("process").make(options, rt.source_context())
    assert isinstance(source, ProcessSource)
    sinks: list[Sink] = rt.sinks() if store else []
    sinks.append(PrintSink(as_json))
    click.echo(f"portolan: watching {printable(' '.join(command), 200)} as {source.name}"
               + (f"; store: {rt.store().where}" if store else ""), err=True)

    async def go(stop: asyncio.Event) -> PipelineStats:
        return await rt.pipeline([source], sinks).run(stop)

    stats = run_until_signal(go)
    rt.close()
    s = source.stats
    click.echo(f"portolan: {source.runs} run(s); {s.lines} lines: {s.matched} matched, "
               f"{s.ignored} ignored, {s.unmatched} unmatched; {stats.received} events",
               err=True)
