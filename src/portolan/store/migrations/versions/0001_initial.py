"""The first schema: events, sessions, ips, sensors.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("sensor", sa.String(256), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("proto", sa.String(64)),
        sa.Column("src_ip", sa.String(64)),
        sa.Column("src_port", sa.Integer),
        sa.Column("dst_ip", sa.String(64)),
        sa.Column("dst_port", sa.Integer),
        sa.Column("user", sa.String(1024)),
        sa.Column("session", sa.String(256)),
        sa.Column("duration", sa.Float),
        sa.Column("bytes_in", sa.BigInteger),
        sa.Column("bytes_out", sa.BigInteger),
        sa.Column("packets", sa.BigInteger),
        sa.Column("payload", sa.LargeBinary),
        sa.Column("attrs", sa.Text),
        sa.Column("country", sa.String(2)),
        sa.Column("country_name", sa.String(256)),
        sa.Column("city", sa.String(256)),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("asn", sa.BigInteger),
        sa.Column("as_org", sa.String(256)),
        sa.Column("network", sa.String(64)),
        sa.Column("geo_db", sa.String(256)),
        sa.Column("received", sa.BigInteger),
        sa.PrimaryKeyConstraint("ts", "id", name="pk_events"),
    )
    op.create_index("ix_events_src_ip_ts", "events", ["src_ip", "ts"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("sensor", sa.String(256), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("proto", sa.String(64)),
        sa.Column("src_ip", sa.String(64)),
        sa.Column("src_port", sa.Integer),
        sa.Column("dst_ip", sa.String(64)),
        sa.Column("dst_port", sa.Integer),
        sa.Column("user", sa.String(1024)),
        sa.Column("start_ts", sa.BigInteger),
        sa.Column("end_ts", sa.BigInteger),
        sa.Column("duration", sa.Float),
        sa.Column("bytes_in", sa.BigInteger),
        sa.Column("bytes_out", sa.BigInteger),
        sa.Column("attrs", sa.Text),
        sa.Column("country", sa.String(2)),
        sa.Column("city", sa.String(256)),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("asn", sa.BigInteger),
        sa.Column("as_org", sa.String(256)),
    )
    op.create_index("ix_sessions_start", "sessions", ["start_ts"])
    op.create_index("ix_sessions_end", "sessions", ["end_ts"])
    op.create_table(
        "ips",
        sa.Column("ip", sa.String(64), primary_key=True),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
        sa.Column("successes", sa.BigInteger, nullable=False),
        sa.Column("country", sa.String(2)),
        sa.Column("asn", sa.BigInteger),
        sa.Column("as_org", sa.String(256)),
        sa.Column("starred", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_ips_last_seen", "ips", ["last_seen"])
    op.create_table(
        "sensors",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.Column("last_event_ts", sa.BigInteger),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("attrs", sa.Text),
    )


def downgrade() -> None:
    for table in ("sensors", "ips", "sessions", "events"):
        op.drop_table(table)
