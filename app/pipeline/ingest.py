"""Create a dataset from arrays in one transaction (generated demo and benchmark data).

Files from users go through the importers in ``db.io``; this path takes data that is already in
memory (the synthetic generator's output) and bulk-loads it with the same audit trail: one
``label_event`` per annotated cell, reason ``import <source>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.constants import UNKNOWN
from db.bulk import load_rows
from db.datasets import ensure_classes, get_or_create_dataset
from db.models import Image, LabelSource, utcnow


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
    ds = get_or_create_dataset(session, name, image_root=image_root)
    existing = session.scalar(select(func.count()).select_from(Image).where(Image.dataset_id == ds.id))
    if existing:
        raise ValueError(f"dataset {name!r} already has {existing} images; choose another name")
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
    rows, cols = np.nonzero(t != UNKNOWN)
    values = t[rows, cols].astype(np.int64)
    img, cls = image_ids[rows].tolist(), class_ids[cols].tolist()
    src = LabelSource.IMPORT.value
    load_rows(
        session,
        "label",
        ["image_id", "class_id", "value", "source", "author", "created_at", "updated_at", "version"],
        ((i, c, v, src, author, now, now, 1) for i, c, v in zip(img, cls, values.tolist(), strict=True)),
    )
    session.execute(
        text(
            "INSERT INTO label_event (dataset_id, image_id, class_id, before, after, author, source, reason, "
            "created_at) SELECT :ds, l.image_id, l.class_id, NULL, l.value, l.author, l.source, :reason, "
            ":now FROM label l JOIN label_class c ON c.id = l.class_id WHERE c.dataset_id = :ds"
        ),
        {"ds": ds.id, "reason": f"import {source_name}", "now": now},
    )
    session.flush()
    return ds.id


__all__ = ["ingest_arrays"]
