"""The first schema: models, versions, metrics, aliases.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registered_models"),
        sa.UniqueConstraint("name", name="uq_registered_models_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact_path", sa.String(1024), nullable=False),
        sa.Column("artifact_size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("keras_version", sa.String(32), nullable=False),
        sa.Column("tensorflow_version", sa.String(32), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name="fk_model_versions_model_id_registered_models",
        ),  # fmt: skip
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
        sa.CheckConstraint("version >= 1", name="ck_model_versions_version_positive"),
        sa.CheckConstraint("artifact_size > 0", name="ck_model_versions_size_positive"),
        sa.CheckConstraint("length(sha256) = 64", name="ck_model_versions_sha256_hex"),
    )
    op.create_table(
        "metrics",
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "key", name="pk_metrics"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_metrics_version_id_model_versions"
        ),
        sa.CheckConstraint("value BETWEEN -1e300 AND 1e300", name="ck_metrics_finite"),
        sa.CheckConstraint(
            "key NOT LIKE '%accuracy' OR value BETWEEN 0 AND 1", name="ck_metrics_accuracy_in_0_1"
        ),
        sa.CheckConstraint(
            "key NOT LIKE '%loss' OR value >= 0", name="ck_metrics_loss_not_negative"
        ),
    )
    op.create_table(
        "aliases",
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "alias", name="pk_aliases"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["registered_models.id"], name="fk_aliases_model_id_registered_models"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_aliases_version_id_model_versions"
        ),
    )


def downgrade() -> None:
    for table in ("aliases", "metrics", "model_versions", "registered_models"):
        op.drop_table(table)
