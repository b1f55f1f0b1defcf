"""``portolan serve``: the HTTP server alone (API, ingest, live stream, ``/metrics``)."""

from __future__ import annotations

import asyncio

import click

from portolan.cli.app import main
from portolan.cli.common import db_option, run_until_signal, runtime


@main.command()
@db_option
@click.option("--listen", metavar="HOST:PORT",
              help="Where to listen (default: [server] listen, 127.0.0.1:8080). Anything "
                   "but loopback exposes the API: require tokens then.")
@click.pass_context
def serve(ctx: click.Context, db_url: str | None, listen: str | None) -> None:
    """Serve the REST API, ingest from remote sensors, the live stream and /metrics,
    until stopped (Ctrl-C or SIGTERM).

    Reads are open to clients on 127.0.0.1 unless [server] read_token_required is set;
    ingest needs a token (portolan token create --scope ingest). The API is described
    by /api/v1/openapi.json.
    """
    from portolan.server.app import bind
    from portolan.server.app import serve as run_server
    from portolan.server.settings import ServerSection

    rt = runtime(ctx, db_url)
    settings = rt.config.get(ServerSection)
    sock = bind(listen or settings.listen)
    host, port = sock.getsockname()[:2]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    store = rt.store()
    click.echo(f"portolan: store: {store.where}", err=True)
    click.echo(f"portolan: serving http://{address}/api/v1/ (metrics: /metrics)", err=True)

    async def go(stop: asyncio.Event) -> None:
        await run_server(rt, stop, sock=sock)

    run_until_signal(go)
    rt.close()
