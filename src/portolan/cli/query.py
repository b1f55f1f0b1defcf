"""``portolan query``: read the store from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from portolan.cli.app import main
from portolan.cli.common import (
    db_option,
    json_option,
    parse_since,
    print_json,
    runtime,
    since_option,
)
from portolan.event import encode
from portolan.text import printable
from portolan.times import rfc3339

if TYPE_CHECKING:
    from portolan.store import EventFilter


def _filter_options(f: Any) -> Any:
    for name, help_text in reversed([
        ("sensor", "Only this sensor."),
        ("service", "Only this service (ssh, http, spyserver...)."),
        ("action", "Only this action (auth_failure, connect...)."),
        ("country", "Only this country (two-letter code)."),
        ("ip", "Only this address, or network in CIDR notation."),
        ("user", "Only this user name."),
    ]):
        f = click.option(f"--{name}", metavar=name.upper(), help=help_text)(f)
    return f


def _make_filter(since: str | None, **kw: Any) -> EventFilter:
    from portolan.store import EventFilter  # SQLAlchemy: only for the commands that need it

    return EventFilter(since=parse_since(since), **{k: v for k, v in kw.items() if v})


@main.group()
def query() -> None:
    """Read the store: events, counts, sessions, active connections."""


@query.command()
@db_option
@since_option()
@_filter_options
@click.option("-n", "--limit", default=50, show_default=True, help="How many, newest first.")
@json_option
@click.pass_context
def events(ctx: click.Context, /, db_url: str | None, since: str | None, limit: int,
           as_json: bool, **filters: Any) -> None:
    """The newest events."""
    store = runtime(ctx, db_url).store()
    found = store.events(_make_filter(since, **filters), limit=limit)
    for e in found:
        if as_json:
            click.echo(encode(e).decode())
        else:
            where = ", ".join(x for x in (e.country, e.city, f"AS{e.asn}" if e.asn else None) if x)
            user = f" user={printable(e.user, 40)}" if e.user else ""
            # every field may come from another sensor's JSON: all of it is shown escaped
            click.echo(f"{rfc3339(e.ts)}  {printable(e.service, 9):9} {printable(e.action, 13):13}"
                       f" {printable(e.src_ip or '-', 39):39} {printable(where, 80)}{user}")


@query.command()
@click.argument("field")
@db_option
@since_option()
@_filter_options
@click.option("-n", "--limit", default=20, show_default=True, help="How many keys.")
@json_option
@click.pass_context
def stats(ctx: click.Context, /, field: str, db_url: str | None, since: str | None, limit: int,
          as_json: bool, **filters: Any) -> None:
    """Counts of events by FIELD, largest first (country, asn, src_ip, user, service,
    action, sensor, dst_port, attrs.KEY...)."""
    store = runtime(ctx, db_url).store()
    top, other = store.stats(field, _make_filter(since, **filters), limit=limit)
    for key, count in top:
        if as_json:
            print_json({"key": key, "count": count})
        else:
            click.echo(f"{count:10}  {printable(str(key), 80) if key is not None else '(none)'}")
    if not as_json and other:
        click.echo(f"{other:10}  (other)")


def _session_out(s: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json({k: s[k] for k in ("session", "service", "src_ip", "src_port", "start", "end",
                                      "duration", "sensor", "source", "user", "country", "city",
                                      "attrs")})
        return
    duration = f"{s['duration']:.1f}s" if s["duration"] is not None else "open"
    start = rfc3339(s["start"]) or "?"
    client = s["attrs"].get("client") or s["attrs"].get("client_name") or s["user"] or ""
    click.echo(f"{start}  {printable(s['service'], 9):9} {printable(s['src_ip'] or '-', 39)}:"
               f"{s['src_port'] or '-':<6} {duration:>10}  {printable(s['country'] or '', 2)} "
               f"{printable(str(client), 40)}")


@query.command()
@db_option
@since_option()
@click.option("--service", help="Only this service.")
@click.option("-n", "--limit", default=50, show_default=True)
@json_option
@click.pass_context
def sessions(ctx: click.Context, db_url: str | None, since: str | None, service: str | None,
             limit: int, as_json: bool) -> None:
    """Sessions (a connect paired with its disconnect), newest first."""
    store = runtime(ctx, db_url).store()
    for s in store.sessions(since=parse_since(since), limit=limit, service=service):
        _session_out(s, as_json)


@query.command()
@db_option
@click.option("--service", help="Only this service.")
@click.option("-n", "--limit", default=100, show_default=True)
@json_option
@click.pass_context
def active(ctx: click.Context, db_url: str | None, service: str | None, limit: int,
           as_json: bool) -> None:
    """Active connections: sessions that have started and not ended."""
    store = runtime(ctx, db_url).store()
    for s in store.sessions(active=True, limit=limit, service=service):
        _session_out(s, as_json)
