"""``portolan forget IP``: delete or anonymise everything stored about one address."""

from __future__ import annotations

import click

from portolan.cli.app import main
from portolan.cli.common import db_option, runtime
from portolan.enrich.forget import forget as run
from portolan.enrich.forget import forms
from portolan.text import printable


@main.command()
@click.argument("ip")
@db_option
@click.option("--anonymise", "--anonymize", "anonymise", is_flag=True,
              help="Keep the events and sessions, with the address replaced by its network "
                   "(/24 or /48), instead of deleting them.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def forget(ctx: click.Context, ip: str, db_url: str | None, anonymise: bool, yes: bool) -> None:
    """Delete everything stored about the address IP: its events (as source or
    destination), its sessions and its row in the watch list. With --anonymise, the
    events and sessions stay but no longer name the address.

    Copies outside the database (JSON lines files, a collector's spool, backups) are not
    touched.
    """
    try:
        forms(ip)
    except ValueError:
        raise click.BadParameter(f"{printable(ip, 64)!r} is not an IP address",
                                 param_hint="IP") from None
    store = runtime(ctx, db_url).store()
    verb = "anonymise" if anonymise else "delete"
    if not yes:
        click.confirm(f"{verb} everything about {ip} in {store.where}?", abort=True)
    result = run(store.engine, ip, anonymise=anonymise)
    if anonymise:
        click.echo(f"{ip} replaced by {result.replacement}: {result.events} events, "
                   f"{result.sessions} sessions; {result.ips} address rows deleted")
    else:
        click.echo(f"{ip} forgotten: {result.events} events, {result.sessions} sessions, "
                   f"{result.ips} address rows deleted")
