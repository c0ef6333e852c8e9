"""Create a dataset from data already in memory (generated demo and benchmark data), in one transaction.

Files from users go through the importers; this entry point takes images, classes and label
cells as sequences and arrays, and merges the cells through the same path as every importer
(:func:`db.io._merge.merge_cells`): labels are INSERTed with ``version`` 1 and one
``label_event`` per cell is written (``before`` NULL, source ``import``, reason
``import <source>``). Nothing is committed here.

Label encoding: cell values are 1 (positive) or 0 (negative); unknown cells are simply not given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.bulk import create_temp_table, dialect, load_rows
from db.datasets import ensure_classes, get_or_create_dataset
from db.io._merge import merge_cells
from db.io._sql import drop_temp
from db.models import Image, utcnow


def _check_cells(
    cell_images: np.ndarray, cell_classes: np.ndarray, cell_values: np.ndarray, n: int, c: int
) -> None:
    """Raise ValueError unless the cells are 1-D of one length, inside (n, c), 1 or 0, and distinct."""
    if not (cell_images.ndim == cell_classes.ndim == cell_values.ndim == 1):
        raise ValueError("cell_images, cell_classes and cell_values must be 1-D arrays")
    if not (len(cell_images) == len(cell_classes) == len(cell_values)):
        raise ValueError(
            f"cell_images, cell_classes and cell_values must have one length, got "
            f"{len(cell_images)}, {len(cell_classes)} and {len(cell_values)}"
        )
    if len(cell_values) == 0:
        return
    if cell_images.min() < 0 or cell_images.max() >= n:
        raise ValueError(f"cell_images must index the {n} images (0 to {n - 1})")
    if cell_classes.min() < 0 or cell_classes.max() >= c:
        raise ValueError(f"cell_classes must index the {c} classes (0 to {c - 1})")
    bad = (cell_values != 0) & (cell_values != 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"cell {i} has value {cell_values[i]}; label values are 1 (positive) or 0 (negative)"
        )
    key = np.sort(cell_images.astype(np.int64) * c + cell_classes)
    dup = key[1:] == key[:-1]
    if dup.any():
        k = int(key[1:][dup][0])
        raise ValueError(f"cell (image {k // c}, class {k % c}) is given twice; give each cell once")


def import_arrays(
    session: Session,
    dataset: str,
    *,
    image_root: str,
    external_ids: Sequence[str],
    paths: Sequence[str],
    splits: Sequence[str],
    class_keys: Sequence[str],
    class_names: Sequence[str],
    cell_images: np.ndarray,
    cell_classes: np.ndarray,
    cell_values: np.ndarray,
    author: str,
    source: str,
) -> int:
    """Create dataset ``dataset`` with its images, classes and labelled cells; returns the dataset id.

    Args:
        external_ids, paths, splits: per image, length N (paths relative to ``image_root``; splits
            ``train`` / ``val`` / ``test``).
        class_keys, class_names: per class, length C.
        cell_images, cell_classes: the labelled cells, shape (L,) int: row into the images (0..N-1)
            and column into the classes (0..C-1); each cell at most once.
        cell_values: shape (L,) int, 1 = positive, 0 = negative.
        author: recorded on labels and audit events.
        source: where the data comes from; events get the reason ``import <source>``.

    Raises:
        ValueError: the dataset already has images, or lengths, indices or values are wrong.

    Example:
        >>> import_arrays(s, "demo", image_root="/data/demo", external_ids=["a", "b"],
        ...               paths=["a.jpg", "b.jpg"], splits=["train", "val"], class_keys=["/m/cat"],
        ...               class_names=["Cat"], cell_images=np.array([0]), cell_classes=np.array([0]),
        ...               cell_values=np.array([1]), author="generator", source="demo")  # doctest: +SKIP
        1
    """
    n, c = len(external_ids), len(class_keys)
    if len(paths) != n or len(splits) != n:
        raise ValueError(
            f"external_ids, paths and splits must have one length, got {n}, {len(paths)}, {len(splits)}"
        )
    if len(class_names) != c:
        raise ValueError(f"class_keys and class_names must have one length, got {c} and {len(class_names)}")
    cell_images, cell_classes = (
        np.asarray(cell_images, dtype=np.int64),
        np.asarray(cell_classes, dtype=np.int64),
    )
    cell_values = np.asarray(cell_values)
    _check_cells(cell_images, cell_classes, cell_values, n, c)

    ds = get_or_create_dataset(session, dataset, image_root=image_root)
    existing = session.scalar(select(func.count()).select_from(Image).where(Image.dataset_id == ds.id))
    if existing:
        raise ValueError(f"dataset {dataset!r} already has {existing} images; choose another name")
    key_to_id = ensure_classes(session, ds.id, list(zip(class_keys, class_names, strict=True)))
    class_ids = np.array([key_to_id[k] for k in class_keys], dtype=np.int64)
    now = utcnow()
    load_rows(
        session,
        "image",
        ["dataset_id", "external_id", "path", "split", "created_at"],
        ((ds.id, e, p, s, now) for e, p, s in zip(external_ids, paths, splits, strict=True)),
    )
    id_of = dict(session.execute(select(Image.external_id, Image.id).where(Image.dataset_id == ds.id)).all())
    image_ids = np.array([id_of[e] for e in external_ids], dtype=np.int64)

    img, cls = image_ids[cell_images], class_ids[cell_classes]
    order = np.lexsort((cls, img))  # (image, class) order: the label primary key's
    _stage_cells(session, img[order], cls[order], cell_values[order].astype(np.int64))
    # Every image of the staged cells was registered above, in this transaction, so no other
    # writer can have labelled it: all cells are new and merge on the no-look-up path.
    new_images_above = int(image_ids.min()) - 1 if n else 0
    merge_cells(
        session, dataset_id=ds.id, author=author, file=source, now=now, new_images_above=new_images_above
    )
    drop_temp(session, "stage_cell")
    return ds.id


def _stage_cells(session: Session, image_ids: np.ndarray, class_ids: np.ndarray, values: np.ndarray) -> None:
    """Fill the temporary ``stage_cell(image_id, class_id, value, line, bad)`` that
    :func:`~db.io._merge.merge_cells` reads; ``line`` and ``bad`` stay NULL (cells are distinct)."""
    columns = [
        ("image_id", "BIGINT"),
        ("class_id", "BIGINT"),
        ("value", "SMALLINT"),
        ("line", "BIGINT"),
        ("bad", "BIGINT"),
    ]
    if dialect(session) == "sqlite":  # clustered on the cell, as the file importers stage it
        drop_temp(session, "stage_cell")
        session.connection().exec_driver_sql(
            "CREATE TEMP TABLE stage_cell (image_id INTEGER, class_id INTEGER, value INTEGER, "
            "line INTEGER, bad INTEGER, PRIMARY KEY (image_id, class_id)) WITHOUT ROWID"
        )
    else:
        create_temp_table(session, "stage_cell", columns)
    rows = zip(image_ids.tolist(), class_ids.tolist(), values.tolist(), strict=True)
    load_rows(session, "stage_cell", ["image_id", "class_id", "value"], rows)


__all__ = ["import_arrays"]
