"""``portolan alerts``: try the channels of the config."""

from __future__ import annotations

import sys

import click

from portolan.cli.app import main
from portolan.cli.common import runtime


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
