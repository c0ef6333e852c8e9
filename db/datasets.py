"""Datasets, classes and images: look-ups and creation. Functions take ``session`` first, never commit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.errors import NotFoundError
from db.models import Dataset, Image, Label, LabelClass


def get_dataset(session: Session, name: str) -> Dataset:
    """The dataset called ``name``.

    Raises:
        NotFoundError: with the names that do exist.
    """
    ds = session.scalar(select(Dataset).where(Dataset.name == name))
    if ds is None:
        names = list(session.scalars(select(Dataset.name).order_by(Dataset.name).limit(20)))
        known = ", ".join(names) if names else "none yet — import one first"
        raise NotFoundError(f"dataset {name!r} does not exist (datasets: {known})")
    return ds


def get_or_create_dataset(session: Session, name: str, image_root: str = "") -> Dataset:
    """The dataset ``name``, created if missing. An empty ``image_root`` never overwrites a set one."""
    ds = session.scalar(select(Dataset).where(Dataset.name == name))
    if ds is None:
        ds = Dataset(name=name, image_root=image_root)
        session.add(ds)
        session.flush()
    elif image_root and not ds.image_root:
        ds.image_root = image_root
        session.flush()
    return ds


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


def classes(session: Session, dataset_id: int) -> list[LabelClass]:
    """The dataset's classes in column order (``position``)."""
    return list(
        session.scalars(
            select(LabelClass).where(LabelClass.dataset_id == dataset_id).order_by(LabelClass.position)
        )
    )


def class_by_key(session: Session, dataset_id: int, key_or_name: str) -> LabelClass:
    """A class by its key (e.g. MID); falls back to a unique display name.

    Raises:
        NotFoundError: no such class, or the display name is ambiguous.
    """
    c = session.scalar(
        select(LabelClass).where(LabelClass.dataset_id == dataset_id, LabelClass.key == key_or_name)
    )
    if c is not None:
        return c
    named = list(
        session.scalars(
            select(LabelClass)
            .where(LabelClass.dataset_id == dataset_id, LabelClass.display_name == key_or_name)
            .limit(3)
        )
    )
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        keys = ", ".join(n.key for n in named)
        raise NotFoundError(f"class name {key_or_name!r} is ambiguous ({keys}); use the class id")
    raise NotFoundError(f"class {key_or_name!r} does not exist in this dataset; see `labelmend stats`")


def search_classes(session: Session, dataset_id: int, text: str, limit: int = 50) -> list[LabelClass]:
    """Classes whose key or display name contains ``text`` (case-insensitive), in column order."""
    pattern = f"%{text.strip().lower()}%"
    return list(
        session.scalars(
            select(LabelClass)
            .where(
                LabelClass.dataset_id == dataset_id,
                (func.lower(LabelClass.display_name).like(pattern))
                | (func.lower(LabelClass.key).like(pattern)),
            )
            .order_by(LabelClass.position)
            .limit(limit)
        )
    )


def ensure_classes(session: Session, dataset_id: int, rows: list[tuple[str, str]]) -> dict[str, int]:
    """Add missing classes ``(key, display_name)`` after the existing ones; returns key → class id.

    Existing classes keep their position and display name.
    """
    existing = {c.key: c for c in classes(session, dataset_id)}
    next_pos = max((c.position for c in existing.values()), default=-1) + 1
    new = []
    for key, name in rows:
        if key in existing:
            continue
        c = LabelClass(dataset_id=dataset_id, key=key, display_name=name, position=next_pos)
        next_pos += 1
        existing[key] = c
        new.append(c)
    session.add_all(new)
    session.flush()
    return {k: c.id for k, c in existing.items()}


def image_by_external_id(session: Session, dataset_id: int, external_id: str) -> Image:
    img = session.scalar(
        select(Image).where(Image.dataset_id == dataset_id, Image.external_id == external_id)
    )
    if img is None:
        raise NotFoundError(f"image {external_id!r} does not exist in this dataset")
    return img


@dataclass(frozen=True)
class ImageLabels:
    """One image with its labels by state: class ids of positives, negatives; the rest are unknown."""

    image: Image
    positives: list[LabelClass]
    negatives: list[LabelClass]
    versions: dict[int, int]
    n_classes: int

    @property
    def n_unknown(self) -> int:
        return self.n_classes - len(self.positives) - len(self.negatives)


def image_labels(session: Session, image_id: int) -> ImageLabels:
    img = session.get(Image, image_id)
    if img is None:
        raise NotFoundError(f"image {image_id} does not exist")
    rows = session.execute(
        select(LabelClass, Label.value, Label.version)
        .join(Label, Label.class_id == LabelClass.id)
        .where(Label.image_id == image_id)
        .order_by(LabelClass.position)
    ).all()
    n_classes = session.scalar(
        select(func.count()).select_from(LabelClass).where(LabelClass.dataset_id == img.dataset_id)
    )
    return ImageLabels(
        image=img,
        positives=[c for c, v, _ in rows if v == 1],
        negatives=[c for c, v, _ in rows if v == 0],
        versions={c.id: ver for c, _, ver in rows},
        n_classes=int(n_classes or 0),
    )


__all__ = [
    "ImageLabels",
    "class_by_key",
    "classes",
    "ensure_classes",
    "get_dataset",
    "get_or_create_dataset",
    "image_by_external_id",
    "image_labels",
    "list_datasets",
    "search_classes",
]
