"""The label store: SQLAlchemy 2.0 typed models.

Encoding: a ``Label`` row exists only for an annotated (image, class) cell and holds ``value`` 1
(positive) or 0 (negative). Unknown = no row, so 9M images × 600 classes stay sparse.
Every change to a label appends a ``LabelEvent`` (before/after: 1, 0 or NULL for unknown).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import StrEnumType

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
    }


class Split(enum.StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class LabelSource(enum.StrEnum):
    IMPORT = "import"
    REVIEW = "review"
    EDIT = "edit"
    ADJUDICATION = "adjudication"
    """A manager settled two reviewers' disagreement (``db.double_review.adjudicate``)."""


class SuggestionStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"


class RunKind(enum.StrEnum):
    PRIOR = "prior"
    TARGET = "target"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Role(enum.StrEnum):
    """What a signed-in user may do: each role can do everything the one before it can."""

    ANNOTATOR = "annotator"
    MANAGER = "manager"
    ADMIN = "admin"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _enum_check(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Dataset(Base):
    """A labelled image collection. ``image_root`` is the folder image paths are relative to."""

    __tablename__ = "dataset"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    image_root: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LabelClass(Base):
    """A class of a dataset: a stable ``key`` (e.g. an OpenImages MID) and a display name.

    Display names are not unique (OpenImages V6 repeats 12 of them); ``key`` is, per dataset.
    ``position`` is the column index of the class in (N, C) arrays.
    """

    __tablename__ = "label_class"
    __table_args__ = (UniqueConstraint("dataset_id", "key"), UniqueConstraint("dataset_id", "position"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(300))
    display_name: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)


class Image(Base):
    """An image of a dataset; ``path`` is relative to the dataset's ``image_root``."""

    __tablename__ = "image"
    __table_args__ = (
        UniqueConstraint("dataset_id", "external_id"),
        CheckConstraint(_enum_check("split", Split), name="split"),
        Index(None, "dataset_id", "split", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(300))
    path: Mapped[str] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    split: Mapped[Split] = mapped_column(StrEnumType(Split, 8), default=Split.TRAIN)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Label(Base):
    """One annotated cell: ``value`` 1 = positive, 0 = negative. Unknown cells have no row.

    ``version`` starts at 1 and grows by one on every change (optimistic concurrency).
    """

    __tablename__ = "label"
    __table_args__ = (
        CheckConstraint("value IN (0, 1)", name="value"),
        # Per-class statistics (GROUP BY class_id, value) as an index-only scan.
        Index(None, "class_id", "value"),
    )

    image_id: Mapped[int] = mapped_column(ForeignKey("image.id", ondelete="CASCADE"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[LabelSource] = mapped_column(StrEnumType(LabelSource, 32))
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class LabelEvent(Base):
    """Append-only audit log: one row per change of one cell.

    ``before`` / ``after`` are 1, 0 or NULL (unknown). ``reason`` says why, e.g.
    ``import labels.csv`` or ``accepted suggestion 17``.
    """

    __tablename__ = "label_event"
    __table_args__ = (
        Index(None, "image_id", "class_id", "id"),
        Index(None, "dataset_id", "id"),
        # Undo finds the decision's event by suggestion (0002).
        Index(
            "ix_label_event_suggestion_id",
            "suggestion_id",
            sqlite_where=text("suggestion_id IS NOT NULL"),
            postgresql_where=text("suggestion_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(BigInteger)
    class_id: Mapped[int] = mapped_column(BigInteger)
    before: Mapped[int | None] = mapped_column(SmallInteger)
    after: Mapped[int | None] = mapped_column(SmallInteger)
    author: Mapped[str] = mapped_column(String(200))
    source: Mapped[LabelSource] = mapped_column(StrEnumType(LabelSource, 32))
    reason: Mapped[str] = mapped_column(Text, default="")
    suggestion_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelRun(Base):
    """One trained model: the temporary ``prior`` model or the ``target`` model of a cycle.

    ``config``: the frozen training config; ``metrics``: e.g. ``{"partial_map": 71.3}``;
    ``artifacts``: file paths; ``timings``: seconds per stage.
    """

    __tablename__ = "model_run"
    __table_args__ = (
        CheckConstraint(_enum_check("kind", RunKind), name="kind"),
        CheckConstraint(_enum_check("status", RunStatus), name="status"),
        Index(None, "dataset_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    kind: Mapped[RunKind] = mapped_column(StrEnumType(RunKind, 16))
    status: Mapped[RunStatus] = mapped_column(StrEnumType(RunStatus, 16), default=RunStatus.RUNNING)
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_run.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifacts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]


class RunClassStat(Base):
    """Per run and class: naive and model-based prior, the prior used, and validation AP (0–1)."""

    __tablename__ = "run_class_stat"

    run_id: Mapped[int] = mapped_column(ForeignKey("model_run.id", ondelete="CASCADE"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id", ondelete="CASCADE"), primary_key=True)
    prior_naive: Mapped[float | None] = mapped_column(Float)
    prior_model: Mapped[float | None] = mapped_column(Float)
    prior_used: Mapped[float | None] = mapped_column(Float)
    ap: Mapped[float | None] = mapped_column(Float)


class Suggestion(Base):
    """A likely-missing label: an unknown cell the model scores as probably positive.

    ``score``: class-aware likelihood (higher = more likely a missing positive);
    ``prob``: the model's probability; ``prior``: the class prior used.
    ``audit``: True for a cell of the random audit sample (drawn uniformly from the run's unknown
    train cells, not by score) that is interleaved with the ranked queue; its decisions measure the
    ranking's precision and each class's missing-positive rate without bias. Never shown to
    reviewers; deferred (``undefer(Suggestion.audit)`` or select the column to read it).
    """

    __tablename__ = "suggestion"
    __table_args__ = (
        CheckConstraint(_enum_check("status", SuggestionStatus), name="status"),
        UniqueConstraint("run_id", "image_id", "class_id"),
        # The review queue: highest-score pending suggestion of a dataset (optionally of a class).
        Index(
            "ix_suggestion_queue",
            "dataset_id",
            text("score DESC"),
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_suggestion_class_queue",
            "dataset_id",
            "class_id",
            text("score DESC"),
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(None, "dataset_id", "class_id", "status"),
        Index(None, "image_id", "class_id"),
        Index(None, "run_id", "status"),
        # The audit sample of a run (a few % of its suggestions) without scanning the rest.
        Index(
            "ix_suggestion_audit",
            "run_id",
            "class_id",
            sqlite_where=text("audit"),
            postgresql_where=text("audit"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("model_run.id", ondelete="CASCADE"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("image.id", ondelete="CASCADE"))
    class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    prob: Mapped[float] = mapped_column(Float)
    prior: Mapped[float | None] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[SuggestionStatus] = mapped_column(
        StrEnumType(SuggestionStatus, 16), default=SuggestionStatus.PENDING
    )
    reviewer: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_expires_at: Mapped[dt.datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Deferred and without a Python default: loading or inserting a suggestion never names the
    # column, so code that does not ask for it (the review queue) cannot leak it, and stores still
    # at revision 0003 keep working until ``ensure_schema`` upgrades them.
    audit: Mapped[bool] = mapped_column(Boolean, server_default=false(), deferred=True)


class SuggestionCount(Base):
    """How many suggestions of one run and class are in each status, kept by the database.

    Triggers (migration 0003) update the (run, class) row in the same transaction as every INSERT,
    status change and DELETE on ``suggestion``, whoever writes it (a review decision, a new run, a
    bulk load, a cascade), so per-class and per-run counts read R x C small rows instead of
    grouping millions of suggestions. Application code only reads it. ``run_id`` and ``class_id``
    of a suggestion never change. A migration that rebuilds ``suggestion`` (SQLite batch mode)
    drops its triggers and must create them again.
    """

    __tablename__ = "suggestion_count"

    run_id: Mapped[int] = mapped_column(ForeignKey("model_run.id", ondelete="CASCADE"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id", ondelete="CASCADE"), primary_key=True)
    pending: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    accepted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    rejected: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    skipped: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    superseded: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class Job(Base):
    """Queued work for ``labelmend worker``. ``kind`` names the handler (``app.jobs.HANDLERS``);
    the one kind is ``cycle``: a retrain cycle whose ``payload`` is its ``CycleConfig.to_dict()``.

    ``progress`` in [0, 1]; ``heartbeat_at`` is refreshed while running — a stale heartbeat means
    the worker died and the job is requeued, or failed once ``attempts`` (its starts) reaches the
    worker's ``max_attempts``.
    """

    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint(_enum_check("status", JobStatus), name="status"),
        Index(None, "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[JobStatus] = mapped_column(StrEnumType(JobStatus, 16), default=JobStatus.QUEUED)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(200))
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class User(Base):
    """A person who signs in to the app (``labelmend user add``).

    ``name`` is what decisions, edits, imports and jobs are recorded under (``Label.author``,
    ``LabelEvent.author``, ``Suggestion.reviewer``, ``Job.created_by``). ``password_hash`` is an
    argon2id hash (PHC string; NULL for a user who only signs in through single sign-on, matched by
    ``email``); passwords themselves are never stored, logged or exported. A disabled user
    (``active`` False) cannot sign in; their past work keeps their name.
    """

    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(_enum_check("role", Role), name="role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[Role] = mapped_column(StrEnumType(Role, 16), default=Role.ANNOTATOR)
    password_hash: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime | None]


class SecondReviewStatus(enum.StrEnum):
    """Where a suggestion chosen for a second look stands."""

    PENDING = "pending"
    """Waiting for a second annotator."""
    AGREED = "agreed"
    DISAGREED = "disagreed"
    """Waiting for a manager to adjudicate."""
    ADJUDICATED = "adjudicated"


class SecondReview(Base):
    """A decided suggestion shown to a second annotator, who does not see the first decision.

    Values are label values: 1 = accept (present, positive), 0 = reject (absent, negative).
    ``first_*`` copies the first decision (``Suggestion.reviewer`` / ``reviewed_at``), whose label
    stands until an adjudication decides otherwise. ``second_*`` is the second annotator's
    decision (never the first reviewer, ``db.double_review``), leased like suggestions through
    ``claimed_by`` / ``claim_expires_at``. ``adjudicated_value`` is a manager's verdict on a
    disagreement; it is written to the label (source ``adjudication``). ``class_id`` is the
    suggestion's, copied for per-class agreement without a join. Times are UTC.
    """

    __tablename__ = "second_review"
    __table_args__ = (
        CheckConstraint(_enum_check("status", SecondReviewStatus), name="status"),
        CheckConstraint("first_value IN (0, 1)", name="first_value"),
        CheckConstraint("second_value IN (0, 1)", name="second_value"),
        CheckConstraint("adjudicated_value IN (0, 1)", name="adjudicated_value"),
        # The second-look queue and the disagreement queue: oldest first, per dataset.
        Index(
            "ix_second_review_queue",
            "dataset_id",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_second_review_disagreed",
            "dataset_id",
            "id",
            sqlite_where=text("status = 'disagreed'"),
            postgresql_where=text("status = 'disagreed'"),
        ),
        # Per-annotator and per-class figures (Team page).
        Index("ix_second_review_first_reviewer", "dataset_id", "first_reviewer"),
        Index("ix_second_review_second_reviewer", "dataset_id", "second_reviewer"),
        Index("ix_second_review_class_status", "dataset_id", "class_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestion.id", ondelete="CASCADE"), unique=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    class_id: Mapped[int] = mapped_column(ForeignKey("label_class.id", ondelete="CASCADE"))
    first_reviewer: Mapped[str] = mapped_column(String(200))
    first_value: Mapped[int] = mapped_column(SmallInteger)
    first_at: Mapped[dt.datetime]
    second_reviewer: Mapped[str | None] = mapped_column(String(200))
    second_value: Mapped[int | None] = mapped_column(SmallInteger)
    second_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_expires_at: Mapped[dt.datetime | None]
    status: Mapped[SecondReviewStatus] = mapped_column(
        StrEnumType(SecondReviewStatus, 16), default=SecondReviewStatus.PENDING
    )
    adjudicator: Mapped[str | None] = mapped_column(String(200))
    adjudicated_value: Mapped[int | None] = mapped_column(SmallInteger)
    adjudicated_at: Mapped[dt.datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExportRecord(Base):
    """One export of a dataset's labels: who wrote which files, when, in which format.

    Written in its own transaction after the files are complete (an export that fails leaves no
    record). ``files`` are the paths written, as text; ``labels`` the label rows exported.
    """

    __tablename__ = "export_record"
    __table_args__ = (Index(None, "dataset_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))
    files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    labels: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


__all__ = [
    "Base",
    "Dataset",
    "ExportRecord",
    "Image",
    "Job",
    "JobStatus",
    "Label",
    "LabelClass",
    "LabelEvent",
    "LabelSource",
    "ModelRun",
    "Role",
    "RunClassStat",
    "RunKind",
    "RunStatus",
    "SecondReview",
    "SecondReviewStatus",
    "Split",
    "Suggestion",
    "SuggestionCount",
    "SuggestionStatus",
    "User",
]
