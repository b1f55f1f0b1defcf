"""``portolan alerts``: try the channels of the config, and the rules on a log file."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from portolan.cli.app import main
from portolan.cli.common import runtime
from portolan.cli.files import _check_files, format_option
from portolan.text import printable


@main.group()
def alerts() -> None:
    """Alert rules and their channels ([alerts] in the config; see docs/alerts.md)."""


@alerts.command("test")
@click.option("--channel", "names", multiple=True, metavar="NAME",
              help="Only this channel of [alerts.channels] (repeatable); default: all.")
@click.option("--message", default="Test message from Portolan: this channel works.",
              show_default=True, help="The text to send.")
@click.pass_context
def test_channels(ctx: click.Context, names: tuple[str, ...], message: str) -> None:
    """Send one message through each channel and say which ones delivered it.

    Nothing is retried: a channel that fails here prints the reason Apprise gave in the
    log lines above it. Exits with status 1 when a channel failed.
    """
    from portolan.alerts.channels import connect
    from portolan.alerts.settings import AlertsSection, check_section

    rt = runtime(ctx)
    section = rt.config.get(AlertsSection)
    where = str(rt.config.path) if rt.config.path else "configuration"
    check_section(section, where)
    if not section.channels:
        raise click.UsageError("no channels: add [alerts.channels] to the config")
    unknown = [n for n in names if n not in section.channels]
    if unknown:
        raise click.UsageError(f"no channel {unknown[0]!r}; known: "
                               + ", ".join(section.channels))
    failed = 0
    for name, url in section.channels.items():
        if names and name not in names:
            continue
        import apprise

        target = connect(url, f"{where}: alerts.channels.{name}")
        ok = bool(target.notify(body=message, title=section.title,
                                body_format=apprise.NotifyFormat.TEXT))
        click.echo(f"{name}: {'delivered' if ok else 'FAILED'}")
        failed += not ok
    if failed:
        sys.exit(1)


@alerts.command("dry-run")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@format_option
@click.option("--rule", "only", multiple=True, metavar="NAME",
              help="Only this rule (repeatable); default: every enabled rule.")
@click.pass_context
def dry_run(ctx: click.Context, files: tuple[str, ...], format_name: str,
            only: tuple[str, ...]) -> None:
    """Show what the rules would send for the events of FILEs; send and store nothing.

    Each file is parsed and enriched as `portolan ingest` would, then every rule sees
    every event, with throttling applied in the events' own time (grouping, quiet hours
    and max_age are left out). `first_seen` rules start from nothing, not from what the
    running Portolan remembers. Prints each alert line, then each rule's counts.
    """
    import collections

    import msgspec

    from portolan.alerts.rules import build
    from portolan.alerts.settings import AlertsSection, check_section
    from portolan.alerts.state import State
    from portolan.alerts.throttle import Dispatcher
    from portolan.enrich.privacy import Privacy, PrivacySection
    from portolan.formats.base import FORMATS
    from portolan.sources.lines import LineStats, read_events

    rt = runtime(ctx)
    section = rt.config.get(AlertsSection)
    where = str(rt.config.path) if rt.config.path else "configuration"
    settings = check_section(section, where)
    unknown = [n for n in only if n not in settings]
    if unknown:
        raise click.UsageError(f"no rule {unknown[0]!r}; known: "
                               + (", ".join(settings) or "none"))
    chosen = {n: r for n, r in settings.items() if r.enabled and (not only or n in only)}
    if not chosen:
        raise click.UsageError("no rules: add [alerts.rules.NAME] to the config")
    if FORMATS.get(format_name).make_parser is None:
        raise click.UsageError(f"format {format_name!r} reads whole files; use a line format")
    section = msgspec.structs.replace(section, group_window=0, quiet_hours="")
    privacy = Privacy.from_settings(rt.config.get(PrivacySection), rt.data_dir)
    dispatcher = Dispatcher(section, chosen, list(section.channels) or ["-"], where)
    enrichers = rt.enrichers()
    stats = LineStats()
    ctx_ = rt.source_context()
    events = 0
    with tempfile.TemporaryDirectory() as tmp:
        state = State(Path(tmp) / "alerts.db")
        size = section.state_size
        rules = [build(n, r, privacy, size, lambda n: state.seen(n, size))
                 for n, r in chosen.items()]
        for path in _check_files(files):
            parser = ctx_.parser(format_name, path.name)
            for batch in read_events(path, parser, rt.sensor, stats):
                for enricher in enrichers:
                    enricher.enrich(batch)
                events += len(batch)
                for event in batch:
                    for rule in rules:
                        hit = rule.check(event)
                        if hit is not None and dispatcher.offer(hit, hit.ts) == "sent":
                            for message in dispatcher.outbox:
                                click.echo(f"{hit.ts:%Y-%m-%d %H:%M:%S} {message.rule}: "
                                           f"{printable(message.body)}")
                            dispatcher.outbox.clear()
        state.close()
    totals: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for (rule_name, outcome), n in dispatcher.outcomes.items():
        totals[rule_name][outcome] += n
    click.echo(f"{events} events from {stats.lines} lines", err=True)
    for name in chosen:
        counts = totals.get(name, collections.Counter())
        parts = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no alerts"
        click.echo(f"rule {name}: {parts}", err=True)
