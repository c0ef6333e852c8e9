"""Average precision and mean AP for partially annotated multi-label data (CSL.md, "Evaluation").

Ties: entries with equal scores form one threshold. Every positive inside a tie group gets the
precision measured at the end of the group (all tied entries counted), which is what
``sklearn.metrics.average_precision_score`` computes; the result therefore never depends on the
order of the input rows. (The reference code sorts with an unstable argsort and lets the order of
tied entries decide.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core._validation import check_labels_1d, check_same_shape, check_scores, check_targets
from core.constants import NEGATIVE, POSITIVE, UNKNOWN
from core.sparse_labels import SparseLabels, iter_row_blocks

__all__ = ["MapResult", "average_precision", "cell_scores", "full_map", "partial_map", "partial_map_cells"]

#: Cells processed per chunk by :func:`partial_map` (bounds memory to a few hundred MB).
_CHUNK_CELLS: int = 4_000_000


@dataclass(frozen=True)
class MapResult:
    """Mean average precision over the classes that can be evaluated.

    Attributes:
        map: Mean of ``per_class_ap`` over kept classes, in [0, 100] (NaN if none kept).
        per_class_ap: float64 ``(C,)``: AP of each class in [0, 100]; NaN for skipped classes.
        n_classes: Number of classes kept (with at least one annotated positive and negative).
    """

    map: float
    per_class_ap: np.ndarray
    n_classes: int


def average_precision(scores: Any, labels: Any) -> float:
    """Average precision of one ranking: mean precision at the rank of each positive.

    Args:
        scores: ``(N,)`` real scores, higher = more likely positive.
        labels: ``(N,)`` binary labels (0/1 or bool).

    Returns:
        AP in [0, 1]; NaN when there is no positive. Ties as in the module docstring.

    Example:
        >>> average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
        0.8333333333333333
    """
    s = check_scores(scores, ndim=1)
    y = check_labels_1d(labels)
    check_same_shape(s, y, "scores", "labels")
    if not y.any():
        return float("nan")
    t = np.where(y, POSITIVE, NEGATIVE).astype(np.int8)[:, None]
    return float(_partial_ap(s[:, None], t)[0])


def partial_map(scores: Any, targets: Any) -> MapResult:
    """Mean AP using only annotated entries (CSL.md, "Evaluation with partial labels").

    For each class keep its annotated entries (target != -1); skip the class when it has no
    annotated positive or no annotated negative; AP of the rest; mAP = 100 x mean over kept
    classes. Unknown cells are never scored as negatives.

    Args:
        scores: ``(N, C)`` real scores (probabilities or logits), higher = more likely positive;
            with sparse ``targets`` also a :class:`core.sparse_labels.RowBlocks` (read once, by
            row blocks).
        targets: ``(N, C)`` labels: 1 positive, 0 negative, -1 unknown; dense int8 or
            :class:`core.sparse_labels.SparseLabels` (then memory is O(annotated cells + block × C)
            and the result equals the dense one exactly).

    Returns:
        :class:`MapResult`.

    Example:
        >>> r = partial_map(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.7]]),
        ...                 np.array([[1, 0], [0, -1], [-1, 1]]))
        >>> r.map, r.n_classes
        (100.0, 2)
    """
    if isinstance(targets, SparseLabels):
        return partial_map_cells(cell_scores(scores, targets), targets)
    s = check_scores(scores)
    t = check_targets(targets)
    check_same_shape(s, t, "scores", "targets")
    n_pos = (t == POSITIVE).sum(axis=0)
    n_neg = (t == NEGATIVE).sum(axis=0)
    keep = (n_pos > 0) & (n_neg > 0)
    ap = np.full(t.shape[1], np.nan)
    cols = np.flatnonzero(keep)
    step = max(1, _CHUNK_CELLS // max(1, t.shape[0]))
    for start in range(0, cols.size, step):
        sel = cols[start : start + step]
        ap[sel] = 100.0 * _partial_ap(s[:, sel], t[:, sel])
    n_kept = int(keep.sum())
    return MapResult(
        map=float(ap[keep].mean()) if n_kept else float("nan"), per_class_ap=ap, n_classes=n_kept
    )


def cell_scores(scores: Any, labels: SparseLabels, block_rows: int = 8_192) -> np.ndarray:
    """float64 ``(nnz,)``: the score of each annotated cell of ``labels``, in its CSR order.

    Args:
        scores: ``(N, C)`` array or :class:`core.sparse_labels.RowBlocks`, read in blocks of
            ``block_rows`` rows (each row block once); row blocks with a ``cells(labels)`` method
            (float ``(nnz,)`` in CSR order) are asked for the cells alone.
        labels: the cells to read.

    Raises:
        ValueError: shapes differ, or a score is NaN or inf.
    """
    n, c = labels.shape
    if tuple(scores.shape) != (n, c):
        raise ValueError(f"scores has shape {tuple(scores.shape)}, labels {(n, c)}; they must match")
    cells = getattr(scores, "cells", None)
    if callable(cells):  # row blocks that can score the cells alone (O(cells), no (N, C) pass)
        out = np.asarray(cells(labels), dtype=np.float64)
        if out.shape != (labels.nnz,):
            raise ValueError(f"scores.cells returned shape {out.shape}, expected ({labels.nnz},)")
        if out.size and not np.all(np.isfinite(out)):
            raise ValueError("scores holds NaN or inf at an annotated cell")
        return out
    out = np.empty(labels.nnz, dtype=np.float64)
    for start, stop in iter_row_blocks(n, block_rows):
        lo, hi = int(labels.indptr[start]), int(labels.indptr[stop])
        if hi == lo:
            continue
        block = np.asarray(scores[start:stop])
        rows = np.repeat(np.arange(stop - start), np.diff(labels.indptr[start : stop + 1]))
        out[lo:hi] = block[rows, labels.indices[lo:hi]]
    if out.size and not np.all(np.isfinite(out)):
        raise ValueError("scores holds NaN or inf at an annotated cell")
    return out


def partial_map_cells(scores: Any, labels: SparseLabels) -> MapResult:
    """:func:`partial_map` from the scores of the annotated cells alone (O(nnz log nnz), no ``(N, C)``).

    Args:
        scores: float ``(nnz,)``, the score of each cell of ``labels`` in its CSR order
            (:func:`cell_scores`).
        labels: the annotated cells (1 / 0).

    Returns:
        :class:`MapResult`, equal to ``partial_map(dense scores, labels.dense())``.
    """
    s = check_scores(scores, ndim=1)
    if len(s) != labels.nnz:
        raise ValueError(f"scores has {len(s)} values for {labels.nnz} annotated cells")
    c = labels.n_classes
    cls = labels.indices.astype(np.int64)
    pos = labels.values == POSITIVE
    n_pos = np.bincount(cls[pos], minlength=c)
    n_neg = np.bincount(cls[~pos], minlength=c)
    keep = (n_pos > 0) & (n_neg > 0)
    ap = np.full(c, np.nan)
    sel = keep[cls]
    s, cls, pos = s[sel], cls[sel], pos[sel]
    if len(s):
        order = np.lexsort((-s, cls))  # by class, then score descending
        s, cls, pos = s[order], cls[order], pos[order]
        m = len(s)
        start = np.flatnonzero(np.r_[True, cls[1:] != cls[:-1]])
        seg = np.repeat(start, np.diff(np.r_[start, m]))  # first index of each cell's class
        tp = np.cumsum(pos, dtype=np.int64)
        tp_before = np.where(seg > 0, tp[seg - 1], 0)
        # Last index of each cell's tie group (same class and score).
        boundary = np.ones(m, dtype=bool)
        boundary[:-1] = (s[1:] != s[:-1]) | (cls[1:] != cls[:-1])
        marks = np.where(boundary, np.arange(m), m)
        group_end = np.minimum.accumulate(marks[::-1])[::-1]
        tp_end = tp[group_end] - tp_before
        seen_end = group_end - seg + 1
        precision = np.where(pos, tp_end / seen_end, 0.0)
        ap_sum = np.bincount(cls, weights=precision, minlength=c)
        ap[keep] = 100.0 * ap_sum[keep] / n_pos[keep]
    n_kept = int(keep.sum())
    return MapResult(
        map=float(ap[keep].mean()) if n_kept else float("nan"), per_class_ap=ap, n_classes=n_kept
    )


def full_map(scores: Any, targets: Any) -> MapResult:
    """Mean AP on a fully labelled set (targets only 1 and 0).

    Same computation and skipping rule as :func:`partial_map` (a class with no positive or no
    negative has no meaningful AP and is skipped).

    Args:
        scores: ``(N, C)`` real scores, higher = more likely positive.
        targets: ``(N, C)`` labels in {1, 0}.

    Returns:
        :class:`MapResult`.

    Raises:
        ValueError: If targets contain unknown (-1) entries.
    """
    t = check_targets(targets)
    if (t == UNKNOWN).any():
        raise ValueError(
            f"targets hold {int((t == UNKNOWN).sum())} unknown (-1) entries; use partial_map for partial labels"
        )
    return partial_map(scores, t)


def _partial_ap(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """AP in [0, 1] per column over annotated entries, ties grouped; columns need >= 1 positive.

    Args:
        s: float64 ``(N, K)`` scores.
        t: int8 ``(N, K)`` labels (1 / 0 / -1).

    Returns:
        float64 ``(K,)``.
    """
    n = s.shape[0]
    order = np.argsort(-s, axis=0, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=0)
    t_sorted = np.take_along_axis(t, order, axis=0)
    pos = t_sorted == POSITIVE
    tp = np.cumsum(pos, axis=0, dtype=np.int64)
    seen = np.cumsum(t_sorted != UNKNOWN, axis=0, dtype=np.int64)
    # Index of the last entry of each entry's tie group: the nearest boundary at or after it.
    boundary = np.ones_like(pos)
    boundary[:-1] = s_sorted[1:] != s_sorted[:-1]
    marks = np.where(boundary, np.arange(n)[:, None], n)
    group_end = np.minimum.accumulate(marks[::-1], axis=0)[::-1]
    tp_end = np.take_along_axis(tp, group_end, axis=0)
    seen_end = np.take_along_axis(seen, group_end, axis=0)
    precision = np.divide(tp_end, seen_end, out=np.zeros(tp_end.shape), where=pos)
    return precision.sum(axis=0) / pos.sum(axis=0)
