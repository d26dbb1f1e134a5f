"""Initial schema: api_keys, submissions, votes, audit and the change counter.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index(
        op.f("uq_api_keys_live_name"),
        "api_keys",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )

    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("revision", sa.String(100), nullable=False),
        sa.Column("precision", sa.String(32), nullable=False),
        sa.Column("model_type", sa.String(64), nullable=True),
        sa.Column("base_model", sa.String(300), nullable=True),
        sa.Column("weight_type", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("submitter", sa.String(200), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("dataset_version", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'finished', 'failed')",
            name=op.f("ck_submissions_status"),
        ),
    )
    op.create_index(
        op.f("uq_submissions_active"),
        "submissions",
        ["model", "revision", "precision"],
        unique=True,
        sqlite_where=sa.text("status <> 'failed'"),
        postgresql_where=sa.text("status <> 'failed'"),
    )
    op.create_index(
        op.f("ix_submissions_status_created"), "submissions", ["status", "created_at", "id"]
    )

    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
        sa.UniqueConstraint("identity", "model", name=op.f("uq_votes_identity_model")),
        sa.CheckConstraint("direction IN ('up', 'down')", name=op.f("ck_votes_direction")),
    )
    op.create_index(op.f("ix_votes_model_direction"), "votes", ["model", "direction"])

    op.create_table(
        "audit",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("address", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_at"), "audit", ["at"])

    changes = op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
        sa.CheckConstraint("id = 1", name=op.f("ck_changes_single_row")),
    )
    op.bulk_insert(changes, [{"id": 1, "counter": 0}])


def downgrade() -> None:
    for table in ("changes", "audit", "votes", "submissions", "api_keys"):
        op.drop_table(table)
