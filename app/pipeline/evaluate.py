"""The evaluate step: partial mAP on the validation split (annotated cells only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.pipeline.fit import Fit, PredictedRows
from app.pipeline.load import DatasetArrays
from core.metrics import partial_map
from core.sparse_labels import LabelMatrix, RowBlocks, n_rows


@dataclass(frozen=True)
class Validation:
    """How well a model ranks the validation split's annotated cells.

    Attributes:
        map: partial mAP in [0, 100] over the classes with a positive and a negative annotated;
            NaN when there is no validation image.
        per_class_ap: (C,) float64 AP in [0, 1] per class; NaN where not measurable.
    """

    map: float
    per_class_ap: np.ndarray


def validate(probs: np.ndarray | RowBlocks, targets: LabelMatrix) -> Validation:
    """Partial mAP of ``probs`` (V, C) in [0, 1] against ``targets`` (V, C), 1 / 0 / -1.

    ``probs`` may be row blocks computed on demand and ``targets`` sparse: then only the annotated
    cells' scores are kept (memory O(annotated cells + block × C)).
    """
    if n_rows(targets) == 0:
        return Validation(float("nan"), np.full(targets.shape[1], np.nan))
    result = partial_map(probs, targets)
    return Validation(result.map, result.per_class_ap / 100.0)


def evaluate(fit: Fit, data: DatasetArrays, val: np.ndarray) -> Validation:
    """Score the validation rows ``val`` (int64) with ``fit`` and measure its partial mAP."""
    if len(val) == 0:
        return Validation(float("nan"), np.full(data.n_classes, np.nan))
    return validate(
        PredictedRows(fit.predict, val, data.n_classes, fit.predict_cells), data.targets.take(val)
    )


__all__ = ["Validation", "evaluate", "validate"]
