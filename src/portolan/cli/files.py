"""``portolan ingest`` and ``portolan parse``: files through a format, once."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import click

from portolan.cli.app import main
from portolan.cli.common import (
    db_option,
    json_option,
    log,
    report_counts,
    run_until_signal,
    runtime,
)
from portolan.event import Event, encode_lines
from portolan.formats.base import FORMATS, CountingParser, FormatSpec, ParseContext, Parser
from portolan.pipeline import PipelineStats, fewer_collections
from portolan.runtime import Runtime
from portolan.sources.base import Emitter
from portolan.sources.forked import ForkedFilesSource, can_fork
from portolan.sources.lines import FileOnceSource, LineStats, count_lines, read_events
from portolan.text import printable

format_option = click.option(
    "-f", "--format", "format_name", required=True, metavar="NAME",
    help="Format of the files: sshd, weblog, spyserver, jsonl, pcap, or a format of the "
         "config (see `portolan parse --list`).",
)


def _check_files(files: tuple[str, ...]) -> list[Path]:
    paths = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise click.BadParameter(f"{name}: no such file", param_hint="FILE")
        paths.append(path)
    return paths


class WholeFileSource:
    """A non-line format's file (pcap) as a one-shot source."""

    def __init__(self, path: Path, spec: FormatSpec, ctx: ParseContext) -> None:
        self.name = path.name
        self.path = path
        self.spec = spec
        self.ctx = ctx

    async def run(self, out: Emitter) -> None:
        assert self.spec.read_file is not None
        for batch in self.spec.read_file(self.path, self.ctx):
            await out.emit(batch)


def _progress(paths: list[Path], enabled: bool) -> AbstractContextManager[Any]:
    if not enabled or not sys.stderr.isatty():
        return nullcontext(None)
    total = sum(p.stat().st_size for p in paths)
    return click.progressbar(length=total, label="ingesting", file=sys.stderr,
                             show_eta=True, show_percent=True)


@main.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@format_option
@db_option
@click.option("--sensor", metavar="NAME", help="Sensor name in the events (default: config, "
              "else the host name).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on a terminal.")
@click.option("--fork/--no-fork", "fork", default=True, show_default=True,
              help="Parse in a second process, beside the one that enriches and stores "
                   "(where the system can fork and has a second core).")
@click.pass_context
def ingest(ctx: click.Context, files: tuple[str, ...], format_name: str, db_url: str | None,
           sensor: str | None, progress: bool, fork: bool) -> None:
    """Import FILEs through the whole pipeline (parse, enrich, store), then summarise.

    Importing the same file twice stores nothing twice: event ids come from the file's
    content and the position of each line. Rotated .gz files are read as they are.
    Files of a line format are parsed in a second process (see --fork), one after the
    other.
    """
    paths = _check_files(files)
    rt = runtime(ctx, db_url, sensor)
    spec = FORMATS.get(format_name)
    rt.store()
    stats = LineStats()
    started = time.perf_counter()
    with _progress(paths, progress) as bar:
        update: Callable[[int], None] | None = bar.update if bar is not None else None
        sources = _file_sources(rt, spec, paths, stats, update, fork)

        pipeline = rt.pipeline(sources, rt.sinks(live=False))

        async def go(stop: asyncio.Event) -> PipelineStats:
            return await pipeline.run(stop)

        pstats = run_until_signal(go)
    elapsed = time.perf_counter() - started
    rt.close()
    stored = pstats.extra.get("stored", 0)
    click.echo(
        f"{len(paths)} file(s), {stats.lines} lines: {stats.matched} matched, "
        f"{stats.ignored} ignored, {stats.unmatched} unmatched; {pstats.received} events: "
        f"{stored} stored, {pstats.extra.get('duplicates', 0)} duplicates, "
        f"{pstats.extra.get('rejected', 0)} rejected; {elapsed:.1f} s "
        f"({stats.lines / elapsed if elapsed > 0 else 0:,.0f} lines/s)",
        err=True,
    )
    report_counts(rt, pstats)


