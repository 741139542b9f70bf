"""附件 (clue attachments): files gathered for a clue — 现场核查记录, 病历 scans — with their SHA-256.

Append-only, like the audit log (triggers reject UPDATE and DELETE; TRUNCATE too on PostgreSQL).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from serving.clues.migrations.append_only import protect, unprotect

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clue_attachment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("clue_id", sa.Integer, sa.ForeignKey("clue.id"), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(60), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_clue_attachment_clue_id", "clue_attachment", ["clue_id"])
    protect("clue_attachment")


def downgrade() -> None:
    unprotect("clue_attachment")
    op.drop_index("ix_clue_attachment_clue_id", table_name="clue_attachment")
    op.drop_table("clue_attachment")
