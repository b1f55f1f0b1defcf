"""``portolan geoip``: the GeoIP databases in use, lookups, imports, re-enrichment."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from portolan.cli.app import main
from portolan.cli.common import db_option, json_option, parse_since, print_json, runtime
from portolan.text import printable

# The GeoIP modules are imported by the commands that use them, not when the command line
# is read: other commands (`portolan parse`) do not load them.
if TYPE_CHECKING:
    from portolan.enrich.geoip import GeoIP, GeoipSection


@main.group()
def geoip() -> None:
    """GeoIP and ASN databases: status, lookups, imports, re-enrichment.

    Portolan works offline from built-in data (DB-IP City Lite, ip-location-db ASN);
    MaxMind GeoLite2/GeoIP2, DB-IP or IPinfo .mmdb files add to it (`[geoip] databases`
    in the config, or `portolan geoip import FILE`).
    """


def _geo(ctx: click.Context) -> tuple[GeoIP, GeoipSection, Path]:
    from portolan.enrich.geoip import GeoIP, GeoipSection

    rt = runtime(ctx)
    settings = rt.config.get(GeoipSection)
    return GeoIP.from_settings(settings, rt.data_dir), settings, rt.data_dir


@geoip.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The databases in use, in the order they are asked: build date, age, records.

    Warns about databases older than `[geoip] max_age_days` (60 by default) and about
    files that could not be opened. Exit status 1 when a database is missing or broken.
    """
    geo, settings, _ = _geo(ctx)
    now = dt.datetime.now(dt.UTC)
    limit = dt.timedelta(days=settings.max_age_days)
    for info in geo.databases():
        age = (now - info.build) if info.build else None
        old = age is not None and age > limit
        if as_json:
            print_json({
                "name": info.name, "role": info.role, "origin": info.origin,
                "path": str(info.path), "detail": info.detail,
                "build": info.build.strftime("%Y-%m-%dT%H:%M:%SZ") if info.build else None,
                "age_days": round(age.total_seconds() / 86400, 1) if age else None,
                "records": info.records, "stale": old,
            })
            continue
        built = f"built {info.build:%Y-%m-%d} ({age.days} days ago)" if info.build and age \
            else "no build date"
        records = f"{info.records:,} records" if info.records is not None else ""
        click.echo(f"{info.name:28} {info.role:10} {info.origin:10} {built:32} {records}")
        click.echo(f"    {info.path}" + (f"  [{info.detail}]" if info.detail else ""))
        if old:
            click.echo(f"warning: {info.name} is older than {settings.max_age_days} days; "
                       "update it (see docs/geoip.md)", err=True)
    if settings.online:
        click.echo(f"online provider: {settings.online} at {settings.online_url} "
                   f"(at most {settings.online_rate:g} requests/s)", err=as_json)
    for message in geo.stats.errors:
        click.echo(f"error: {message}", err=True)
    if geo.stats.errors:
        ctx.exit(1)


def _row(ip: str, answer: Any) -> dict[str, Any]:
    from portolan.enrich.geoip import FIELDS

    row: dict[str, Any] = {"ip": ip}
    row.update(zip(FIELDS, answer[:9], strict=True))
    row["attrs"] = answer[9] or {}
    return row


@geoip.command()
@click.argument("ips", nargs=-1, required=True, metavar="IP...")
@json_option
@click.pass_context
def lookup(ctx: click.Context, ips: tuple[str, ...], as_json: bool) -> None:
    """What Portolan would store for each address (offline databases only)."""
    geo, _, _ = _geo(ctx)
    for ip in ips:
        row = _row(ip, geo.lookup(ip))
        if as_json:
            print_json(row)
            continue
        label = row["attrs"].get("geo")
        if label and label != "centroid":
            click.echo(f"{printable(ip, 64)}: {label} address, not looked up")
            continue
        place = ", ".join(str(x) for x in (row["city"], row["country_name"] or row["country"])
                          if x) or "unknown place"
        coords = (f" ({row['lat']:.4f}, {row['lon']:.4f}{', country centre' if label else ''})"
                  if row["lat"] is not None else "")
        asn = f"AS{row['asn']} {row['as_org'] or ''}".rstrip() if row["asn"] else "no AS"
        network = f" {row['network']}" if row["network"] else ""
        click.echo(f"{printable(ip, 64)}: {place}{coords}; {asn}{network}"
                   f"  [{row['geo_db'] or 'no data'}]")


@geoip.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", metavar="NAME", help="File name in the data directory "
              "(default: the file's own name).")
@click.pass_context
def import_(ctx: click.Context, file: Path, name: str | None) -> None:
    """Check a downloaded .mmdb FILE and copy it into the data directory, where it is used
    at once (a running `portolan run` picks it up within `[geoip] reload_seconds`).

    A file of the same name is replaced. Accepted: MaxMind GeoLite2/GeoIP2 City, Country
    and ASN, DB-IP Lite, IPinfo Lite and other City/Country/ASN .mmdb files.
    """
    from portolan.enrich.geoip import IMPORT_DIR
    from portolan.enrich.mmdb import GeoipError, MmdbFile

    rt = runtime(ctx)
    try:
        checked = MmdbFile(file)
    except GeoipError as exc:
        raise click.UsageError(str(exc)) from None
    checked.close()
    target_name = name or file.name
    if not target_name.endswith(".mmdb"):
        target_name += ".mmdb"
    if "/" in target_name or target_name.startswith("."):
        raise click.BadParameter("a plain file name, like GeoLite2-City.mmdb",
                                 param_hint="--name")
    folder = rt.data_dir / IMPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / target_name
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".import-", suffix=".mmdb")
    try:
        with os.fdopen(fd, "wb") as out, file.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        copied = MmdbFile(Path(tmp))  # the copy, not only the original, must open
        copied.close()
        os.replace(tmp, target)
    except (OSError, GeoipError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise click.UsageError(f"{target}: cannot import: {exc}") from None
    roles = "+".join(r for r, on in (("place", checked.provides_place),
                                     ("asn", checked.provides_asn)) if on)
    click.echo(f"imported {file} as {target} ({checked.database_type}, {roles}, "
               f"built {checked.build:%Y-%m-%d})")


@geoip.command()
@db_option
@click.option("--since", metavar="TIME", required=True,
              help="Events since TIME: an age (30d, 12h) or a date (2026-11-01).")
@click.option("--until", metavar="TIME", help="Events before TIME (default: now).")
@click.pass_context
def reenrich(ctx: click.Context, db_url: str | None, since: str, until: str | None) -> None:
    """Look stored events up again with the databases in use now, and update the rows
    whose answer changed (events, and the sessions and address rows of the same IPs)."""
    from portolan.enrich.geoip import GeoIP, GeoipSection
    from portolan.enrich.reenrich import reenrich as run

    rt = runtime(ctx, db_url)
    start = parse_since(since)
    end = None
    if until is not None:
        try:
            from portolan.times import parse_time

            end = parse_time(until, dt.datetime.now(dt.UTC))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--until") from None
    geo = GeoIP.from_settings(rt.config.get(GeoipSection), rt.data_dir)
    result = run(rt.store().engine, geo.lookup, since=start, until=end)
    click.echo(f"{result.scanned} events looked at, {result.updated} updated "
               f"({result.addresses} addresses)")
