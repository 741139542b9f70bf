"""The clue store: clues, transitions, comments, audit log, screening runs, users.

``audit_log`` and ``clue_transition`` are append-only: on PostgreSQL a trigger function rejects UPDATE,
DELETE and TRUNCATE; on SQLite triggers reject UPDATE and DELETE.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from serving.clues.migrations.append_only import create_function, drop_function, protect, unprotect

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("audit_log", "clue_transition")


def upgrade() -> None:
    op.create_table(
        "clue",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("clue_key", sa.String(200), nullable=False, unique=True),
        sa.Column("entity_type", sa.String(20), nullable=False),
        sa.Column("entity_id", sa.String(160), nullable=False),
        sa.Column("entity_name", sa.String(200)),
        sa.Column("region", sa.String(6)),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("p_fraud", sa.Float, nullable=False),
        sa.Column("amount_at_risk", sa.Float, nullable=False),
        sa.Column("risk_level", sa.String(10), nullable=False),
        sa.Column("typologies", sa.JSON, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("rule_hits", sa.JSON, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("assignee", sa.String(80)),
        sa.Column("outcome", sa.String(20)),
        sa.Column("decided_at", sa.DateTime),
        sa.Column("confirmed_amount", sa.Float),
        sa.Column("recovered_amount", sa.Float),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("first_seen_run", sa.String(80)),
        sa.Column("last_seen_run", sa.String(80)),
        sa.Column("due_at", sa.DateTime),
        sa.Column("overdue_flagged_at", sa.DateTime),
    )
    op.create_index("ix_clue_region", "clue", ["region"])
    op.create_index("ix_clue_priority", "clue", ["priority"])
    op.create_index("ix_clue_state", "clue", ["state"])
    op.create_table(
        "clue_transition",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("clue_id", sa.Integer, sa.ForeignKey("clue.id"), nullable=False),
        sa.Column("from_state", sa.String(30), nullable=False),
        sa.Column("to_state", sa.String(30), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_clue_transition_clue_id", "clue_transition", ["clue_id"])
    op.create_table(
        "clue_comment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("clue_id", sa.Integer, sa.ForeignKey("clue.id"), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_clue_comment_clue_id", "clue_comment", ["clue_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("clue_id", sa.Integer),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_clue_id", "audit_log", ["clue_id"])
    op.create_table(
        "screening_run",
        sa.Column("run_id", sa.String(80), primary_key=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("counts", sa.JSON, nullable=False),
    )
    op.create_table(
        "user",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(80), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    create_function()
    for table in APPEND_ONLY:
        protect(table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        unprotect(table)
    drop_function()
    for table in ("user", "screening_run", "audit_log", "clue_comment", "clue_transition", "clue"):
        op.drop_table(table)
