"""``portolan capture``: the capture sensor alone, live or from a file."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path

import click

from portolan.cli.app import main
from portolan.cli.common import (
    db_option,
    json_option,
    report_counts,
    run_until_signal,
    runtime,
)
from portolan.config import ConfigError
from portolan.event import Event
from portolan.packets.live import DEFAULT_FILTER
from portolan.pipeline import PipelineStats
from portolan.sinks.base import Sink
from portolan.text import printable


class TextSink:
    """One readable line per event on stdout (attacker text made printable)."""

    name = "text"
    durable = True

    async def write(self, events: list[Event]) -> None:
        lines = [_line(e) for e in events]
        try:
            sys.stdout.write("".join(lines))
            sys.stdout.flush()
        except BrokenPipeError:
            pass

    async def close(self) -> None:
        return None


def _where(ip: str | None, port: int | None) -> str:
    if ip is None:
        return "?"
    host = f"[{ip}]" if ":" in ip and port is not None else ip
    return f"{host}:{port}" if port is not None else host


def _line(e: Event) -> str:
    when = e.ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    ends = f"{_where(e.src_ip, e.src_port)} -> {_where(e.dst_ip, e.dst_port)}"
    place = f" AS{e.asn}" if e.asn else ""
    if e.action == "flow":
        what = (f"flow {e.service:5} {ends} {e.direction} {e.packets} pkts "
                f"{(e.bytes_in or 0) + (e.bytes_out or 0)} B {e.duration or 0:.3f} s "
                f"({e.attrs.get('end')})")
    else:
        a = e.attrs
        if e.service in ("http", "ssdp"):
            detail = f"{a.get('method')} {a.get('host') or '-'} {a.get('uri')}"
            if "status" in a:
                detail += f" -> {a['status']}"
        elif e.service == "tls":
            detail = f"sni={a.get('tls_sni') or '-'} ja4={a.get('ja4')}"
        elif e.service == "dns":
            detail = f"{a.get('dns_qtype')} {a.get('dns_qname')}"
            if a.get("dns_rcode"):
                detail += f" -> {a['dns_rcode']} {' '.join(a.get('dns_answers') or [])}"
        else:
            detail = ""
        what = f"{e.service:10} {ends} {printable(detail, 300)}"
    return f"{when} {what}{place}\n"


@main.command()
@click.option("-i", "--interface", metavar="IFACE",
              help="Interface to capture on (default: the first one that is up and is not "
                   "loopback; the command says which it took).")
@click.option("--filter", "bpf", metavar="BPF", default=DEFAULT_FILTER, show_default=True,
              help="BPF filter in tcpdump syntax; '' captures everything.")
@click.option("-r", "--read", "read", metavar="FILE", type=click.Path(dir_okay=False),
              help="Read a pcap or pcapng file instead of capturing live.")
@json_option
@db_option
@click.option("-c", "--count", type=click.IntRange(min=0), default=0,
              help="Stop after this many frames (live capture; 0: until stopped).")
@click.option("--local-network", "local_networks", multiple=True, metavar="CIDR",
              help="A network that is 'us', for direction (repeatable; default: private, "
                   "loopback and link-local ranges and the interface's own addresses).")
@click.option("--sensor", metavar="NAME", help="Sensor name in the events.")
@click.pass_context
def capture(ctx: click.Context, interface: str | None, bpf: str, read: str | None,
            as_json: bool, db_url: str | None, count: int, local_networks: tuple[str, ...],
            sensor: str | None) -> None:
    """Capture packets and report flows, HTTP requests, TLS server names and DNS queries.

    Live capture needs root or the CAP_NET_RAW capability. By default each event is
    printed as one line; --json prints events as JSON lines; --db stores them (after
    enrichment: country, ASN) in the database at URL. A summary of what was read, and
    what was skipped and why, goes to standard error when it ends (Ctrl-C, --count,
    end of file).
    """
    if as_json and db_url:
        raise click.UsageError("choose one of --json and --db")
    if read is not None and not Path(read).is_file():
        raise click.BadParameter(f"{read}: no such file", param_hint="--read")
    # imported here, not with the command line: the packet analysers are this command's
    from portolan.packets.capfile import CaptureError
    from portolan.sources.capture import CaptureOptions, CaptureSource

    rt = runtime(ctx, db_url, sensor)
    opts = CaptureOptions(interface=interface or "", filter=bpf, read=read or "")
    if local_networks:
        opts.local_networks = list(local_networks)
    try:
        source = CaptureSource(opts, rt.source_context(), max_frames=count)
        source.open()
    except CaptureError as exc:
        raise ConfigError(str(exc)) from None
    if read:
        started = f"portolan: reading {read}"
    else:
        why = " (the first interface that is up and is not loopback)" if source.chosen else ""
        started = f"portolan: capturing on {source.interface}{why}; filter: {bpf or '(none)'}"
    sinks: list[Sink]
    if as_json:
        from portolan.sinks.jsonl import JsonLinesSink

        sinks = [JsonLinesSink()]
    elif db_url:
        sinks = rt.sinks()
    else:
        sinks = [TextSink()]

    async def go(stop: asyncio.Event) -> PipelineStats:
        # said once Ctrl-C is handled: from here on, stopping reports what was seen
        click.echo(started, err=True)
        return await rt.pipeline([source], sinks).run(stop)

    try:
        stats = run_until_signal(go)
    finally:
        rt.close()
    c = source.counts
    click.echo(
        f"portolan: {c['frames']} frames, {c['ip_packets']} IP packets: {c['flows']} flows, "
        f"{c['requests']} requests; {stats.received} events"
        + (f", {stats.extra.get('stored', 0)} stored" if db_url else ""),
        err=True,
    )
    report_counts(rt, stats)
