"""Read-only queries behind the app's pages: suggestions with their image and class, queue sizes,
run statistics, a run's audit sample, an image's history and image look-ups. Every one is indexed
and LIMITed.

Functions take ``session`` first and never write. Claims and decisions live in :mod:`db.review`,
shared with the CLI; cached, Streamlit-specific wrappers live in ``app.web.cached``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, func, literal_column, select
from sqlalchemy.orm import Session

from db.models import (
    Image,
    LabelClass,
    LabelEvent,
    ModelRun,
    RunClassStat,
    RunKind,
    RunStatus,
    Suggestion,
    SuggestionCount,
    SuggestionStatus,
)


@dataclass(frozen=True)
class SuggestionView:
    """A suggestion with its image and class, as plain values for rendering.

    ``score``: class-aware likelihood (higher = more likely a missing positive); ``prob``: model
    probability in [0, 1]; ``prior``: the class prior used (probability, None if unknown).
    """

    id: int
    run_id: int
    status: SuggestionStatus
    score: float
    prob: float
    prior: float | None
    rank: int
    claimed_by: str | None
    claim_expires_at: dt.datetime | None
    reviewer: str | None
    image_id: int
    external_id: str
    path: str
    class_id: int
    class_key: str
    class_name: str


_VIEW_COLUMNS = (
    Suggestion.id,
    Suggestion.run_id,
    Suggestion.status,
    Suggestion.score,
    Suggestion.prob,
    Suggestion.prior,
    Suggestion.rank,
    Suggestion.claimed_by,
    Suggestion.claim_expires_at,
    Suggestion.reviewer,
    Image.id,
    Image.external_id,
    Image.path,
    LabelClass.id,
    LabelClass.key,
    LabelClass.display_name,
)


def _views(session: Session, ids: Sequence[int]) -> dict[int, SuggestionView]:
    if not ids:
        return {}
    rows = session.execute(
        select(*_VIEW_COLUMNS)
        .join(Image, Image.id == Suggestion.image_id)
        .join(LabelClass, LabelClass.id == Suggestion.class_id)
        .where(Suggestion.id.in_(list(ids)))
    ).all()
    return {r[0]: SuggestionView(*r) for r in rows}


def suggestion_view(session: Session, suggestion_id: int) -> SuggestionView | None:
    """One suggestion with its image and class, or None if it does not exist."""
    return _views(session, [suggestion_id]).get(suggestion_id)


def suggestion_views(session: Session, ids: Sequence[int]) -> list[SuggestionView]:
    """Suggestions with image and class, in the order of ``ids`` (missing ids left out)."""
    by_id = _views(session, ids)
    return [by_id[i] for i in ids if i in by_id]


def pending_count(
    session: Session, dataset_id: int, class_id: int | None = None, *, cap: int | None = None
) -> int:
    """Pending suggestions of the dataset (of one class), whoever holds them.

    With ``cap``, counting stops after ``cap + 1`` rows (an index range scan of that length), so a
    result above ``cap`` means "more than ``cap``" — cheap on a queue of millions.
    """
    q = select(Suggestion.id).where(
        Suggestion.dataset_id == dataset_id, Suggestion.status == SuggestionStatus.PENDING
    )
    if class_id is not None:
        q = q.where(Suggestion.class_id == class_id)
    if cap is not None:
        q = q.limit(cap + 1)
    return int(session.scalar(select(func.count()).select_from(q.subquery())) or 0)


@dataclass(frozen=True)
class ClassPending:
    """A class with its number of pending suggestions."""

    class_id: int
    key: str
    display_name: str
    pending: int


def pending_by_class(session: Session, dataset_id: int, limit: int = 500) -> list[ClassPending]:
    """Classes with pending suggestions, most pending first (at most ``limit``).

    Reads the trigger-kept ``suggestion_count`` (runs x classes rows), not the suggestions.
    """
    n = func.sum(SuggestionCount.pending).label("n")
    rows = session.execute(
        select(LabelClass.id, LabelClass.key, LabelClass.display_name, n)
        .join(SuggestionCount, SuggestionCount.class_id == LabelClass.id)
        .join(ModelRun, ModelRun.id == SuggestionCount.run_id)
        .where(ModelRun.dataset_id == dataset_id, LabelClass.dataset_id == dataset_id)
        .group_by(LabelClass.id, LabelClass.key, LabelClass.display_name, LabelClass.position)
        .having(n > 0)
        .order_by(n.desc(), LabelClass.position)
        .limit(limit)
    ).all()
    return [ClassPending(cid, key, name, int(k)) for cid, key, name, k in rows]


def succeeded_target_runs(session: Session, dataset_id: int, limit: int = 2) -> list[ModelRun]:
    """The newest succeeded target runs of the dataset, newest first."""
    return list(
        session.scalars(
            select(ModelRun)
            .where(
                ModelRun.dataset_id == dataset_id,
                ModelRun.kind == RunKind.TARGET,
                ModelRun.status == RunStatus.SUCCEEDED,
            )
            .order_by(ModelRun.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class ClassStatRow:
    """Per-class statistics of one run: priors are probabilities, ``ap`` in [0, 1] (None = not measured)."""

    class_id: int
    key: str
    display_name: str
    prior_naive: float | None
    prior_model: float | None
    prior_used: float | None
    ap: float | None


def class_stats_named(session: Session, run_id: int) -> list[ClassStatRow]:
    """A run's per-class statistics with class keys and names, in column order."""
    rows = session.execute(
        select(
            LabelClass.id,
            LabelClass.key,
            LabelClass.display_name,
            RunClassStat.prior_naive,
            RunClassStat.prior_model,
            RunClassStat.prior_used,
            RunClassStat.ap,
        )
        .join(RunClassStat, RunClassStat.class_id == LabelClass.id)
        .where(RunClassStat.run_id == run_id)
        .order_by(LabelClass.position)
    ).all()
    return [ClassStatRow(*r) for r in rows]


