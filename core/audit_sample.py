"""The audit sample: unknown cells drawn uniformly at random, whatever their score.

Reviewed, they estimate each class's missing-positive rate and the ranking's precision without
bias (``app.pipeline.audit`` interleaves them with the ranked queue).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core._validation import check_positive_int, check_targets
from core.constants import UNKNOWN
from core.ranking import _COUNT_BLOCK
from core.sparse_labels import LabelMatrix, SparseLabels, dense_rows

__all__ = ["audit_sample"]

#: :func:`audit_sample` draws ranks with ``Generator.choice`` (O(k) memory: Floyd's algorithm) when
#: k <= #unknown / this, or when #unknown <= ``_AUDIT_DENSE_CELLS`` (numpy then shuffles an
#: index array of #unknown int64); otherwise it keeps the k smallest random keys, block by block.
_AUDIT_SPARSE_RATIO: int = 50
_AUDIT_DENSE_CELLS: int = 1 << 22
#: Cells per block in :func:`audit_sample`'s block paths (rows x C about this many).
_AUDIT_BLOCK_CELLS: int = 1 << 20


def audit_sample(targets: Any, k: int, seed: int | Sequence[int] = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` unknown cells drawn uniformly at random without replacement (the audit sample).

    Every set of ``k`` distinct unknown cells is equally likely, whatever the model scores them, and
    the cells come in a uniformly random order. Memory stays O(N + k + block) for any matrix: no
    ``(N * C)`` index array is built (ranks among the unknown cells are drawn with
    ``numpy.random.Generator.choice`` and mapped to cells through per-row counts, or, when ``k`` is a
    large share of a large matrix, the ``k`` smallest of random keys are kept block by block).

    Args:
        targets: ``(N, C)`` labels (1 positive / 0 negative / -1 unknown), dense int8 or
            :class:`~core.sparse_labels.SparseLabels` (same cells drawn); only -1 cells are drawn.
        k: Number of cells wanted (>= 0); capped at the number of unknown cells.
        seed: Seed of ``numpy.random.default_rng``: an int >= 0 or a sequence of them (e.g.
            ``(cycle seed, run id)`` for a fresh sample per run). The same seed and targets give
            the same cells in the same order.

    Returns:
        ``(img_idx, cls_idx)``: int64 ``(min(k, #unknown),)`` row and column indices, in draw order.

    Raises:
        ValueError: ``targets`` is not a (N, C) label matrix, ``k`` is not an integer >= 0, or
            ``seed`` is not a non-negative integer (or a sequence of them).

    Example:
        >>> t = np.array([[1, -1, 0], [-1, -1, 1]])
        >>> img, cls = audit_sample(t, 5, seed=0)
        >>> sorted(zip(img.tolist(), cls.tolist()))
        [(0, 1), (1, 0), (1, 1)]
    """
    t = targets if isinstance(targets, SparseLabels) else check_targets(targets)
    k = check_positive_int(k, "k", minimum=0)
    rng = np.random.default_rng(_check_seed(seed))
    per_row = _unknown_per_row(t)
    n_unknown = int(per_row.sum())
    k = min(k, n_unknown)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if k * _AUDIT_SPARSE_RATIO <= n_unknown or n_unknown <= _AUDIT_DENSE_CELLS:
        ranks = rng.choice(n_unknown, size=k, replace=False, shuffle=True).astype(np.int64)
        return _cells_of_ranks(t, per_row, ranks)
    return _smallest_keys(t, k, rng)


def _check_seed(seed: Any) -> int | list[int]:
    """``seed`` as an int >= 0 or a non-empty list of them (what ``default_rng`` takes)."""

    def is_count(x: Any) -> bool:
        return isinstance(x, int | np.integer) and not isinstance(x, bool) and x >= 0

    if is_count(seed):
        return int(seed)
    if isinstance(seed, Sequence) and not isinstance(seed, str) and seed and all(is_count(x) for x in seed):
        return [int(x) for x in seed]
    raise ValueError(f"seed must be an integer >= 0 or a sequence of them, got {seed!r}")


def _unknown_per_row(t: LabelMatrix) -> np.ndarray:
    """Unknown cells per row, int64 ``(N,)``, counted in row blocks (no ``(N, C)`` temporary)."""
    if isinstance(t, SparseLabels):
        return t.n_classes - np.diff(t.indptr)
    out = np.zeros(t.shape[0], dtype=np.int64)
    for start in range(0, t.shape[0], _COUNT_BLOCK):
        block = t[start : start + _COUNT_BLOCK]
        out[start : start + len(block)] = (block == UNKNOWN).sum(axis=1)
    return out


def _cells_of_ranks(t: LabelMatrix, per_row: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unknown cells with the given ranks in row-major order: the r-th unknown cell for each r."""
    ends = np.cumsum(per_row)
    img = np.searchsorted(ends, ranks, side="right").astype(np.int64)
    offset = ranks - (ends[img] - per_row[img])  # 0-based index among the row's unknown cells
    cls = np.empty(len(ranks), dtype=np.int64)
    chunk = max(1, _AUDIT_BLOCK_CELLS // max(1, t.shape[1]))
    for start in range(0, len(ranks), chunk):
        rows = img[start : start + chunk]
        block = t.take(rows).dense() if isinstance(t, SparseLabels) else t[rows]
        seen = np.cumsum(block == UNKNOWN, axis=1, dtype=np.int32)  # unknown cells up to each column
        cls[start : start + chunk] = np.argmax(seen > offset[start : start + chunk, None], axis=1)
    return img, cls


def _smallest_keys(t: LabelMatrix, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The unknown cells with the ``k`` smallest i.i.d. uniform keys, ordered by key.

    Every unknown cell gets a key; a block's cells whose key is not below the k-th smallest key
    seen so far can never be among the k smallest and are dropped at once, so at most about
    ``2 k + block`` candidates are held.
    """
    n, c = t.shape
    keys = np.zeros(0, dtype=np.float64)
    flat = np.zeros(0, dtype=np.int64)
    bound = np.inf  # the k-th smallest key so far (once k are held)
    rows_per_block = max(1, _AUDIT_BLOCK_CELLS // c)
    for start in range(0, n, rows_per_block):
        r, col = np.nonzero(dense_rows(t, start, start + rows_per_block) == UNKNOWN)
        block_keys = rng.random(r.size)
        keep = block_keys < bound
        keys = np.concatenate([keys, block_keys[keep]])
        flat = np.concatenate([flat, (r[keep].astype(np.int64) + start) * c + col[keep]])
        if keys.size >= 2 * k:
            part = np.argpartition(keys, k - 1)[:k]
            keys, flat = keys[part], flat[part]
            bound = float(keys.max())
    order = np.argsort(keys, kind="stable")[:k]
    img, cls = np.divmod(flat[order], c)
    return img.astype(np.int64), cls.astype(np.int64)
