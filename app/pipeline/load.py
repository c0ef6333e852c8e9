"""Load a dataset's partial labels from the store as arrays for core/.

Targets stay sparse, as the store holds them: :class:`core.sparse_labels.SparseLabels` (CSR of the
annotated cells, 1 = positive / 0 = negative; a cell not held is -1 = unknown). Memory is
O(images + classes + annotated cells): 2M images × 9,605 classes with 8 labels per image take
~0.2 GB, where the dense int8 matrix would take 19 GB. Rows are images ordered by id, columns are
classes ordered by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from core.constants import UNKNOWN
from core.sparse_labels import SparseLabels
from db.arrays import read_label_arrays
from db.models import Dataset


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
        targets: (N, C) sparse labels, 1 / 0 / -1 (``targets.dense(start, stop)`` gives int8 rows).
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
    targets: SparseLabels

    def dense_targets(self, rows: np.ndarray | None = None) -> np.ndarray:
        """int8 (len(rows), C) (all rows when None) of 1 / 0 / -1: for small data and tests only."""
        return self.targets.dense() if rows is None else self.targets.take(rows).dense()

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
    arrays = read_label_arrays(session, dataset.id, unknown=UNKNOWN)
    shape = (len(arrays.image_ids), len(arrays.class_ids))
    return DatasetArrays(
        dataset_id=dataset.id,
        name=dataset.name,
        image_root=Path(dataset.image_root),
        image_ids=arrays.image_ids,
        external_ids=arrays.external_ids,
        paths=arrays.paths,
        splits=np.asarray(arrays.splits, dtype=object),
        class_ids=arrays.class_ids,
        class_keys=arrays.class_keys,
        class_names=arrays.class_names,
        targets=SparseLabels.from_cells(arrays.cell_rows, arrays.cell_cols, arrays.cell_values, shape),
    )


__all__ = ["DatasetArrays", "load_dataset"]
