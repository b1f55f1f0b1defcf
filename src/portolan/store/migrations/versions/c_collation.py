"""PostgreSQL: event ids and addresses compared byte by byte (collation "C").

Ids are hex digits and addresses digits, dots and colons: a language's collation gives
them no better order, and comparing through it costs the server a good part of every
insert into the indexes that hold them (the events' key and the address index, the
addresses and sessions tables). Other databases keep theirs (SQLite compares bytes
already).

Revision ID: c_collation
Revises: asn_traffic
"""

from alembic import op

revision = "c_collation"
down_revision = "asn_traffic"
branch_labels = None
depends_on = None

#: table -> (column, type)
_COLUMNS = {
    "events": [("id", "VARCHAR(64)"), ("src_ip", "VARCHAR(64)"), ("dst_ip", "VARCHAR(64)")],
    "ips": [("ip", "VARCHAR(64)")],
    "sessions": [("id", "VARCHAR(256)")],
}


def _alter(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _COLUMNS.items():
        changes = ", ".join(f'ALTER COLUMN "{name}" TYPE {typ} COLLATE "{collation}"'
                            for name, typ in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')


def upgrade() -> None:
    _alter("C")


def downgrade() -> None:
    _alter("default")
