"""The tables, declared once (SQLAlchemy Core). Migrations in ``migrations/`` create them.

Events are keyed by ``(ts, id)``: ``id`` alone is unique by construction, and leading with
the time makes inserts land at the end of the index (fast in every engine, and the key that
time partitioning needs), and time-range scans use the primary key.

Times are stored as integer microseconds since 1970-01-01 UTC (``BIGINT``): exact, fast
to compare and to index in SQLite, PostgreSQL and MariaDB alike. The store converts them
back to aware ``datetime`` objects; nothing outside ``portolan.store`` sees the integers.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("id", String(64), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("sensor", String(256), nullable=False),
    Column("source", String(256), nullable=False),
    Column("service", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("proto", String(64)),
    Column("src_ip", String(64)),
    Column("src_port", Integer),
    Column("dst_ip", String(64)),
    Column("dst_port", Integer),
    Column("user", String(1024)),
    Column("session", String(256)),
    Column("duration", Float),
    Column("bytes_in", BigInteger),
    Column("bytes_out", BigInteger),
    Column("packets", BigInteger),
    Column("payload", LargeBinary),
    Column("attrs", Text),
    Column("country", String(2)),
    Column("country_name", String(256)),
    Column("city", String(256)),
    Column("lat", Float),
    Column("lon", Float),
    Column("asn", BigInteger),
    Column("as_org", String(256)),
    Column("network", String(64)),
    Column("geo_db", String(256)),
    Column("received", BigInteger),
    PrimaryKeyConstraint("ts", "id", name="pk_events"),
    Index("ix_events_src_ip_ts", "src_ip", "ts"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("sensor", String(256), nullable=False),
    Column("source", String(256), nullable=False),
    Column("service", String(64), nullable=False),
    Column("proto", String(64)),
    Column("src_ip", String(64)),
    Column("src_port", Integer),
    Column("dst_ip", String(64)),
    Column("dst_port", Integer),
    Column("user", String(1024)),
    Column("start_ts", BigInteger),
    Column("end_ts", BigInteger),
    Column("duration", Float),
    Column("bytes_in", BigInteger),
    Column("bytes_out", BigInteger),
    Column("attrs", Text),
    Column("country", String(2)),
    Column("city", String(256)),
    Column("lat", Float),
    Column("lon", Float),
    Column("asn", BigInteger),
    Column("as_org", String(256)),
    Index("ix_sessions_start", "start_ts"),
    Index("ix_sessions_end", "end_ts"),
)

ips = Table(
    "ips",
    metadata,
    Column("ip", String(64), primary_key=True),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("events", BigInteger, nullable=False, default=0),
    Column("failures", BigInteger, nullable=False, default=0),
    Column("successes", BigInteger, nullable=False, default=0),
    Column("country", String(2)),
    Column("asn", BigInteger),
    Column("as_org", String(256)),
    Column("starred", Boolean, nullable=False, default=False),
    Column("note", Text),
    Index("ix_ips_last_seen", "last_seen"),
)

sensors = Table(
    "sensors",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("last_event_ts", BigInteger),
    Column("events", BigInteger, nullable=False, default=0),
    Column("version", String(64)),
    Column("attrs", Text),
)
