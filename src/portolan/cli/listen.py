"""``portolan listen``: the listener sensor alone, into the store or as JSON lines."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from typing import Any

import click
import msgspec

from portolan.cli.app import main
from portolan.cli.common import db_option, json_option, run_until_signal, runtime
from portolan.config import ConfigError
from portolan.pipeline import PipelineStats
from portolan.sinks.base import Sink
from portolan.sinks.jsonl import JsonLinesSink
from portolan.sinks.shapes import SHAPES


def event_loop(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for ``--loop``: uvloop's when asked for or, for ``auto``,
    when it is installed; None for asyncio's own."""
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise click.UsageError("--loop uvloop: uvloop is not installed "
                                   "(pip install uvloop)") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE", param_hint="--set")
    try:
        parsed: Any = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


@main.command()
@click.option("-p", "--port", "ports", multiple=True, metavar="PORT[-PORT]",
              help="TCP port or range to listen on (repeat: --port 2222 --port 8000-8100).")
@click.option("-u", "--udp", "udp_ports", multiple=True, metavar="PORT[-PORT]",
              help="UDP port or range: one event per datagram.")
@click.option("-b", "--bind", "binds", multiple=True, metavar="ADDR",
              help="Address to listen on (repeat for several). Default: 0.0.0.0 and ::, "
                   "every address of the machine.")
@click.option("--reply-ssh", multiple=True, metavar="PORT[-PORT]",
              help="Ports that answer with an SSH banner (the client's KEXINIT then gives "
                   "its HASSH).")
@click.option("--reply-http", multiple=True, metavar="PORT[-PORT]",
              help="Ports that answer HTTP requests with a small page.")
@click.option("--user", metavar="NAME",
              help="When started as root: switch to this user once the ports are open.")
@click.option("-s", "--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any option of the listener source (see docs/listener.md), e.g. "
                   "--set max_per_source=20 --set read_timeout=5.")
@click.option("--name", default="listener", show_default=True,
              help="Name of this input in events (source = NAME:PORT).")
@json_option
@click.option("--format", "shape", type=click.Choice(list(SHAPES)), default=None,
              help="Shape of the JSON lines: portolan (the event schema, the default), "
                   "spip (the Spip agent's records), ecs (Elastic Common Schema). "
                   "Implies --json.")
@db_option
@click.option("--sensor", metavar="NAME", help="Sensor name in the events (default: config, "
              "else the host name).")
@click.option("--loop", "loop_kind", type=click.Choice(["auto", "uvloop", "asyncio"]),
              default="auto", show_default=True,
              help="Event loop: uvloop (faster) when installed, else asyncio's own.")
@click.pass_context
def listen(ctx: click.Context, ports: tuple[str, ...], udp_ports: tuple[str, ...],
           binds: tuple[str, ...], reply_ssh: tuple[str, ...], reply_http: tuple[str, ...],
           user: str | None, settings: tuple[str, ...], name: str, as_json: bool,
           shape: str | None, db_url: str | None, sensor: str | None,
           loop_kind: str) -> None:
    """Log every connection to the given ports, and what it sent, until stopped.

    Each TCP connection gives a `connect` event at once (port scans and clients waiting
    for a banner included), its first payload as one `payload` event with what was
    recognised (TLS server name and JA4, HTTP request, SSH banner and HASSH), and a
    `disconnect` with duration and bytes. UDP gives one `datagram` event per datagram.
    Behind an iptables/nftables REDIRECT the original destination port is reported.

    Events go through the pipeline (GeoIP, privacy) into the store, or with --json to
    standard output. Stop with Ctrl-C: open connections are closed and logged first.
    """
    if not ports and not udp_ports:
        raise click.UsageError("give at least one --port (or --udp) to listen on")
    if shape is not None:
        as_json = True
    if as_json and db_url:
        raise click.UsageError("--json prints events instead of storing them; give one of "
                               "--json and --db")
    # imported here, not with the command line: the protocol recognisers are this command's
    from portolan.sources.listener import ListenerOptions, ListenerSource

    rt = runtime(ctx, db_url, sensor)
    raw: dict[str, Any] = {
        "type": "listener",
        "name": name,
        "ports": list(ports),
        "udp_ports": list(udp_ports),
        "reply_ssh": list(reply_ssh),
        "reply_http": list(reply_http),
    }
    if binds:
        raw["bind"] = list(binds)
    if user:
        raw["user"] = user
    raw.update(_setting(text) for text in settings)
    try:
        options = msgspec.convert(raw, ListenerOptions)
    except msgspec.ValidationError as exc:
        text, _, where = str(exc).partition(" - at `$.")
        key = where.rstrip("`")
        raise ConfigError(f"listener options: {key + ': ' if key else ''}{text}") from None
    # the store is opened (and migrated) before anything is accepted
    chosen = shape or "portolan"
    sinks: list[Sink] = ([JsonLinesSink(shape=SHAPES[chosen], name=f"jsonl-{chosen}")]
                         if as_json else rt.sinks())
    source = ListenerSource(options, rt.source_context())
    # everything slow to start (GeoIP data, the store) is ready before the ports are announced
    pipeline = rt.pipeline([source], sinks)
    for kind, host, port in source.addresses():
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        click.echo(f"portolan: listening on {kind} {where}", err=True)
    if rt._store is not None:
        click.echo(f"portolan: store: {rt._store.where}", err=True)

    async def go(stop: asyncio.Event) -> PipelineStats:
        return await pipeline.run(stop)

    try:
        stats = run_until_signal(go, loop_factory=event_loop(loop_kind))
    finally:
        source.close()
        rt.close()
    counters = rt.source_context().counters
    click.echo(f"portolan: stopped; {stats.received} events", err=True)
    for reason, count in sorted(counters.items()):
        if reason.startswith("listener: "):
            click.echo(f"  {reason.removeprefix('listener: ')}: {count}", err=True)
