"""export_record: who exported which labels, when

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``export_record`` (one row per finished export)."""
    op.create_table(
        "export_record",
        sa.Column("id", BIG, nullable=False),
        sa.Column("dataset_id", BIG, nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("labels", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_export_record_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_record")),
    )
    op.create_index(
        op.f("ix_export_record_dataset_id_export_record_id"), "export_record", ["dataset_id", "id"]
    )


def downgrade() -> None:
    """Undo: drop the table."""
    op.drop_index(op.f("ix_export_record_dataset_id_export_record_id"), table_name="export_record")
    op.drop_table("export_record")
