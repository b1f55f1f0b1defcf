"""Traffic per autonomous system, per hour (the capture sensor's flows).

Revision ID: asn_traffic
Revises: rollups
"""

import sqlalchemy as sa
from alembic import op

revision = "asn_traffic"
down_revision = "rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "asn_traffic",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("bucket", sa.BigInteger, nullable=False),
        sa.Column("sensor", sa.String(256), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("asn", sa.BigInteger, nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("as_org", sa.String(256)),
        sa.Column("private", sa.Boolean, nullable=False),
        sa.Column("bytes_in", sa.BigInteger, nullable=False),
        sa.Column("bytes_out", sa.BigInteger, nullable=False),
        sa.Column("packets", sa.BigInteger, nullable=False),
        sa.Column("flows", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_asn_traffic_bucket", "asn_traffic", ["bucket"])


def downgrade() -> None:
    op.drop_index("ix_asn_traffic_bucket", "asn_traffic")
    op.drop_table("asn_traffic")
