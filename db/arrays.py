"""A dataset's images, classes and labels read in bulk as NumPy arrays and lists (no ORM objects).

Rows are images ordered by id, columns are classes ordered by ``position``. The labels come as
the store holds them, sparse: one (row, column, value) triple per stored cell, value 1 (positive)
or 0 (negative); a cell without a triple is unknown. Memory is O(images + classes + stored
cells), never O(images × classes). :attr:`LabelArrays.targets` builds the dense matrix for small
data, with the caller's ``unknown`` value (``core.constants.UNKNOWN`` in the app).
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
        cell_rows: int64 (L,) row of each stored cell, ascending (row-major order with ``cell_cols``).
        cell_cols: int64 (L,) its class column.
        cell_values: int8 (L,) 1 = positive, 0 = negative.
        unknown: the int8 value :attr:`targets` gives cells without a label.
    """

    image_ids: np.ndarray
    external_ids: list[str]
    paths: list[str]
    splits: list[str]
    class_ids: np.ndarray
    class_keys: list[str]
    class_names: list[str]
    cell_rows: np.ndarray
    cell_cols: np.ndarray
    cell_values: np.ndarray
    unknown: int = -1

    @property
    def targets(self) -> np.ndarray:
        """int8 (N, C): 1 = positive, 0 = negative, ``unknown`` elsewhere (dense: small data only)."""
        out = np.full((len(self.image_ids), len(self.class_ids)), self.unknown, dtype=np.int8)
        out[self.cell_rows, self.cell_cols] = self.cell_values
        return out


def read_label_arrays(session: Session, dataset_id: int, *, unknown: int) -> LabelArrays:
    """Read every image, class and label of a dataset in three queries.

    Args:
        dataset_id: the dataset's database id.
        unknown: the int8 value of cells without a label (e.g. -1).

    Returns:
        :class:`LabelArrays` (sparse cells); an unknown dataset id gives N = C = 0.
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
    result = session.execute(
        select(Label.image_id, Label.class_id, Label.value)
        .join(LabelClass, LabelClass.id == Label.class_id)
        .where(LabelClass.dataset_id == dataset_id)
    )
    lab = np.fromiter(chain.from_iterable(result), dtype=np.int64).reshape(-1, 3)
    rows = np.zeros(0, dtype=np.int64)
    cols = np.zeros(0, dtype=np.int64)
    values = np.zeros(0, dtype=np.int8)
    if len(lab) and len(imgs) and len(cls):
        ri = np.searchsorted(image_ids, lab[:, 0])
        order = np.argsort(class_ids)
        ci = order[np.searchsorted(class_ids, lab[:, 1], sorter=order)]
        cell_order = np.argsort(ri * len(cls) + ci, kind="stable")
        rows, cols, values = ri[cell_order], ci[cell_order], lab[cell_order, 2].astype(np.int8)
    return LabelArrays(
        image_ids=image_ids,
        external_ids=[r[1] for r in imgs],
        paths=[r[2] for r in imgs],
        splits=[r[3] for r in imgs],
        class_ids=class_ids,
        class_keys=[r[1] for r in cls],
        class_names=[r[2] for r in cls],
        cell_rows=rows,
        cell_cols=cols,
        cell_values=values,
        unknown=unknown,
    )


__all__ = ["LabelArrays", "read_label_arrays"]
