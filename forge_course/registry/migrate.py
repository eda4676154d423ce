"""Bring a registry database up to the newest schema with Alembic, configured in code."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Connection, text

__all__ = ["HEAD", "MIGRATIONS", "current_revision", "head_revision", "is_current", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0001"  # the newest file in migrations/versions (a test keeps the two equal)
PG_LOCK_KEY = 0x46_6F_72_67_65  # "Forge": one migrator at a time on PostgreSQL


def _config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision the package ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def is_current(conn: Connection) -> bool:
    """Whether the database is at :data:`HEAD` already (a quick look, without Alembic)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return False
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD


def upgrade(conn: Connection) -> None:
    """Apply every missing migration on ``conn``, inside its open transaction.

    On SQLite the registry's transactions start with ``BEGIN IMMEDIATE``, which already
    serializes concurrent first uses; on PostgreSQL a transaction-scoped advisory lock does.
    """
    from alembic import command

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    config = _config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