#: ``suggestion.audit`` as a bare boolean term. SQLAlchemy writes ``audit = 1`` on SQLite, which
#: SQLite does not match to the partial index ``ix_suggestion_audit`` (``WHERE audit``); the bare
#: column matches on SQLite and PostgreSQL alike.
_AUDIT = literal_column("suggestion.audit")


@dataclass(frozen=True)
class AuditClassRow:
    """One class's audit cells in a run: how many, and how reviewers decided them.

    ``accepted`` cells were positives the labels missed, ``rejected`` ones were negatives; cells
    skipped, still pending or superseded by a later run are in ``cells`` only.
    """

    class_id: int
    key: str
    display_name: str
    cells: int
    accepted: int
    rejected: int

    @property
    def decided(self) -> int:
        return self.accepted + self.rejected


@dataclass(frozen=True)
class AuditSummary:
    """A run's audit sample and its ranked suggestions, as decided so far.

    Attributes:
        run_id: the run.
        classes: per class with at least one audit cell, most decided first (then column order).
        cells, accepted, rejected: the audit sample's totals over every class.
        ranked_accepted, ranked_rejected: decisions on the run's other (ranked) suggestions.
    """

    run_id: int
    classes: list[AuditClassRow]
    cells: int
    accepted: int
    rejected: int
    ranked_accepted: int
    ranked_rejected: int

    @property
    def decided(self) -> int:
        return self.accepted + self.rejected

    @property
    def ranked_decided(self) -> int:
        return self.ranked_accepted + self.ranked_rejected


