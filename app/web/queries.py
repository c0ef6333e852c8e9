"""Queries the app needs that ``db/`` does not offer (yet): every one indexed and LIMITed.

Functions take ``session`` first and never commit, like ``db/``. Claims follow the rules of
:mod:`db.review`: a pending suggestion is available to a reviewer when it is unclaimed, claimed by
them, or its lease has expired.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from db.models import Image, LabelClass, LabelEvent, ModelRun, RunClassStat, RunStatus, Suggestion, utcnow
from db.review import DEFAULT_LEASE_S

PENDING = "pending"


def _available(reviewer: str, now: dt.datetime) -> ColumnElement[bool]:
    return and_(
        Suggestion.status == PENDING,
        or_(
            Suggestion.claimed_by.is_(None),
            Suggestion.claimed_by == reviewer,
            Suggestion.claim_expires_at < now,
        ),
    )


@dataclass(frozen=True)
class SuggestionView:
    """A suggestion with its image and class, as plain values for rendering.

    ``score``: class-aware likelihood (higher = more likely a missing positive); ``prob``: model
    probability in [0, 1]; ``prior``: the class prior used (probability, None if unknown).
    """

    id: int
    run_id: int
    status: str
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


def claim_one(
    session: Session, suggestion_id: int, reviewer: str, *, lease_s: float = DEFAULT_LEASE_S
) -> bool:
    """Lease one pending suggestion to ``reviewer`` (or renew their lease); False if unavailable."""
    now = utcnow()
    done = session.execute(
        update(Suggestion)
        .where(Suggestion.id == suggestion_id, _available(reviewer, now))
        .values(
            claimed_by=reviewer,
            claim_expires_at=now + dt.timedelta(seconds=lease_s),
            version=Suggestion.version + 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    return done == 1


def release_one(session: Session, suggestion_id: int, reviewer: str) -> bool:
    """Give back ``reviewer``'s lease on one pending suggestion; False if they did not hold it."""
    done = session.execute(
        update(Suggestion)
        .where(
            Suggestion.id == suggestion_id,
            Suggestion.claimed_by == reviewer,
            Suggestion.status == PENDING,
        )
        .values(claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return done == 1


def claim_class_page(
    session: Session,
    dataset_id: int,
    class_id: int,
    reviewer: str,
    *,
    limit: int,
    lease_s: float = DEFAULT_LEASE_S,
) -> list[int]:
    """Lease up to ``limit`` top pending suggestions of one class to ``reviewer``.

    Returns:
        The ids leased, highest score first (fewer when others hold some).
    """
    now = utcnow()
    ids = list(
        session.scalars(
            select(Suggestion.id)
            .where(
                Suggestion.dataset_id == dataset_id,
                Suggestion.class_id == class_id,
                _available(reviewer, now),
            )
            .order_by(Suggestion.score.desc(), Suggestion.id)
            .limit(limit)
        )
    )
    if not ids:
        return []
    session.execute(
        update(Suggestion)
        .where(Suggestion.id.in_(ids), _available(reviewer, now))
        .values(
            claimed_by=reviewer,
            claim_expires_at=now + dt.timedelta(seconds=lease_s),
            version=Suggestion.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    mine = set(
        session.scalars(
            select(Suggestion.id).where(
                Suggestion.id.in_(ids), Suggestion.claimed_by == reviewer, Suggestion.status == PENDING
            )
        )
    )
    return [i for i in ids if i in mine]


def pending_count(
    session: Session, dataset_id: int, class_id: int | None = None, *, cap: int | None = None
) -> int:
    """Pending suggestions of the dataset (of one class), whoever holds them.

    With ``cap``, counting stops after ``cap + 1`` rows (an index range scan of that length), so a
    result above ``cap`` means "more than ``cap``" — cheap on a queue of millions.
    """
    q = select(Suggestion.id).where(Suggestion.dataset_id == dataset_id, Suggestion.status == PENDING)
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
    """Classes with pending suggestions, most pending first (at most ``limit``)."""
    n = func.count().label("n")
    sub = (
        select(Suggestion.class_id, n)
        .where(Suggestion.dataset_id == dataset_id, Suggestion.status == PENDING)
        .group_by(Suggestion.class_id)
        .subquery()
    )
    rows = session.execute(
        select(LabelClass.id, LabelClass.key, LabelClass.display_name, sub.c.n)
        .join(sub, sub.c.class_id == LabelClass.id)
        .order_by(sub.c.n.desc(), LabelClass.position)
        .limit(limit)
    ).all()
    return [ClassPending(*r) for r in rows]


def status_counts_by_run(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """run id → {suggestion status: count} for the given runs."""
    out: dict[int, dict[str, int]] = {}
    if not run_ids:
        return out
    for run_id, status, n in session.execute(
        select(Suggestion.run_id, Suggestion.status, func.count())
        .where(Suggestion.run_id.in_(list(run_ids)))
        .group_by(Suggestion.run_id, Suggestion.status)
    ):
        out.setdefault(run_id, {})[status] = n
    return out


def succeeded_target_runs(session: Session, dataset_id: int, limit: int = 2) -> list[ModelRun]:
    """The newest succeeded target runs of the dataset, newest first."""
    return list(
        session.scalars(
            select(ModelRun)
            .where(
                ModelRun.dataset_id == dataset_id,
                ModelRun.kind == "target",
                ModelRun.status == RunStatus.SUCCEEDED.value,
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
    """The id of the next (``step`` > 0) or previous image by id; the first image when ``image_id`` is None."""
    q = select(Image.id).where(Image.dataset_id == dataset_id)
    if image_id is None:
        return session.scalar(q.order_by(Image.id).limit(1))
    if step > 0:
        return session.scalar(q.where(Image.id > image_id).order_by(Image.id).limit(1))
    return session.scalar(q.where(Image.id < image_id).order_by(Image.id.desc()).limit(1))


def pending_for_image(session: Session, image_id: int, limit: int = 50) -> list[SuggestionView]:
    """Pending suggestions on one image, highest score first."""
    ids = list(
        session.scalars(
            select(Suggestion.id)
            .where(Suggestion.image_id == image_id, Suggestion.status == PENDING)
            .order_by(Suggestion.score.desc())
            .limit(limit)
        )
    )
    return suggestion_views(session, ids)


__all__ = [
    "ClassPending",
    "ClassStatRow",
    "EventRow",
    "SuggestionView",
    "claim_class_page",
    "claim_one",
    "class_stats_named",
    "find_images",
    "image_events",
    "neighbour_image",
    "pending_by_class",
    "pending_count",
    "pending_for_image",
    "release_one",
    "status_counts_by_run",
    "succeeded_target_runs",
    "suggestion_view",
    "suggestion_views",
]