def _file_sources(rt: Runtime, spec: FormatSpec, paths: list[Path], stats: LineStats,
                  progress: Callable[[int], None] | None, fork: bool) -> list[Any]:
    ctx = rt.source_context()
    if spec.make_parser is None:
        return [WholeFileSource(path, spec, ParseContext(
            sensor=ctx.sensor, source=path.name, now=ctx.now, counters=ctx.counters))
            for path in paths]
    parsers = [(path, ctx.parser(spec.name, path.name)) for path in paths]
    if fork and can_fork():
        source = ForkedFilesSource(parsers, ctx.sensor, stats, ctx.counters, progress)
        source.start()  # now, before the pipeline starts threads
        log.debug("%d file(s) parsed in process %d", len(paths), source.pid)
        return [source]
    return [FileOnceSource(path, parser, ctx, stats, progress) for path, parser in parsers]


@main.command()
@click.argument("file", required=False, metavar="FILE")
@click.option("-f", "--format", "format_name", metavar="NAME",
              help="Format of the file (see --list).")
@json_option
@click.option("--top", default=10, show_default=True, help="How many unmatched lines to show.")
@click.option("--list", "list_formats", is_flag=True, help="List the known formats and exit.")
@click.pass_context
def parse(ctx: click.Context, file: str | None, format_name: str | None, as_json: bool,
          top: int, list_formats: bool) -> None:
    """Parse FILE and store nothing: see what a format makes of a log.

    With --json, one event per line on stdout. Without it, a summary: lines matched,
    ignored (recognised, nothing to report) and unmatched, and the most common unmatched
    lines, to see what a format misses.
    """
    rt = runtime(ctx)
    if list_formats:
        for name, spec in FORMATS.items():
            click.echo(f"{name:12} {spec.summary}")
        return
    if file is None or format_name is None:
        raise click.UsageError("give a FILE and --format (or --list)")
    path = _check_files((file,))[0]
    spec = FORMATS.get(format_name)
    stats = LineStats()
    sctx = rt.source_context()
    started = time.perf_counter()
    out = sys.stdout.buffer
    parser = sctx.parser(spec.name, path.name) if spec.make_parser is not None else None
    with fewer_collections():
        if not as_json and isinstance(parser, CountingParser):
            count_lines(path, parser, stats)  # the summary needs no event made
        else:
            # the summary counts events: only the JSON lines show their ids
            for batch in _batches(rt, spec, path, stats, parser, ids=as_json):
                if as_json:
                    try:
                        out.write(encode_lines(batch))
                    except BrokenPipeError:
                        sys.stderr.close()
                        return
    elapsed = time.perf_counter() - started
    if as_json:
        out.flush()
        return
    rate = stats.lines / elapsed if elapsed > 0 else 0.0
    if spec.make_parser is not None:
        click.echo(f"{path}: {stats.lines} lines in {elapsed:.2f} s ({rate:,.0f} lines/s)")
        click.echo(f"  matched:   {stats.matched} ({stats.events} events)")
        click.echo(f"  ignored:   {stats.ignored}")
        click.echo(f"  unmatched: {stats.unmatched}")
        if stats.unmatched_lines:
            click.echo(f"most common unmatched lines (of {len(stats.unmatched_lines)} distinct):")
            for line, count in stats.unmatched_lines.most_common(top):
                click.echo(f"  {count:6}  {printable(line, 200)}")
    else:
        click.echo(f"{path}: {stats.events} events in {elapsed:.2f} s")
    for reason, count in sctx.counters.most_common():
        click.echo(f"  {reason}: {count}")


def _batches(rt: Runtime, spec: FormatSpec, path: Path, stats: LineStats,
             parser: Parser | None, ids: bool = True) -> Iterator[list[Event]]:
    ctx = rt.source_context()
    if parser is not None:
        yield from read_events(path, parser, ctx.sensor, stats, ids=ids)
        return
    assert spec.read_file is not None
    pctx = ParseContext(sensor=ctx.sensor, source=path.name, now=ctx.now, counters=ctx.counters)
    for batch in spec.read_file(path, pctx):
        stats.events += len(batch)
        yield batch


