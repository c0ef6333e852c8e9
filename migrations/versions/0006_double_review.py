"""second_review: a second annotator's blind look at a share of decided suggestions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATUSES = ("pending", "agreed", "disagreed", "adjudicated")


def upgrade() -> None:
    """Create ``second_review`` with its queue indexes (partial on the status they serve).

    A new table only: ``suggestion`` is not rebuilt, so the suggestion count triggers of 0003
    stay in place. ``label.source`` gains the value ``adjudication`` (it has no CHECK constraint).
    """
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    op.create_table(
        "second_review",
        sa.Column("id", BIG, nullable=False),
        sa.Column("suggestion_id", BIG, nullable=False),
        sa.Column("dataset_id", BIG, nullable=False),
        sa.Column("class_id", BIG, nullable=False),
        sa.Column("first_reviewer", sa.String(length=200), nullable=False),
        sa.Column("first_value", sa.SmallInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("second_reviewer", sa.String(length=200), nullable=True),
        sa.Column("second_value", sa.SmallInteger(), nullable=True),
        sa.Column("second_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("adjudicator", sa.String(length=200), nullable=True),
        sa.Column("adjudicated_value", sa.SmallInteger(), nullable=True),
        sa.Column("adjudicated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"status IN ({statuses})", name=op.f("ck_second_review_status")),
        sa.CheckConstraint("first_value IN (0, 1)", name=op.f("ck_second_review_first_value")),
        sa.CheckConstraint("second_value IN (0, 1)", name=op.f("ck_second_review_second_value")),
        sa.CheckConstraint("adjudicated_value IN (0, 1)", name=op.f("ck_second_review_adjudicated_value")),
        sa.ForeignKeyConstraint(
            ["suggestion_id"],
            ["suggestion.id"],
            name=op.f("fk_second_review_suggestion_id_suggestion"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["dataset.id"],
            name=op.f("fk_second_review_dataset_id_dataset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["label_class.id"],
            name=op.f("fk_second_review_class_id_label_class"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_second_review")),
        sa.UniqueConstraint("suggestion_id", name=op.f("uq_second_review_suggestion_id")),
    )
    op.create_index("ix_second_review_first_reviewer", "second_review", ["dataset_id", "first_reviewer"])
    op.create_index("ix_second_review_second_reviewer", "second_review", ["dataset_id", "second_reviewer"])
    op.create_index("ix_second_review_class_status", "second_review", ["dataset_id", "class_id", "status"])
    for name, status in (("ix_second_review_queue", "pending"), ("ix_second_review_disagreed", "disagreed")):
        op.create_index(
            name,
            "second_review",
            ["dataset_id", "id"],
            sqlite_where=sa.text(f"status = '{status}'"),
            postgresql_where=sa.text(f"status = '{status}'"),
        )


def downgrade() -> None:
    """Undo: drop the table (its indexes go with it). Labels adjudicated meanwhile keep their value
    and their source ``adjudication``."""
    op.drop_table("second_review")
