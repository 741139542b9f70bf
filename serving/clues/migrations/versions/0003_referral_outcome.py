"""公安反馈 (referral outcome): what public security did with a clue transferred to it.

The latest outcome of a clue transferred to public security (受理 accepted, 立案 filed, 不立案 not_filed,
退回 returned), its date and document number, on the clue; every outcome recorded is also a
``clue_transition`` row (append-only) from 移送公安 to 移送公安 with these in its detail.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clue") as batch:
        batch.add_column(sa.Column("referral_outcome", sa.String(20)))
        batch.add_column(sa.Column("referral_outcome_date", sa.Date))
        batch.add_column(sa.Column("referral_doc_no", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("clue") as batch:
        batch.drop_column("referral_doc_no")
        batch.drop_column("referral_outcome_date")
        batch.drop_column("referral_outcome")
