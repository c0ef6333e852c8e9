"""index audit events by suggestion (undo of a review decision looks its event up)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Partial index on label_event.suggestion_id (only review events carry one)."""
    present = sa.text("suggestion_id IS NOT NULL")
    op.create_index(
        "ix_label_event_suggestion_id",
        "label_event",
        ["suggestion_id"],
        sqlite_where=present,
        postgresql_where=present,
    )


def downgrade() -> None:
    """Undo: drop the index."""
    op.drop_index("ix_label_event_suggestion_id", table_name="label_event")
