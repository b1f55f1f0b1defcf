"""MaxMind DB (``.mmdb``) files: GeoLite2/GeoIP2 City, Country and ASN, DB-IP Lite,
IPinfo Lite and ``ip-location-db`` builds, read with the C-accelerated ``maxminddb``.

Each layout names its fields differently; :func:`extract` turns any of them into the
same :class:`Partial`. What a file provides (a place, an AS, or both) is decided from its
records, not its name, so a file that has neither is refused with a message that says so.
A :class:`MmdbFile` notices when its file is replaced on disk (new inode, size or
modification time) and reopens it; a replacement that does not open keeps the old one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger(__name__)


class GeoipError(Exception):
    """A GeoIP database that cannot be used; the message names the file and why."""


class Partial(NamedTuple):
    """What one database says about one address (None: it does not say)."""

    country: str | None = None
    country_name: str | None = None
    city: str | None = None
    region: str | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_km: int | None = None
    asn: int | None = None
    as_org: str | None = None

    @property
    def has_place(self) -> bool:
        return self.country is not None or self.lat is not None

    @property
    def has_asn(self) -> bool:
        return self.asn is not None


_EMPTY = Partial()


def _en(node: Any) -> str | None:
    if isinstance(node, Mapping):
        names = node.get("names")
        if isinstance(names, Mapping):
            name = names.get("en")
            return name if isinstance(name, str) and name else None
    if isinstance(node, str) and node:
        return node
    return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _asn(value: Any) -> int | None:
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        text = value.upper().removeprefix("AS")
        if text.isdigit() and int(text) > 0:
            return int(text)
    return None


def extract(record: Any) -> Partial:
    """The fields of a record in MaxMind, DB-IP, IPinfo or ip-location-db layout."""
    if not isinstance(record, Mapping):
        return Partial()
    country = record.get("country")
    iso = None
    name = None
    if isinstance(country, Mapping):  # MaxMind / DB-IP Lite: nested, with names
        iso = country.get("iso_code")
        name = _en(country)
    elif isinstance(record.get("registered_country"), Mapping):
        iso = record["registered_country"].get("iso_code")
        name = _en(record["registered_country"])
    code = record.get("country_code")  # ip-location-db, IPinfo: flat
    if iso is None and isinstance(code, str):
        iso = code
        if isinstance(country, str):
            name = country
    location = record.get("location")
    lat = lon = None
    accuracy = None
    if isinstance(location, Mapping):
        lat, lon = _float(location.get("latitude")), _float(location.get("longitude"))
        radius = location.get("accuracy_radius")
        accuracy = radius if isinstance(radius, int) else None
    else:
        lat, lon = _float(record.get("latitude")), _float(record.get("longitude"))
    city = _en(record.get("city"))
    region = None
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions:
        region = _en(subdivisions[0])
    elif isinstance(record.get("state1"), str):
        region = record["state1"] or None
    asn = _asn(record.get("autonomous_system_number", record.get("asn")))
    org = record.get("autonomous_system_organization", record.get("as_name"))
    iso = iso.upper() if isinstance(iso, str) and len(iso) == 2 else None
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    return Partial(
        country=iso,
        country_name=name[:256] if isinstance(name, str) and name else None,
        city=city[:256] if city else None,
        region=region[:256] if region else None,
        lat=lat if lon is not None else None,
        lon=lon if lat is not None else None,
        accuracy_km=accuracy,
        asn=asn,
        as_org=org[:256] if isinstance(org, str) and org else None,
    )


def extract_flat(record: Any) -> Partial:
    """The ip-location-db / DB-IP City Lite build layout (``city``, ``country_code``,
    ``latitude``...), read directly: the built-in data's hot path."""
    if type(record) is not dict:
        return extract(record)
    code = record.get("country_code")
    lat = record.get("latitude")
    lon = record.get("longitude")
    if type(lat) is not float or type(lon) is not float or not (
            -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return extract(record)
    if type(code) is not str or len(code) != 2:
        code = None
    city = record.get("city")
    region = record.get("state1")
    return Partial(code, None, city[:256] if type(city) is str and city else None,
                   region[:256] if type(region) is str and region else None, lat, lon)


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class MmdbFile:
    """One ``.mmdb`` file, opened, checked, and reopened when it is replaced."""

    def __init__(self, path: Path, name: str | None = None, *, origin: str = "configured",
                 only_version: int = 0) -> None:
        self.path = path
        self.name = name or path.stem
        self.origin = origin
        """``configured``, ``imported`` or ``built-in``."""
        self.only_version = only_version
        """4 or 6 when the file is asked only for addresses of that IP version."""
        self._reader: Any = None
        self._identity: tuple[int, int, int, int] | None = None
        self.provides_place = False
        self.provides_asn = False
        self.database_type = ""
        self.build = dt.datetime.fromtimestamp(0, dt.UTC)
        self.records = 0
        self.ip_version = 6
        self.record_size = 0
        self.label = ""
        """``name@YYYY-MM-DD`` (the build date): what events record in ``geo_db``."""
        self._extract: Any = extract
        self._get: Any = None
        self._open()

    def _open(self) -> None:
        import maxminddb

        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            raise GeoipError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise GeoipError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        try:
            reader = maxminddb.open_database(str(self.path), maxminddb.MODE_AUTO)
        except (maxminddb.InvalidDatabaseError, ValueError) as exc:
            raise GeoipError(
                f"{self.path}: not a usable MaxMind DB (.mmdb) file, or truncated: {exc}"
            ) from None
        except OSError as exc:
            raise GeoipError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        meta = reader.metadata()
        try:
            place, asn, flat = _probe(reader, self.path)
        except GeoipError as exc:
            reader.close()
            raise GeoipError(f"{self.path}: {exc}") from None
        if not (place or asn):
            reader.close()
            raise GeoipError(
                f"{self.path}: a MaxMind DB of type {meta.database_type!r} with neither "
                "country/city nor AS data; expected a City, Country or ASN database"
            )
        old = self._reader
        self._reader = reader
        self._identity = identity
        self.provides_place, self.provides_asn = place, asn
        self.database_type = str(meta.database_type)
        self.build = dt.datetime.fromtimestamp(meta.build_epoch, dt.UTC)
        self.records = int(meta.node_count)
        self.ip_version = int(meta.ip_version)
        self.record_size = int(meta.record_size)
        self.label = f"{self.name}@{self.build:%Y-%m-%d}"
        self._extract = extract_flat if flat else extract
        self._get = reader.get_with_prefix_len
        if old is not None:
            old.close()

    @property
    def identity(self) -> tuple[int, int, int, int] | None:
        """Device, inode, size and modification time of the file as opened."""
        return self._identity

    def changed(self) -> bool:
        """Reopen the file if it was replaced; True when it was. A replacement that does
        not open (still being copied, say) is logged and the old database stays."""
        try:
            identity = _identity(self.path)
        except OSError:
            return False
        if identity == self._identity:
            return False
        try:
            self._open()
        except GeoipError as exc:
            self._identity = identity  # do not retry this same broken file every time
            log.warning("%s; keeping the database that was open", exc)
            return False
        log.info("GeoIP database %s reloaded (built %s)", self.path, f"{self.build:%Y-%m-%d}")
        return True

    def lookup(self, ip: str) -> tuple[Partial, int] | None:
        """The record for ``ip`` and its prefix length, or None."""
        record, prefix = self._get(ip)
        if record is None:
            return None
        return self._extract(record), prefix

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _probe(reader: Any, path: Path) -> tuple[bool, bool, bool]:
    """Whether the database's records hold a place, an AS, or both (from a few records,
    those of its first networks), and whether they are in the flat ip-location-db
    layout."""
    from portolan.enrich.tree import first_networks

    meta = reader.metadata()
    try:
        networks = first_networks(path, meta.node_count, meta.record_size, meta.ip_version)
    except ValueError as exc:
        raise GeoipError(f"damaged MaxMind DB: {exc}") from None
    except OSError as exc:
        raise GeoipError(f"cannot read: {exc.strerror or exc}") from None
    if not networks:
        raise GeoipError("damaged MaxMind DB: its search tree leads to no data")
    make = ipaddress.IPv6Address if meta.ip_version == 6 else ipaddress.IPv4Address
    place = asn = False
    flat = True
    try:
        for address, _ in networks:
            record = reader.get(make(address))
            part = extract(record)
            place = place or part.has_place
            asn = asn or part.has_asn
            flat = flat and isinstance(record, dict) and "country_code" in record and (
                "latitude" in record) and not isinstance(record.get("country"), dict)
            if place and asn:
                break
    except Exception as exc:  # a damaged data section shows up here
        import maxminddb

        if isinstance(exc, (maxminddb.InvalidDatabaseError, ValueError, IndexError)):
            raise GeoipError(f"damaged MaxMind DB: {exc}") from None
        raise
    return place, asn, flat and place and not asn
