"""GeoIP and ASN: where an address is (country, city, coordinates) and whose network it
is in (AS number, organisation, announced network), offline.

:class:`GeoIP` answers for one address from, in this order: the ``.mmdb`` files named in
``[geoip] databases``, those imported into the data directory (``portolan geoip
import``), then the built-in data (:mod:`portolan.enrich.builtin`). The place comes from
the first database that knows a place for the address, the AS from the first that knows
an AS. A country without coordinates gets its country's centre, marked
``attrs["geo"] = "centroid"``. Special-purpose addresses (private, loopback, CGNAT...)
are labelled in ``attrs["geo"]`` and never looked up (:mod:`portolan.enrich.special`);
an address that does not parse is kept as written, labelled ``invalid`` and counted.

:meth:`GeoIP.lookup_many` answers many addresses at once, the same way: the IPv4
addresses of a batch are looked up together with numpy (:mod:`portolan.enrich.batch`),
the others one by one.

:class:`GeoEnricher` is the pipeline step: an LRU cache in front of :class:`GeoIP`
whose recently used entries answer with one dictionary lookup, so a stream where few
addresses make most events costs little more than that per event; the addresses of a
batch that it does not hold are looked up together, and their answers written into the
events field by field. While it answers almost nothing (a stream of new addresses), it
is asked for one batch in eight only (:mod:`portolan.enrich.cache`): the others are
looked up straight away. It enriches the remote side of each
event (``src_ip``, or ``dst_ip`` for outbound events), records in ``geo_db`` which
databases (and builds) answered, and leaves events that already carry a ``geo_db``
(enriched by a sensor) alone. Its answers are kept as :data:`Answer` (``attrs`` as pairs,
out of the garbage collector's way); :meth:`GeoIP.lookup` gives a :data:`Result`.
Database files are checked for replacement every ``reload_seconds``, not per lookup.
The built-in ASN table is kept ready to load in ``DATA_DIR/cache``
(:mod:`portolan.enrich.asncache`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from portolan.config import LOAD_HOOKS, SECTIONS, Config, ConfigError, Section
from portolan.enrich import asncache
from portolan.enrich.answer import FIELDS as FIELDS  # where the CLI finds it
from portolan.enrich.answer import (
    INVALID,
    NOTHING,
    Answer,
    Attrs,
    Columns,
    Template,
    cidr,
    parse,
    to_answer,
    to_result,
)
from portolan.enrich.answer import Result as Result  # what lookup() gives
from portolan.enrich.answer import special as _special
from portolan.enrich.asn import AsnTable
from portolan.enrich.base import ENRICHERS, EnricherSpec
from portolan.enrich.builtin import (
    ASN_PACKAGE,
    CITY_PACKAGE,
    Country,
    find_dir,
    load_countries,
    package,
)
from portolan.enrich.cache import LRU
from portolan.enrich.geoage import AgeCollector as AgeCollector  # registered below
from portolan.enrich.mmdb import GeoipError, MmdbFile, Partial
from portolan.enrich.special import classify, classify_v4
from portolan.event import Event
from portolan.metrics import COLLECTORS, CollectorSpec

if TYPE_CHECKING:
    from portolan.enrich.batch import Batch
    from portolan.enrich.online import OnlineProvider
    from portolan.runtime import Runtime

log = logging.getLogger(__name__)

#: Folder of the data directory where ``portolan geoip import`` puts databases.
IMPORT_DIR: Final = "geoip"
#: Folder of the data directory that keeps the built-in ASN table ready to load.
CACHE_DIR: Final = "cache"


class GeoipSection(Section):
    """GeoIP and ASN enrichment: which databases, the cache, the optional online provider."""

    enabled: bool = True
    """Add country, city, coordinates and AS to events."""
    databases: list[str] = []
    """``.mmdb`` files (MaxMind GeoLite2/GeoIP2 City, Country, ASN; DB-IP Lite; IPinfo
    Lite), first one first: the place comes from the first that knows one, the AS from
    the first that knows one. Files imported with ``portolan geoip import`` follow, then
    the built-in data."""
    builtin: bool = True
    """Use the built-in data (DB-IP City Lite, ip-location-db ASN, country centres)."""
    builtin_dir: str = ""
    """Where the built-in data packages are (a ``node_modules`` folder); empty: found
    automatically (``$PORTOLAN_GEOIP_DATA``, then the checkout's ``data-packages``)."""
    cache_size: int = 100_000
    """Addresses whose answer is kept in memory: at least this many most recently
    used, at most twice as many (while nearly every address is new, one in eight)."""
    reload_seconds: float = 60.0
    """How often database files are checked for replacement on disk."""
    max_age_days: int = 60
    """``portolan geoip status`` warns about databases older than this."""
    online: Literal["", "ipgeolocation"] = ""
    """Online provider asked beside the offline data: ``""`` (none) or ``ipgeolocation``
    (ipgeolocation.io; needs ``online_key``). It never slows the pipeline: an address
    is enriched offline at once and its online answer is used from then on."""
    online_key: str = ""
    """API key of the online provider."""
    online_url: str = "https://api.ipgeolocation.io"
    """Base URL of the online provider's API."""
    online_rate: float = 1.0
    """Most requests per second to the online provider."""
    online_timeout: float = 5.0
    """Seconds before a request to the online provider is given up."""
    online_cache_size: int = 50_000
    """Online answers kept in memory."""


SECTIONS.add("geoip", GeoipSection)

#: Fewer addresses than this are looked up one by one by :meth:`GeoIP.lookup_many`.
BATCH_MIN: Final = 32


@dataclass(frozen=True)
class DatabaseInfo:
    """One database in use, for ``geoip status`` and the metrics."""

    name: str
    role: str
    """``place``, ``asn``, ``place+asn`` or ``centres``."""
    origin: str
    """``configured``, ``imported`` or ``built-in``."""
    path: Path
    build: dt.datetime | None
    records: int | None
    detail: str = ""


@dataclass
class GeoStats:
    """Counters of the GeoIP stage."""

    lookups: int = 0
    """Lookups that missed the cache and went to the databases."""
    invalid: int = 0
    """Events whose address did not parse (kept as written)."""
    errors: list[str] = field(default_factory=list)
    """Databases that could not be opened (the built-in data is used instead)."""


class GeoIP:
    """Looks addresses up in an ordered list of databases; see the module docstring."""

    def __init__(
        self,
        files: list[MmdbFile],
        *,
        asn_table: AsnTable | None = None,
        asn_label: str = "",
        countries: dict[str, Country] | None = None,
        countries_label: str = "",
        import_dir: Path | None = None,
        reload_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        extra_info: list[DatabaseInfo] | None = None,
    ) -> None:
        self.files = files
        self.asn_table = asn_table
        self.asn_label = asn_label
        self.countries = countries or {}
        self.countries_label = countries_label
        self.import_dir = import_dir
        self.reload_seconds = reload_seconds
        self.clock = clock
        self.stats = GeoStats()
        self.extra_info = extra_info or []
        self._next_check = clock() + reload_seconds
        self._import_listing = self._listing()
        self._labels: dict[tuple[str, str], str] = {}
        self._extras: dict[tuple[str | None, int | None], Attrs] = {}
        self._batch: Batch | None = None

    # -- building --------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: GeoipSection, data_dir: Path, *, load_asn: bool = True,
                      clock: Callable[[], float] = time.monotonic) -> GeoIP:
        """The databases the config names, the imported ones, and the built-in data.
        A database that cannot be opened is logged and skipped (the others, and the
        built-in data, still answer); its message is kept in ``stats.errors``."""
        errors: list[str] = []
        files = _open_all([(Path(p).expanduser(), "configured") for p in settings.databases],
                          errors)
        import_dir = data_dir / IMPORT_DIR
        files += _open_all([(p, "imported") for p in _mmdbs_in(import_dir)], errors)
        asn_table = None
        asn_label = ""
        countries: dict[str, Country] = {}
        countries_label = ""
        extra: list[DatabaseInfo] = []
        root = find_dir(settings.builtin_dir) if settings.builtin else None
        if settings.builtin and root is None:
            errors.append("built-in GeoIP data not found (run scripts/bootstrap, or set "
                          "[geoip] builtin_dir); only configured databases are used")
        if root is not None:
            city = package(root, CITY_PACKAGE)
            if city is not None:
                for version in (4, 6):
                    path = city.path / f"dbip-city-ipv{version}.mmdb"
                    try:
                        files.append(MmdbFile(path, "dbip-city-lite", origin="built-in",
                                              only_version=version))
                    except GeoipError as exc:
                        errors.append(str(exc))
            asn_pkg = package(root, ASN_PACKAGE)
            if asn_pkg is not None:
                build = asn_pkg.build
                asn_label = f"ip-location-db-asn@{build:%Y-%m-%d}" if build else (
                    f"ip-location-db-asn@{asn_pkg.version}")
                v4 = asn_pkg.path / "asn-ipv4-num.csv"
                v6 = asn_pkg.path / "asn-ipv6-num.csv"
                records = None
                if load_asn:
                    try:
                        asn_table = asncache.load(_cache_dir(data_dir), v4, v6)
                        records = asn_table.records
                    except OSError as exc:
                        errors.append(f"{exc.filename}: cannot read: {exc.strerror}")
                extra.append(DatabaseInfo("ip-location-db-asn", "asn", "built-in", asn_pkg.path,
                                          build, records, f"npm {ASN_PACKAGE} {asn_pkg.version}"))
            countries = load_countries(root)
            wc = package(root, "world-countries")
            if countries and wc is not None:
                countries_label = f"centroid@world-countries-{wc.version}"
                extra.append(DatabaseInfo("world-countries", "centres", "built-in", wc.path,
                                          None, len(countries), f"npm world-countries "
                                          f"{wc.version}"))
        for message in errors:
            log.error("GeoIP: %s", message)
        geo = cls(files, asn_table=asn_table, asn_label=asn_label, countries=countries,
                  countries_label=countries_label, import_dir=import_dir,
                  reload_seconds=settings.reload_seconds, clock=clock, extra_info=extra)
        geo.stats.errors = errors
        return geo

    def close(self) -> None:
        if self._batch is not None:
            self._batch.close()
            self._batch = None
        for f in self.files:
            f.close()

    # -- reloading -------------------------------------------------------------------

    def _listing(self) -> list[Path]:
        return _mmdbs_in(self.import_dir) if self.import_dir is not None else []

    def maybe_reload(self) -> bool:
        """Check (at most every ``reload_seconds``) whether a database file was replaced
        or a new one imported; True when something changed (caches must be cleared)."""
        now = self.clock()
        if now < self._next_check:
            return False
        self._next_check = now + self.reload_seconds
        return self.reload()

    def reload(self) -> bool:
        """Check every file now; True when something changed."""
        changed = False
        for f in self.files:
            changed = f.changed() or changed
        listing = self._listing()
        if listing != self._import_listing:
            known = {f.path for f in self.files}
            new = [p for p in listing if p not in known]
            errors: list[str] = []
            opened = _open_all([(p, "imported") for p in new], errors)
            for message in errors:
                log.error("GeoIP: %s", message)
            if opened:
                first_builtin = next((i for i, f in enumerate(self.files)
                                      if f.origin == "built-in"),
                                     len(self.files))
                self.files[first_builtin:first_builtin] = opened
                changed = True
            self._import_listing = listing
        if changed and self._batch is not None:
            self._batch.close()
            self._batch = None  # its answers came from the databases as they were
        return changed

    # -- looking up ------------------------------------------------------------------

    def lookup(self, ip: str) -> Result:
        """What Portolan stores for ``ip`` (see :data:`FIELDS`, then attrs to add)."""
        self.stats.lookups += 1
        return to_result(self._lookup(ip))

    def lookup_many(self, ips: list[str]) -> list[Answer]:
        """:meth:`lookup` for each address of ``ips``, in order, as :data:`Answer`; many
        IPv4 addresses at once (:mod:`portolan.enrich.batch`), the same answers."""
        self.stats.lookups += len(ips)
        if len(ips) < BATCH_MIN:
            return [self._lookup(ip) for ip in ips]
        return self._batcher().lookup(ips)

    def lookup_columns(self, ips: list[str]) -> Columns:
        """:meth:`lookup_many`, the answers given field by field."""
        self.stats.lookups += len(ips)
        if len(ips) < BATCH_MIN:
            return Columns.of([self._lookup(ip) for ip in ips])
        return self._batcher().columns(ips)

    def _batcher(self) -> Batch:
        if self._batch is None:
            from portolan.enrich.batch import Batch

            self._batch = Batch(self)
        return self._batch

    def _lookup(self, ip: str) -> Answer:
        parsed = parse(ip)
        if parsed is None:
            return INVALID
        version, number, text = parsed
        label = classify_v4(number) if version == 4 else classify(ipaddress.IPv6Address(number))
        if label is not None:
            return _special(label)
        t = self._files(version, text)
        asn, as_org, asn_db = t.asn, t.as_org, t.asn_db
        network = None
        if t.asn_file >= 0:
            network = cidr(number, t.asn_prefix, version)
        elif self.asn_table is not None:
            hit = self.asn_table.lookup(number, version)
            if hit is not None:
                asn, as_org, network, asn_db = hit.asn, hit.org, hit.network, self.asn_label
        return self._result(t, asn, as_org, network, asn_db)

    def _files(self, version: int, text: str) -> Template:
        """What the database files say about the address ``text`` (of IP ``version``):
        the same for every address that ends on the same record in each file."""
        place: Partial | None = None
        place_db = asn_db = ""
        asn: Partial | None = None
        asn_file = asn_prefix = -1
        for i, f in enumerate(self.files):
            only = f.only_version
            if only and only != version:
                continue
            # A place without coordinates (a Country database) may be refined by a later
            # database that puts the address in the same country, with a city.
            refine = place is not None and place.lat is None and f.provides_place
            want_place = (place is None or refine) and f.provides_place
            want_asn = asn is None and f.provides_asn
            if not (want_place or want_asn):
                continue
            record, prefix = f._get(text)
            if record is None:
                continue
            part = f._extract(record)
            if want_place and part.has_place:
                if place is None:
                    place, place_db = part, f.label
                elif part.lat is not None and part.country in (None, place.country):
                    place = Partial(place.country, place.country_name or part.country_name,
                                    part.city, part.region, part.lat, part.lon,
                                    part.accuracy_km)
                    place_db = f"{place_db}+{f.label}"
            if want_asn and part.has_asn:
                asn, asn_db, asn_file, asn_prefix = part, f.label, i, prefix
            if place is not None and place.lat is not None and asn is not None:
                break
        extra: Attrs | None = None
        country = country_name = city = None
        lat = lon = None
        if place is not None:
            country, country_name, city = place.country, place.country_name, place.city
            lat, lon = place.lat, place.lon
            known = self.countries.get(country) if country else None
            if country_name is None and known is not None:
                country_name = known.name
            if place.region or place.accuracy_km is not None:
                extra = self._extra(place.region, place.accuracy_km)
            if lat is None and known is not None and known.lat is not None:
                lat, lon = known.lat, known.lon
                extra = (*(extra or ()), ("geo", "centroid"))
                place_db = f"{place_db}+{self.countries_label}" if self.countries_label \
                    else place_db
        return Template(country, country_name, city, lat, lon, extra, place_db,
                        asn.asn if asn is not None else None,
                        asn.as_org if asn is not None else None, asn_db, asn_file, asn_prefix)

    def _result(self, t: Template, asn: int | None, as_org: str | None, network: str | None,
                asn_db: str) -> Answer:
        """The answer: the files' place, and the AS and network found for the address."""
        dbs = self._label(t.place_db, asn_db)
        if dbs is None:
            return NOTHING
        return (t.country, t.country_name, t.city, t.lat, t.lon, asn, as_org, network, dbs,
                t.extra)

    def _label(self, place_db: str, asn_db: str) -> str | None:
        """What ``geo_db`` says for these databases (None: no database answered)."""
        if not place_db and not asn_db:
            return None
        key = (place_db, asn_db)
        dbs = self._labels.get(key)
        if dbs is None:
            dbs = place_db if asn_db in ("", place_db) else (
                f"{place_db}+{asn_db}" if place_db else asn_db)
            dbs = self._labels[key] = dbs[:256]
        return dbs

    def _extra(self, region: str | None, accuracy: int | None) -> Attrs:
        """The ``attrs`` to add for a region and accuracy, shared by the answers."""
        key = (region, accuracy)
        found = self._extras.get(key)
        if found is None:
            pairs: list[tuple[str, Any]] = []
            if region:
                pairs.append(("geo_region", region))
            if accuracy is not None:
                pairs.append(("geo_accuracy_km", accuracy))
            found = tuple(pairs)
            if len(self._extras) < 100_000:
                self._extras[key] = found
        return found

    # -- describing ------------------------------------------------------------------

    def databases(self) -> list[DatabaseInfo]:
        """Every database in use, in the order they are asked."""
        out = []
        for f in self.files:
            role = "+".join(r for r, on in (("place", f.provides_place),
                                            ("asn", f.provides_asn)) if on)
            out.append(DatabaseInfo(
                f.name + (f" (IPv{f.only_version})" if f.only_version else ""),
                role, f.origin, f.path, f.build, f.records,
                f.database_type))
        return out + self.extra_info


