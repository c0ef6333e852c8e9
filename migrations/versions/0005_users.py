"""app_user: accounts and roles for sign-in; job.created_by

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 07:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``app_user`` and record who queued each job."""
    op.create_table(
        "app_user",
        sa.Column("id", BIG, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('annotator', 'manager', 'admin')", name=op.f("ck_app_user_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("name", name=op.f("uq_app_user_name")),
        sa.UniqueConstraint("email", name=op.f("uq_app_user_email")),
    )
    op.add_column("job", sa.Column("created_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Undo: drop the column and the table."""
    op.drop_column("job", "created_by")
    op.drop_table("app_user")
