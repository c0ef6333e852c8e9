"""suggestion.audit: the random audit sample interleaved with each run's ranked queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the flag (existing suggestions were all ranked: False) and a partial index on it.

    ``add_column`` with a constant default needs no table rebuild on SQLite, so the suggestion
    count triggers of 0003 stay in place.
    """
    op.add_column(
        "suggestion",
        sa.Column("audit", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_suggestion_audit",
        "suggestion",
        ["run_id", "class_id"],
        sqlite_where=sa.text("audit"),
        postgresql_where=sa.text("audit"),
    )


def downgrade() -> None:
    """Undo: drop the index, then the column (SQLite 3.35+ drops a column in place)."""
    op.drop_index("ix_suggestion_audit", table_name="suggestion")
    op.drop_column("suggestion", "audit")
