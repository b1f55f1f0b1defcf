"""``portolan token``: API tokens for remote sensors (ingest), readers and admins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from portolan.cli.app import main
from portolan.cli.common import db_option, json_option, print_json, runtime
from portolan.text import printable
from portolan.times import rfc3339

if TYPE_CHECKING:
    from portolan.server.tokens import Tokens


@main.group()
def token() -> None:
    """API tokens: create (shown once), list, revoke. Stored as hashes."""


def _tokens(ctx: click.Context, db_url: str | None) -> Tokens:
    from portolan.server.tokens import Tokens

    return Tokens(runtime(ctx, db_url).store())


@token.command()
@click.option("--scope", required=True, type=click.Choice(["ingest", "read", "admin"]),
              help="ingest: send events (a sensor); read: read the API; admin: both, and "
                   "change the watch list.")
@click.option("--name", default="", help="A name to recognise it by (the sensor's name).")
@db_option
@json_option
@click.pass_context
def create(ctx: click.Context, scope: str, name: str, db_url: str | None,
           as_json: bool) -> None:
    """Create a token and print it. It is shown only this once: the store keeps a hash."""
    secret, info = _tokens(ctx, db_url).create(scope, name)
    if as_json:
        print_json({"token": secret, "id": info.id, "name": info.name, "scope": info.scope})
        return
    click.echo(secret)
    click.echo(f"portolan: token {info.id} ({info.name}, scope {info.scope}) created; "
               "it is not shown again", err=True)


@token.command(name="list")
@db_option
@json_option
@click.pass_context
def list_(ctx: click.Context, db_url: str | None, as_json: bool) -> None:
    """Every token: id, name, scope, when created, whether revoked (never the secret)."""
    for info in _tokens(ctx, db_url).list():
        if as_json:
            print_json({"id": info.id, "name": info.name, "scope": info.scope,
                        "created": rfc3339(info.created), "revoked": rfc3339(info.revoked)})
        else:
            state = f"revoked {rfc3339(info.revoked)}" if info.revoked else "active"
            click.echo(f"{info.id}  {info.scope:6}  {rfc3339(info.created)}  {state:35}  "
                       f"{printable(info.name, 60)}")


@token.command()
@click.argument("ref")
@db_option
@click.pass_context
def revoke(ctx: click.Context, ref: str, db_url: str | None) -> None:
    """Revoke the token whose id or name is REF (servers notice within 10 seconds)."""
    n = _tokens(ctx, db_url).revoke(ref)
    if not n:
        raise click.UsageError(f"no active token has the id or name {ref!r} "
                               "(portolan token list)")
    click.echo(f"{n} token(s) revoked")