def audit_summary(session: Session, run_id: int) -> AuditSummary:
    """The audit sample of ``run_id`` per class, and the ranked suggestions' decisions.

    Two small reads: the audit cells through the partial index ``ix_suggestion_audit`` (a few % of
    the run's suggestions, grouped by class), and the run's per-class rows of the trigger-kept
    ``suggestion_count``, from which the audit decisions are subtracted to give the ranked ones.
    No scan of the run's suggestions.
    """

    def n_status(status: SuggestionStatus) -> ColumnElement[int]:
        return func.sum(case((Suggestion.status == status, 1), else_=0))

    audit = (
        select(
            Suggestion.class_id.label("class_id"),
            func.count().label("cells"),
            n_status(SuggestionStatus.ACCEPTED).label("accepted"),
            n_status(SuggestionStatus.REJECTED).label("rejected"),
        )
        .where(Suggestion.run_id == run_id, _AUDIT)
        .group_by(Suggestion.class_id)
        .subquery()
    )
    rows = session.execute(
        select(
            LabelClass.id, LabelClass.key, LabelClass.display_name, audit.c.cells, audit.c.accepted,
            audit.c.rejected,
        )
        .join(audit, audit.c.class_id == LabelClass.id)
        .order_by((audit.c.accepted + audit.c.rejected).desc(), LabelClass.position)
    ).all()  # fmt: skip
    classes = [AuditClassRow(cid, key, name, int(n), int(a), int(r)) for cid, key, name, n, a, r in rows]
    total_accepted, total_rejected = session.execute(
        select(
            func.coalesce(func.sum(SuggestionCount.accepted), 0),
            func.coalesce(func.sum(SuggestionCount.rejected), 0),
        ).where(SuggestionCount.run_id == run_id)
    ).one()
    accepted = sum(c.accepted for c in classes)
    rejected = sum(c.rejected for c in classes)
    return AuditSummary(
        run_id=run_id,
        classes=classes,
        cells=sum(c.cells for c in classes),
        accepted=accepted,
        rejected=rejected,
        ranked_accepted=int(total_accepted) - accepted,
        ranked_rejected=int(total_rejected) - rejected,
    )


@dataclass(frozen=True)
class EventRow:
    """One audit event of an image: ``before``/``after`` are 1, 0 or None (unknown)."""

    id: int
    class_name: str
    before: int | None
    after: int | None
    author: str
    source: str
    reason: str
    created_at: dt.datetime


def image_events(session: Session, image_id: int, limit: int = 20) -> list[EventRow]:
    """The newest audit events of one image, newest first."""
    rows = session.execute(
        select(
            LabelEvent.id,
            LabelClass.display_name,
            LabelEvent.before,
            LabelEvent.after,
            LabelEvent.author,
            LabelEvent.source,
            LabelEvent.reason,
            LabelEvent.created_at,
        )
        .join(LabelClass, LabelClass.id == LabelEvent.class_id)
        .where(LabelEvent.image_id == image_id)
        .order_by(LabelEvent.id.desc())
        .limit(limit)
    ).all()
    return [EventRow(*r) for r in rows]


def find_images(session: Session, dataset_id: int, text: str, limit: int = 20) -> list[Image]:
    """Images whose external id starts with ``text`` (exact match first), by index range scan."""
    text = text.strip()
    if not text:
        return []
    return list(
        session.scalars(
            select(Image)
            .where(
                Image.dataset_id == dataset_id,
                Image.external_id >= text,
                Image.external_id < text + "\U0010ffff",
            )
            .order_by(Image.external_id)
            .limit(limit)
        )
    )


def neighbour_image(session: Session, dataset_id: int, image_id: int | None, step: int) -> int | None:
    """The id of the next (``step`` > 0) or previous image by id; the first image when ``image_id`` is None.

    None when there is no such image.
    """
    q = select(Image.id).where(Image.dataset_id == dataset_id)
    if image_id is None:
        return session.scalar(q.order_by(Image.id).limit(1))
    if step > 0:
        return session.scalar(q.where(Image.id > image_id).order_by(Image.id).limit(1))
    return session.scalar(q.where(Image.id < image_id).order_by(Image.id.desc()).limit(1))


