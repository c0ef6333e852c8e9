"""Load a dataset's partial labels from the store as arrays for core/.

Targets use the one encoding: int8 (N, C) with 1 = positive, 0 = negative, -1 = unknown.
Rows are images ordered by id, columns are classes ordered by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.constants import UNKNOWN
from db.models import Dataset, Image, Label, LabelClass


@dataclass
class DatasetArrays:
    """A dataset's labels as arrays.

    Attributes:
        image_ids: database ids, int64 (N,).
        external_ids: image identifiers (e.g. OpenImages ImageID), length N.
        paths: image paths relative to ``image_root``, length N.
        splits: "train" / "val" / "test", length N.
        class_ids: database ids, int64 (C,), in column order.
        class_keys, class_names: identifiers and display names, length C.
        targets: int8 (N, C), 1 / 0 / -1.
    """

    dataset_id: int
    name: str
    image_root: Path
    image_ids: np.ndarray
    external_ids: list[str]
    paths: list[str]
    splits: np.ndarray
    class_ids: np.ndarray
    class_keys: list[str]
    class_names: list[str]
    targets: np.ndarray

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_classes(self) -> int:
        return len(self.class_ids)

    def split_mask(self, split: str) -> np.ndarray:
        """Boolean (N,) mask of images in ``split``."""
        return self.splits == split


def load_dataset(session: Session, dataset: Dataset) -> DatasetArrays:
    """Read every image, class and label of ``dataset`` into :class:`DatasetArrays`."""
    imgs = session.execute(
        select(Image.id, Image.external_id, Image.path, Image.split)
        .where(Image.dataset_id == dataset.id)
        .order_by(Image.id)
    ).all()
    cls = session.execute(
        select(LabelClass.id, LabelClass.key, LabelClass.display_name)
        .where(LabelClass.dataset_id == dataset.id)
        .order_by(LabelClass.position)
    ).all()
    image_ids = np.fromiter((r[0] for r in imgs), dtype=np.int64, count=len(imgs))
    class_ids = np.fromiter((r[0] for r in cls), dtype=np.int64, count=len(cls))
    targets = np.full((len(imgs), len(cls)), UNKNOWN, dtype=np.int8)
    result = session.execute(
        select(Label.image_id, Label.class_id, Label.value)
        .join(LabelClass, LabelClass.id == Label.class_id)
        .where(LabelClass.dataset_id == dataset.id)
    )
    lab = np.fromiter(chain.from_iterable(result), dtype=np.int64).reshape(-1, 3)
    if len(lab) and len(imgs) and len(cls):
        ri = np.searchsorted(image_ids, lab[:, 0])
        order = np.argsort(class_ids)
        ci = order[np.searchsorted(class_ids, lab[:, 1], sorter=order)]
        targets[ri, ci] = lab[:, 2].astype(np.int8)
    return DatasetArrays(
        dataset_id=dataset.id,
        name=dataset.name,
        image_root=Path(dataset.image_root),
        image_ids=image_ids,
        external_ids=[r[1] for r in imgs],
        paths=[r[2] for r in imgs],
        splits=np.asarray([r[3] for r in imgs], dtype=object),
        class_ids=class_ids,
        class_keys=[r[1] for r in cls],
        class_names=[r[2] for r in cls],
        targets=targets,
    )


__all__ = ["DatasetArrays", "load_dataset"]
