"""Create a dataset from arrays in one transaction (generated demo and benchmark data).

Files from users go through the importers in ``db.io``; this path takes data that is already in
memory (the synthetic generator's output) and hands its annotated cells to
:func:`db.io.arrays.import_arrays`, which merges them like every importer, with the same audit
trail: one ``label_event`` per annotated cell (``before`` unknown), reason ``import <source>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session

from core.constants import UNKNOWN
from db.io.arrays import import_arrays


def ingest_arrays(
    session: Session,
    name: str,
    *,
    image_root: str,
    external_ids: Sequence[str],
    paths: Sequence[str],
    splits: Sequence[str],
    class_keys: Sequence[str],
    class_names: Sequence[str],
    targets: np.ndarray,
    author: str = "generator",
    source_name: str = "generated data",
) -> int:
    """Create dataset ``name`` with its images, classes and labels; returns the dataset id.

    Args:
        external_ids, paths, splits: per image, length N (paths relative to ``image_root``).
        class_keys, class_names: per class, length C.
        targets: int8 (N, C), 1 / 0 / -1; only 1 and 0 cells are stored.

    Raises:
        ValueError: the dataset already has images, or shapes do not match.
    """
    t = np.asarray(targets)
    if t.shape != (len(external_ids), len(class_keys)):
        raise ValueError(f"targets must be (N, C) = ({len(external_ids)}, {len(class_keys)}), got {t.shape}")
    rows, cols = np.nonzero(t != UNKNOWN)
    return import_arrays(
        session,
        name,
        image_root=image_root,
        external_ids=external_ids,
        paths=paths,
        splits=splits,
        class_keys=class_keys,
        class_names=class_names,
        cell_images=rows,
        cell_classes=cols,
        cell_values=t[rows, cols],
        author=author,
        source=source_name,
    )


__all__ = ["ingest_arrays"]
