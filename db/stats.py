"""Per-class statistics of a dataset: label counts by state and suggestion counts by status.

Counts come from indexed GROUP BYs (``label(class_id, value)``,
``suggestion(dataset_id, class_id, status)``), never from loading rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Image, Label, LabelClass, Suggestion


@dataclass(frozen=True)
class ClassCounts:
    """Counts of one class: ``unknown = n_images - positive - negative``."""

    class_id: int
    key: str
    display_name: str
    position: int
    positive: int
    negative: int
    unknown: int


def n_images(session: Session, dataset_id: int, split: str | None = None) -> int:
    q = select(func.count()).select_from(Image).where(Image.dataset_id == dataset_id)
    if split is not None:
        q = q.where(Image.split == split)
    return int(session.scalar(q) or 0)


def class_counts(session: Session, dataset_id: int) -> list[ClassCounts]:
    """Positive / negative / unknown counts for every class of the dataset, in column order."""
    total = n_images(session, dataset_id)
    counts: dict[tuple[int, int], int] = {
        (cid, val): n
        for cid, val, n in session.execute(
            select(Label.class_id, Label.value, func.count())
            .join(LabelClass, LabelClass.id == Label.class_id)
            .where(LabelClass.dataset_id == dataset_id)
            .group_by(Label.class_id, Label.value)
        )
    }
    out = []
    for c in session.execute(
        select(LabelClass.id, LabelClass.key, LabelClass.display_name, LabelClass.position)
        .where(LabelClass.dataset_id == dataset_id)
        .order_by(LabelClass.position)
    ):
        pos, neg = counts.get((c.id, 1), 0), counts.get((c.id, 0), 0)
        out.append(ClassCounts(c.id, c.key, c.display_name, c.position, pos, neg, total - pos - neg))
    return out


def suggestion_counts(session: Session, dataset_id: int) -> dict[int, dict[str, int]]:
    """class id → {status: count} over every suggestion of the dataset."""
    out: dict[int, dict[str, int]] = {}
    for cid, status, n in session.execute(
        select(Suggestion.class_id, Suggestion.status, func.count())
        .where(Suggestion.dataset_id == dataset_id)
        .group_by(Suggestion.class_id, Suggestion.status)
    ):
        out.setdefault(cid, {})[status] = n
    return out


def n_labels(session: Session, dataset_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Label)
            .join(LabelClass, LabelClass.id == Label.class_id)
            .where(LabelClass.dataset_id == dataset_id)
        )
        or 0
    )


__all__ = ["ClassCounts", "class_counts", "n_images", "n_labels", "suggestion_counts"]