def image_external_id(session: Session, image_id: int) -> str | None:
    """The external id of an image (e.g. its OpenImages ImageID), or None if it does not exist."""
    return session.scalar(select(Image.external_id).where(Image.id == image_id))


def pending_for_image(session: Session, image_id: int, limit: int = 50) -> list[SuggestionView]:
    """Pending suggestions on one image, highest score first."""
    ids = list(
        session.scalars(
            select(Suggestion.id)
            .where(Suggestion.image_id == image_id, Suggestion.status == SuggestionStatus.PENDING)
            .order_by(Suggestion.score.desc())
            .limit(limit)
        )
    )
    return suggestion_views(session, ids)


def pending_for_cell(
    session: Session, dataset_id: int, external_id: str, class_key: str
) -> Suggestion | None:
    """The newest pending suggestion of one cell, named by image external id and class key; None if none."""
    return session.scalars(
        select(Suggestion)
        .join(Image, Image.id == Suggestion.image_id)
        .join(LabelClass, LabelClass.id == Suggestion.class_id)
        .where(
            Suggestion.dataset_id == dataset_id,
            Suggestion.status == SuggestionStatus.PENDING,
            Image.external_id == external_id,
            LabelClass.key == class_key,
        )
        .order_by(Suggestion.id.desc())
        .limit(1)
    ).first()


def pending_rows(
    session: Session, dataset_id: int, *, class_id: int | None = None, top: int | None = None
) -> Iterator[tuple[str, str, float, float | None]]:
    """Pending suggestions of a dataset (of one class), best first, streamed 5,000 rows at a time.

    Yields:
        ``(external_id, class_key, score, prior)``: ``score`` is the class-aware likelihood (higher =
        more likely a missing positive), ``prior`` the class prior used (None if unknown). At most
        ``top`` rows when given. Ties in score go by suggestion id.
    """
    q = (
        select(Image.external_id, LabelClass.key, Suggestion.score, Suggestion.prior)
        .join(Image, Image.id == Suggestion.image_id)
        .join(LabelClass, LabelClass.id == Suggestion.class_id)
        .where(Suggestion.dataset_id == dataset_id, Suggestion.status == SuggestionStatus.PENDING)
        .order_by(Suggestion.score.desc(), Suggestion.id)
    )
    if class_id is not None:
        q = q.where(Suggestion.class_id == class_id)
    if top is not None:
        q = q.limit(top)
    result = session.execute(q.execution_options(yield_per=5000))
    yield from ((img, key, score, prior) for img, key, score, prior in result)


def top_run_suggestions(
    session: Session, run_id: int, limit: int = 1_000
) -> list[tuple[str, str, str, float, float]]:
    """A run's ``limit`` best suggestions: (image external id, class key, display name, score, prob), best first."""
    return [
        (r[0], r[1], r[2], float(r[3]), float(r[4]))
        for r in session.execute(
            select(
                Image.external_id, LabelClass.key, LabelClass.display_name, Suggestion.score, Suggestion.prob
            )
            .join(Image, Image.id == Suggestion.image_id)
            .join(LabelClass, LabelClass.id == Suggestion.class_id)
            .where(Suggestion.run_id == run_id)
            .order_by(Suggestion.score.desc(), Suggestion.id)
            .limit(limit)
        )
    ]


__all__ = [
    "AuditClassRow",
    "AuditSummary",
    "ClassPending",
    "ClassStatRow",
    "EventRow",
    "SuggestionView",
    "audit_summary",
    "class_stats_named",
    "find_images",
    "image_events",
    "image_external_id",
    "neighbour_image",
    "pending_by_class",
    "pending_count",
    "pending_for_cell",
    "pending_for_image",
    "pending_rows",
    "succeeded_target_runs",
    "suggestion_view",
    "suggestion_views",
    "top_run_suggestions",
]
