"""Re-enriching stored history after a database update (``portolan geoip reenrich``).

Events record which databases answered (``geo_db``); after new databases arrive, the
stored events of a time range are looked up again and the rows whose answer changed are
updated, in chunks (one transaction each), together with the ``sessions`` and ``ips``
rows of the same addresses.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portolan.enrich.geoip import FIELDS, Result

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: ``attrs`` keys that enrichment writes (replaced on re-enrichment).
GEO_ATTRS = ("geo", "geo_region", "geo_accuracy_km")


@dataclass
class ReenrichResult:
    """What one run did."""

    scanned: int = 0
    updated: int = 0
    addresses: int = 0


def reenrich(engine: Engine, lookup: Callable[[str], Result], *,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             chunk: int = 2000) -> ReenrichResult:
    """Look every event of ``[since, until)`` up again; update the rows that changed."""
    import sqlalchemy as sa

    from portolan.store import schema, to_us

    E = schema.events
    cols = [E.c.id, E.c.ts, E.c.direction, E.c.src_ip, E.c.dst_ip, E.c.attrs,
            *(E.c[name] for name in FIELDS)]
    update = (
        sa.update(E)
        .where(E.c.id == sa.bindparam("_id"))
        .values({name: sa.bindparam(f"_{name}") for name in (*FIELDS, "attrs")})
    )
    result = ReenrichResult()
    answers: dict[str, Result] = {}
    after: tuple[int, str] | None = None
    while True:
        query = sa.select(*cols).order_by(E.c.ts, E.c.id).limit(chunk)
        if since is not None:
            query = query.where(E.c.ts >= to_us(since))
        if until is not None:
            query = query.where(E.c.ts < to_us(until))
        if after is not None:
            query = query.where(sa.or_(E.c.ts > after[0],
                                       sa.and_(E.c.ts == after[0], E.c.id > after[1])))
        with engine.begin() as conn:
            rows = conn.execute(query).all()
            if not rows:
                break
            after = (rows[-1].ts, rows[-1].id)
            changes = []
            for row in rows:
                result.scanned += 1
                ip = row.dst_ip if row.direction == "outbound" else row.src_ip
                if ip is None:
                    continue
                answer = answers.get(ip)
                if answer is None:
                    answer = answers[ip] = lookup(ip)
                change = _change(row, answer)
                if change is not None:
                    changes.append(change)
            if changes:
                conn.execute(update, changes)
                result.updated += len(changes)
    if answers:
        _update_beside(engine, answers)
    result.addresses = len(answers)
    return result


def _change(row: Any, answer: Result) -> dict[str, Any] | None:
    old_attrs: dict[str, Any] = {}
    if row.attrs:
        try:
            loaded = json.loads(row.attrs)
            old_attrs = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            old_attrs = {}
    attrs = {k: v for k, v in old_attrs.items() if k not in GEO_ATTRS}
    if answer[9]:
        attrs.update(answer[9])
    values = dict(zip(FIELDS, answer[:9], strict=True))
    same = attrs == old_attrs and all(
        _same(getattr(row, name), value) for name, value in values.items())
    if same:
        return None
    change = {f"_{name}": value for name, value in values.items()}
    change["_attrs"] = json.dumps(attrs, separators=(",", ":")) if attrs else None
    change["_id"] = row.id
    return change


def _same(stored: Any, new: Any) -> bool:
    # MariaDB keeps FLOAT columns in single precision: coordinates come back rounded.
    if isinstance(stored, float) and isinstance(new, float):
        return abs(stored - new) < 1e-4
    return bool(stored == new)


def _update_beside(engine: Engine, answers: dict[str, Result]) -> None:
    """The ``sessions`` and ``ips`` rows of the same addresses."""
    import sqlalchemy as sa

    from portolan.store import schema

    S, I = schema.sessions, schema.ips  # noqa: E741
    sessions = (sa.update(S).where(S.c.src_ip == sa.bindparam("_ip"))
                .values(country=sa.bindparam("_country"), city=sa.bindparam("_city"),
                        lat=sa.bindparam("_lat"), lon=sa.bindparam("_lon"),
                        asn=sa.bindparam("_asn"), as_org=sa.bindparam("_as_org")))
    ips = (sa.update(I).where(I.c.ip == sa.bindparam("_ip"))
           .values(country=sa.bindparam("_country"), asn=sa.bindparam("_asn"),
                   as_org=sa.bindparam("_as_org")))
    params = [
        {"_ip": ip, "_country": a[0], "_city": a[2], "_lat": a[3], "_lon": a[4],
         "_asn": a[5], "_as_org": a[6]}
        for ip, a in answers.items()
    ]
    for start in range(0, len(params), 1000):
        part = params[start:start + 1000]
        with engine.begin() as conn:
            conn.execute(sessions, part)
            conn.execute(ips, [{k: p[k] for k in ("_ip", "_country", "_asn", "_as_org")}
                               for p in part])
