"""Rollups: counts of events per time bucket, built from the events already stored.

Revision ID: rollups
Revises: tokens
"""

import sqlalchemy as sa
from alembic import op

revision = "rollups"
down_revision = "tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollups",
        sa.Column("grain", sa.Integer, primary_key=True),
        sa.Column("dim", sa.String(16), primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("label", sa.String(256)),
    )
    from portolan.store.rollups import backfill

    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("rollups")
