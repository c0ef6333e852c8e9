"""A dataset's images, classes and labels read in bulk as NumPy arrays and lists (no ORM objects).

Rows are images ordered by id, columns are classes ordered by ``position``. Stored cells are
1 (positive) or 0 (negative); every other cell gets the caller's ``unknown`` value, so the
encoding of unknown stays with the caller (``core.constants.UNKNOWN`` in the app).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from db.models import Image, Label, LabelClass


@dataclass(frozen=True)
class LabelArrays:
    """A dataset's labels as arrays.

    Attributes:
        image_ids: database ids, int64 (N,), ascending.
        external_ids: image identifiers (e.g. OpenImages ImageID), length N.
        paths: image paths relative to the dataset's ``image_root``, length N.
        splits: ``"train"`` / ``"val"`` / ``"test"`` as plain ``str``, length N.
        class_ids: database ids, int64 (C,), in column order.
        class_keys, class_names: identifiers and display names, length C.
        targets: int8 (N, C): 1 = positive, 0 = negative, the caller's ``unknown`` elsewhere.
    """

    image_ids: np.ndarray
    external_ids: list[str]
    paths: list[str]
    splits: list[str]
    class_ids: np.ndarray
    class_keys: list[str]
    class_names: list[str]
    targets: np.ndarray


def read_label_arrays(session: Session, dataset_id: int, *, unknown: int) -> LabelArrays:
    """Read every image, class and label of a dataset in three queries.

    Args:
        dataset_id: the dataset's database id.
        unknown: the int8 value of cells without a label (e.g. -1).

    Returns:
        :class:`LabelArrays`; an unknown dataset id gives N = C = 0.
    """
    imgs = session.execute(
        select(Image.id, Image.external_id, Image.path, type_coerce(Image.split, String))
        .where(Image.dataset_id == dataset_id)
        .order_by(Image.id)
    ).all()
    cls = session.execute(
        select(LabelClass.id, LabelClass.key, LabelClass.display_name)
        .where(LabelClass.dataset_id == dataset_id)
        .order_by(LabelClass.position)
    ).all()
    image_ids = np.fromiter((r[0] for r in imgs), dtype=np.int64, count=len(imgs))
    class_ids = np.fromiter((r[0] for r in cls), dtype=np.int64, count=len(cls))
    targets = np.full((len(imgs), len(cls)), unknown, dtype=np.int8)
    result = session.execute(
        select(Label.image_id, Label.class_id, Label.value)
        .join(LabelClass, LabelClass.id == Label.class_id)
        .where(LabelClass.dataset_id == dataset_id)
    )
    lab = np.fromiter(chain.from_iterable(result), dtype=np.int64).reshape(-1, 3)
    if len(lab) and len(imgs) and len(cls):
        ri = np.searchsorted(image_ids, lab[:, 0])
        order = np.argsort(class_ids)
        ci = order[np.searchsorted(class_ids, lab[:, 1], sorter=order)]
        targets[ri, ci] = lab[:, 2].astype(np.int8)
    return LabelArrays(
        image_ids=image_ids,
        external_ids=[r[1] for r in imgs],
        paths=[r[2] for r in imgs],
        splits=[r[3] for r in imgs],
        class_ids=class_ids,
        class_keys=[r[1] for r in cls],
        class_names=[r[2] for r in cls],
        targets=targets,
    )


__all__ = ["LabelArrays", "read_label_arrays"]
