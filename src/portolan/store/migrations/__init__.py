"""Alembic migrations of the store's schema (run by ``portolan db migrate`` and on start)."""
