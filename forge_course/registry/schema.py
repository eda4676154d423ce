"""The registry's tables, as SQLAlchemy Core metadata (the migrations create them).

Unlike the seed's ``io.thecodeforge.trained_models`` table, this schema runs unchanged on
SQLite and PostgreSQL: plain table names (no three-part name), IDs generated in Python
(no ``gen_random_uuid()``), metrics as floating point in a key/value table (a loss of 12.5
fits; ``DECIMAL(5,4)`` did not), integer versions unique per model name, and aliases that
point one name's alias at exactly one version::

    registered_models (id, name UNIQUE, created_at)
    model_versions    (id, model_id -> registered_models, version, UNIQUE (model_id, version),
                       artifact_path, artifact_size, sha256, params JSON,
                       keras_version, tensorflow_version, created_at)
    metrics           (version_id -> model_versions, key, value; PRIMARY KEY (version_id, key))
    aliases           (model_id, alias; PRIMARY KEY (model_id, alias), version_id, updated_at)

Change a table here *and* add a migration under ``migrations/versions``; a test compares
the migrated database with this metadata.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)

__all__ = ["UTCDateTime", "aliases", "metadata", "metrics", "model_versions", "models"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A metric outside +-1e300 is no measurement: it also rejects inf and (on PostgreSQL) NaN.
FINITE = "value BETWEEN -1e300 AND 1e300"
ACCURACY_IN_0_1 = "key NOT LIKE '%accuracy' OR value BETWEEN 0 AND 1"
LOSS_NOT_NEGATIVE = "key NOT LIKE '%loss' OR value >= 0"


class UTCDateTime(TypeDecorator):
    """A time-zone-aware timestamp, stored in UTC (SQLite keeps no zone; we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give it a time zone (UTC)")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


metadata = MetaData(naming_convention=NAMING)

models = Table(
    "registered_models",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("model_id", Uuid, ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_path", String(1024), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("keras_version", String(32), nullable=False),
    Column("tensorflow_version", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
    CheckConstraint("version >= 1", name="version_positive"),
    CheckConstraint("artifact_size > 0", name="size_positive"),
    CheckConstraint("length(sha256) = 64", name="sha256_hex"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("version_id", Uuid, ForeignKey("model_versions.id"), primary_key=True),
    Column("key", String(100), primary_key=True),
    Column("value", Double, nullable=False),
    CheckConstraint(FINITE, name="finite"),
    CheckConstraint(ACCURACY_IN_0_1, name="accuracy_in_0_1"),
    CheckConstraint(LOSS_NOT_NEGATIVE, name="loss_not_negative"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Uuid, ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version_id", Uuid, ForeignKey("model_versions.id"), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