def _mmdbs_in(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    try:
        # a name starting with "." is an import still being copied
        return sorted(p for p in folder.glob("*.mmdb")
                      if p.is_file() and not p.name.startswith("."))
    except OSError:
        return []


def _open_all(paths: list[tuple[Path, str]], errors: list[str]) -> list[MmdbFile]:
    out = []
    for path, origin in paths:
        try:
            out.append(MmdbFile(path, origin=origin))
        except GeoipError as exc:
            errors.append(str(exc))
    return out


class GeoEnricher:
    """The pipeline step; see the module docstring."""

    name = "geoip"

    def __init__(self, geoip: GeoIP, *, cache_size: int = 100_000,
                 online: OnlineProvider | None = None,
                 counters: dict[str, int] | None = None) -> None:
        self.geoip = geoip
        self.cache: LRU[Answer] = LRU(cache_size)
        self.online = online
        self.counters = counters if counters is not None else {}
        self.counters.setdefault("geoip_invalid", 0)

    def lookup(self, ip: str) -> Result:
        """The answer for one address: cache, then the databases, then what the online
        provider already knows (a miss there is queued, never waited for)."""
        return to_result(self._resolve([ip])[0])

    def _resolve(self, ips: list[str], *, young: bool = True) -> list[Answer]:
        """The answer for each of ``ips`` (distinct or not): from the cache, or looked up
        (all at once) and cached; then the online provider's, if any. ``young=False``:
        the caller found none of them in the young generation."""
        cache = self.cache
        distinct = list(dict.fromkeys(ips))
        found, missing = cache.take(distinct, young=young)
        if found:
            cache.put_many(found)  # back into the young generation
        answers = self.geoip.lookup_many(missing) if missing else []
        online = self.online
        if online is None and len(answers) == len(ips):
            cache.admit(missing, answers)
            return answers  # every address new and distinct (a stream of new addresses)
        if missing:
            cache.admit(missing, answers)
            found.update(zip(missing, answers, strict=True))
        if online is not None:
            for ip, r in found.items():
                if r[8] is not None or r is NOTHING:  # never special or invalid addresses
                    found[ip] = to_answer(online.overlay(ip, to_result(r)))
        return [found[ip] for ip in ips]

    def enrich(self, events: list[Event]) -> None:
        if self.geoip.maybe_reload():
            self.cache.clear()
        if self.online is None and not self.cache.ask():
            self._enrich_uncached(events)
            return
        # the cache's young generation answers most events of a busy stream at once; the
        # others are looked up together after the loop
        nowhere: dict[str, Answer] = {}
        young = self.cache.get_young if self.online is None else nowhere.get
        later: list[Event] = []
        later_ips: list[str] = []
        invalid_marker = INVALID[9]
        invalid = hits = 0
        for ev in events:
            if ev.geo_db is not None or ev.country is not None:
                continue  # placed already (by the sensor that sent it, or a re-run)
            ip = ev.dst_ip if ev.direction == "outbound" else ev.src_ip
            if ip is None:
                continue
            r = young(ip)
            if r is None:
                later.append(ev)
                later_ips.append(ip)
                continue
            hits += 1
            # _write_answers, inlined: this loop runs for every address found in the cache
            (ev.country, ev.country_name, ev.city, ev.lat, ev.lon, ev.asn, ev.as_org,
             ev.network, ev.geo_db, extra) = r
            if extra is not None:
                if extra is invalid_marker:
                    invalid += 1
                ev.attrs.update(extra)
        self.cache.hits += hits
        if later:
            invalid += self._enrich_later(later, later_ips)
        self._invalid(invalid)

    def _enrich_uncached(self, events: list[Event]) -> None:
        """Enrich the events without asking the cache (it answers almost nothing now)."""
        # (two comprehensions: cheaper than one of (event, address) pairs taken apart)
        todo = [ev for ev in events if ev.geo_db is None and ev.country is None]
        ips = [ip for ev in todo
               if (ip := ev.dst_ip if ev.direction == "outbound" else ev.src_ip) is not None]
        if len(ips) < len(todo):  # some without an address
            todo = [ev for ev in todo
                    if (ev.dst_ip if ev.direction == "outbound" else ev.src_ip) is not None]
        if ips:
            self._invalid(_write_columns(todo, self.geoip.lookup_columns(ips)))

    def _invalid(self, count: int) -> None:
        """Count addresses that did not parse."""
        if count:
            self.counters["geoip_invalid"] += count
            self.geoip.stats.invalid += count

    def _enrich_later(self, events: list[Event], ips: list[str]) -> int:
        """Enrich the events whose address the young generation does not hold; how many
        of those addresses did not parse."""
        if self.online is not None or len(set(ips)) < len(ips):
            return _write_answers(events, self._resolve(ips, young=self.online is not None))
        # distinct addresses: those the cache does not hold are looked up together, their
        # answers written field by field
        cache = self.cache
        invalid = 0
        found, missing = cache.take(ips, young=False)
        if found:
            cache.put_many(found)
            invalid += _write_answers([ev for ev, ip in zip(events, ips, strict=True)
                                       if ip in found], list(found.values()))
            events = [ev for ev, ip in zip(events, ips, strict=True) if ip not in found]
        if missing:
            columns = self.geoip.lookup_columns(missing)
            kept = cache.chosen()
            cache.put_many(dict(zip(missing[kept], columns.answers(kept), strict=True)))
            invalid += _write_columns(events, columns)
        return invalid

    def close(self) -> None:
        if self.online is not None:
            self.online.close()


def _cache_dir(data_dir: Path) -> Path | None:
    """Where the ASN table's ready-to-load copy is kept (the data directory is made if
    need be: ``portolan ingest --db URL`` may be the first command that uses it); ``None``
    when it cannot be."""
    cache = data_dir / CACHE_DIR
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return cache


def _write_answers(events: list[Event], answers: list[Answer]) -> int:
    """Write each answer into its event; how many were those of an invalid address."""
    invalid_marker = INVALID[9]
    invalid = 0
    for ev, r in zip(events, answers, strict=True):
        (ev.country, ev.country_name, ev.city, ev.lat, ev.lon, ev.asn, ev.as_org,
         ev.network, ev.geo_db, extra) = r
        if extra is not None:
            if extra is invalid_marker:
                invalid += 1
            ev.attrs.update(extra)
    return invalid


def _write_columns(events: list[Event], columns: Columns) -> int:
    """Write each address's answer into its event; how many addresses were invalid."""
    for ev, place, asn, as_org, network, geo_db in zip(
            events, columns.place, columns.asn, columns.as_org, columns.network,
            columns.geo_db, strict=True):
        ev.country, ev.country_name, ev.city, ev.lat, ev.lon, extra = place
        ev.asn = asn
        ev.as_org = as_org
        ev.network = network
        ev.geo_db = geo_db
        if extra is not None:
            if ev.attrs:
                ev.attrs.update(extra)
            else:  # the same, made faster by copying (the dictionary is shared)
                ev.attrs = extra.copy()
    return columns.invalid


def make_geoip(runtime: Runtime, *, load_asn: bool = True) -> GeoIP:
    """The runtime's databases, as configured."""
    return GeoIP.from_settings(runtime.config.get(GeoipSection), runtime.data_dir,
                               load_asn=load_asn)


def _make(runtime: Runtime) -> GeoEnricher | None:
    settings = runtime.config.get(GeoipSection)
    if not settings.enabled:
        return None
    online = None
    if settings.online:
        from portolan.enrich.online import make_provider

        online = make_provider(settings)
    return GeoEnricher(make_geoip(runtime), cache_size=settings.cache_size, online=online,
                       counters=runtime.stats.extra)


ENRICHERS.add("geoip", EnricherSpec(
    "geoip", "country, city, coordinates and AS of the remote address (offline, cached)",
    10, _make))


def _check_online(config: Config) -> None:
    """Refuse an online provider without its key, when the config is loaded."""
    settings = config.get(GeoipSection)
    if settings.online and not settings.online_key:
        where = config.path or "configuration"
        raise ConfigError(f"{where}: geoip.online_key: required when geoip.online = "
                          f"{settings.online!r}")


LOAD_HOOKS.append(_check_online)


# -- metrics ------------------------------------------------------------------------------


def _collector(runtime: Runtime) -> AgeCollector | None:
    settings = runtime.config.get(GeoipSection)
    if not settings.enabled:
        return None
    return AgeCollector(make_geoip(runtime, load_asn=False), runtime.now)


COLLECTORS.add("geoip", CollectorSpec("geoip", "age of the GeoIP databases", _collector))
