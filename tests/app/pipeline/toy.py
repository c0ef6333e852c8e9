"""A small dataset as arrays with embeddings made from its truth: step tests without images or a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.pipeline.config import CycleConfig
from app.pipeline.fit import Scorer
from app.pipeline.load import DatasetArrays
from core.sparse_labels import SparseLabels

N_TRAIN, N_VAL, N_CLASSES, DIM = 48, 12, 3, 8


def toy_arrays(
    seed: int = 0, *, n_train: int = N_TRAIN, n_val: int = N_VAL
) -> tuple[DatasetArrays, np.ndarray]:
    """(DatasetArrays with half the cells unknown, (N, D) float32 embeddings that carry the truth)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    truth = (rng.random((n, N_CLASSES)) < np.array([0.5, 0.3, 0.15])).astype(np.int8)
    targets = np.where(rng.random((n, N_CLASSES)) < 0.5, truth, -1).astype(np.int8)
    features = np.concatenate([2.0 * truth, rng.standard_normal((n, DIM - N_CLASSES))], axis=1).astype(
        np.float32
    )
    data = DatasetArrays(
        dataset_id=1,
        name="toy",
        image_root=Path("/nonexistent"),
        image_ids=np.arange(1, n + 1, dtype=np.int64),
        external_ids=[f"img{i}" for i in range(n)],
        paths=[f"img{i}.jpg" for i in range(n)],
        splits=np.asarray(["train"] * n_train + ["val"] * n_val, dtype=object),
        class_ids=np.arange(10, 10 + N_CLASSES, dtype=np.int64),
        class_keys=[f"/m/k{j}" for j in range(N_CLASSES)],
        class_names=[f"class {j}" for j in range(N_CLASSES)],
        targets=SparseLabels.from_dense(targets),
    )
    return data, features


def toy_scorer(work_dir: Path, seed: int = 0, **config: Any) -> Scorer:
    """A head-mode :class:`Scorer` whose features stage is done (the toy embeddings)."""
    data, features = toy_arrays(seed)
    cfg = CycleConfig(**{"dataset": "toy", "epochs": 4, "device": "cpu", "workers": 0, **config})
    work_dir.mkdir(parents=True, exist_ok=True)
    return Scorer(cfg, data, work_dir, work_dir / "cache", features=features,
                  feature_row=np.arange(data.n_images, dtype=np.int64))  # fmt: skip


def split_rows(scorer: Scorer) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows), int64."""
    return (np.flatnonzero(scorer.data.split_mask("train")), np.flatnonzero(scorer.data.split_mask("val")))
