"""initial schema: datasets, classes, images, labels, audit log, runs, suggestions, jobs

Revision ID: 0001
Revises:
Create Date: 2026-11-28 18:10:37.271119
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """initial schema: datasets, classes, images, labels, audit log, runs, suggestions, jobs"""
    op.create_table(
        "dataset",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("image_root", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset")),
        sa.UniqueConstraint("name", name=op.f("uq_dataset_name")),
    )
    op.create_table(
        "image",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dataset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("split IN ('train', 'val', 'test')", name=op.f("ck_image_split")),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name=op.f("fk_image_dataset_id_dataset"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image")),
        sa.UniqueConstraint("dataset_id", "external_id", name=op.f("uq_image_dataset_id_external_id")),
    )
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_image_dataset_id_image_split_image_id"),
            ["dataset_id", "split", "id"],
            unique=False,
        )

    op.create_table(
        "job",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f("ck_job_status")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name=op.f("fk_job_dataset_id_dataset"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_status_job_id"), ["status", "id"], unique=False)

    op.create_table(
        "label_class",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dataset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name=op.f("fk_label_class_dataset_id_dataset"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_class")),
        sa.UniqueConstraint("dataset_id", "key", name=op.f("uq_label_class_dataset_id_key")),
        sa.UniqueConstraint("dataset_id", "position", name=op.f("uq_label_class_dataset_id_position")),
    )
    op.create_table(
        "label_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dataset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("class_id", sa.BigInteger(), nullable=False),
        sa.Column("before", sa.SmallInteger(), nullable=True),
        sa.Column("after", sa.SmallInteger(), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("suggestion_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name=op.f("fk_label_event_dataset_id_dataset"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_event")),
    )
    with op.batch_alter_table("label_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_event_dataset_id_label_event_id"), ["dataset_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_label_event_image_id_label_event_class_id_label_event_id"),
            ["image_id", "class_id", "id"],
            unique=False,
        )

    op.create_table(
        "model_run",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dataset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('prior', 'target')", name=op.f("ck_model_run_kind")),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name=op.f("ck_model_run_status")),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name=op.f("fk_model_run_dataset_id_dataset"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["model_run.id"],
            name=op.f("fk_model_run_parent_id_model_run"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_run")),
    )
    with op.batch_alter_table("model_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_run_dataset_id_model_run_id"), ["dataset_id", "id"], unique=False
        )

    op.create_table(
        "label",
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("class_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("value IN (0, 1)", name=op.f("ck_label_value")),
        sa.ForeignKeyConstraint(
            ["class_id"], ["label_class.id"], name=op.f("fk_label_class_id_label_class"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["image.id"], name=op.f("fk_label_image_id_image"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("image_id", "class_id", name=op.f("pk_label")),
    )
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_class_id_label_value"), ["class_id", "value"], unique=False
        )

    op.create_table(
        "run_class_stat",
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("class_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("prior_naive", sa.Float(), nullable=True),
        sa.Column("prior_model", sa.Float(), nullable=True),
        sa.Column("prior_used", sa.Float(), nullable=True),
        sa.Column("ap", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["label_class.id"],
            name=op.f("fk_run_class_stat_class_id_label_class"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["model_run.id"], name=op.f("fk_run_class_stat_run_id_model_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "class_id", name=op.f("pk_run_class_stat")),
    )
    op.create_table(
        "suggestion",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dataset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("class_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("prob", sa.Float(), nullable=False),
        sa.Column("prior", sa.Float(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'rejected', 'skipped', 'superseded')",
            name=op.f("ck_suggestion_status"),
        ),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["label_class.id"],
            name=op.f("fk_suggestion_class_id_label_class"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name=op.f("fk_suggestion_dataset_id_dataset"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["image.id"], name=op.f("fk_suggestion_image_id_image"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["model_run.id"], name=op.f("fk_suggestion_run_id_model_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestion")),
        sa.UniqueConstraint(
            "run_id", "image_id", "class_id", name=op.f("uq_suggestion_run_id_image_id_class_id")
        ),
    )
    with op.batch_alter_table("suggestion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_suggestion_dataset_id_suggestion_class_id_suggestion_status"),
            ["dataset_id", "class_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_suggestion_image_id_suggestion_class_id"), ["image_id", "class_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_suggestion_run_id_suggestion_status"), ["run_id", "status"], unique=False
        )

    # The review queue (partial indexes on pending suggestions; autogenerate cannot compare them).
    pending = sa.text("status = 'pending'")
    op.create_index(
        "ix_suggestion_queue",
        "suggestion",
        ["dataset_id", sa.text("score DESC"), "id"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_index(
        "ix_suggestion_class_queue",
        "suggestion",
        ["dataset_id", "class_id", sa.text("score DESC"), "id"],
        sqlite_where=pending,
        postgresql_where=pending,
    )


def downgrade() -> None:
    """Undo: initial schema: datasets, classes, images, labels, audit log, runs, suggestions, jobs"""
    op.drop_index("ix_suggestion_class_queue", table_name="suggestion")
    op.drop_index("ix_suggestion_queue", table_name="suggestion")
    with op.batch_alter_table("suggestion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suggestion_run_id_suggestion_status"))
        batch_op.drop_index(batch_op.f("ix_suggestion_image_id_suggestion_class_id"))
        batch_op.drop_index(batch_op.f("ix_suggestion_dataset_id_suggestion_class_id_suggestion_status"))

    op.drop_table("suggestion")
    op.drop_table("run_class_stat")
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_class_id_label_value"))

    op.drop_table("label")
    with op.batch_alter_table("model_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_run_dataset_id_model_run_id"))

    op.drop_table("model_run")
    with op.batch_alter_table("label_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_event_image_id_label_event_class_id_label_event_id"))
        batch_op.drop_index(batch_op.f("ix_label_event_dataset_id_label_event_id"))

    op.drop_table("label_event")
    op.drop_table("label_class")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_status_job_id"))

    op.drop_table("job")
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_dataset_id_image_split_image_id"))

    op.drop_table("image")
    op.drop_table("dataset")
