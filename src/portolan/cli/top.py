"""``portolan top``: the terminal live view."""

from __future__ import annotations

import click

from portolan.cli.app import main
from portolan.cli.common import db_option, runtime

_WINDOWS = ("5m", "1h", "24h", "7d", "all")


def parse_listen(text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:8001`` for IPv6), or None for ``off``."""
    if text.strip().lower() in ("off", "no", "none", ""):
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r}: use HOST:PORT (127.0.0.1:8001, [::1]:8001) "
                                 "or off", param_hint="--metrics")
    return host, int(port)


@main.command()
@db_option
@click.option("--url", metavar="URL",
              help="Read a Portolan server's API instead of a database, e.g. "
                   "http://collector:8080 (what `portolan serve` listens on).")
@click.option("--token", metavar="TOKEN", envvar="PORTOLAN_TOKEN",
              help="Bearer token for --url (scope read; admin to star addresses). "
                   "Default: $PORTOLAN_TOKEN.")
@click.option("--metrics", "metrics_at", metavar="HOST:PORT", default="127.0.0.1:8001",
              show_default=True,
              help="Where to serve the selected items as Prometheus metrics (/metrics); "
                   "'off' for nowhere. Anything but loopback exposes them to the network.")
@click.option("--window", type=click.Choice(_WINDOWS), default="1h", show_default=True,
              help="Time window to start with (w changes it).")
@click.option("--refresh", type=click.FloatRange(0.5, 60), default=2.0, show_default=True,
              metavar="SECONDS", help="Seconds between two updates.")
@click.pass_context
def top(ctx: click.Context, db_url: str | None, url: str | None, token: str | None,
        metrics_at: str, window: str, refresh: float) -> None:
    """Watch what happens, live, in the terminal: counters, events per second, and
    tables of the newest events, countries, ASNs, addresses, user names tried, services,
    ports, HTTP hosts and active sessions.

    Reads the store of the config (or --db URL), or a server's API (--url, --token).
    Select addresses, HTTP hosts, countries or ASNs with space to export their counts as
    Prometheus metrics (--metrics, default 127.0.0.1:8001) and to top-export.tsv in the
    data directory; the selection is kept in top-selection.json there. Press ? for the
    keys, q to quit.
    """
    from portolan.tui.feeds import ApiFeed, Feed, FeedError, StoreFeed

    if url and db_url:
        raise click.UsageError("--db and --url exclude each other: read a database or a "
                               "server, not both")
    if token and not url:
        raise click.UsageError("--token goes with --url")
    metrics = parse_listen(metrics_at)
    rt = runtime(ctx, db_url)
    feed: Feed
    if url:
        try:
            feed = ApiFeed(url, token)
        except FeedError as exc:
            raise click.UsageError(str(exc)) from None
    else:
        feed = StoreFeed(rt.store())
    from portolan.tui.app import TopApp

    app = TopApp(feed, rt.data_dir, metrics=metrics, refresh=refresh, window=window)
    try:
        app.run()
    finally:
        feed.close()
        rt.close()
