"""Streaming top K: the best unknown cells from probabilities fed in row chunks.

:func:`top_unknown_chunks` (or :class:`StreamingTopK`) gives exactly what
:func:`core.ranking.top_unknown` gives on the stacked matrix — the same cells, scores and order
(ties by image index, then class index) — while holding O(chunk × C + K) instead of the ``(N, C)``
probabilities. :func:`ranker_params` computes a ranker's per-class parameters first (for
``calibrated`` a pass that keeps only the probabilities of :func:`core.ranking.calibration_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from core._validation import check_positive_int, check_prior, check_probs, check_same_shape, check_targets
from core.constants import UNKNOWN
from core.ranking import (
    DEFAULT_RANKER,
    Ranker,
    TopUnknown,
    _class_params,
    _ClassParams,
    _matching_ratio,
    _score_cells,
    _unknown_rate,
    calibration_rows,
)
from core.sparse_labels import SparseLabels

__all__ = ["RankerParams", "StreamingTopK", "ranker_params", "top_unknown_chunks"]

#: Cells sampled per chunk to estimate a score threshold in :class:`StreamingTopK`.
_STREAM_SAMPLE_CELLS: int = 1 << 16


class RankerParams(NamedTuple):
    """A ranker's per-class parameters over one whole matrix (from :func:`ranker_params`).

    ``score = p * value[c]`` (``kind`` ``"scale"``) or ``p / (p + (1 - p) * value[c])``
    (``"odds"``); the same numbers :func:`top_unknown` derives from the full matrix.
    """

    ranker: Ranker
    kind: str  #: "scale" or "odds"
    value: np.ndarray  #: float64 ``(C,)``


def ranker_params(
    targets: Any,
    priors: Any,
    *,
    ranker: str | Ranker = DEFAULT_RANKER,
    chunks: Iterable[tuple[int, Any]] | None = None,
) -> RankerParams:
    """The per-class parameters of ``ranker`` over a whole matrix, without holding its probabilities.

    ``probability``, ``lift`` and ``prior_shift`` need only the labels and priors (per-class label
    counts). ``calibrated`` also needs the probabilities of :func:`calibration_rows`: pass
    ``chunks``, a first pass over the matrix in row order, of which only those rows are kept.
    Memory: O(C + min(N, 4096) × C) besides the caller's chunk; equal, bit for bit, to what
    :func:`top_unknown` computes from the full matrix.

    Args:
        targets: ``(N, C)`` labels (1 / 0 / -1) of the whole matrix, dense int8 or
            :class:`~core.sparse_labels.SparseLabels` (counted in O(nnz)).
        priors: ``(C,)`` class priors in [0, 1]; may be None only for ``probability``.
        ranker: A :class:`Ranker`.
        chunks: ``(start row, probs (b, C))`` pieces covering rows 0..N-1 in order (only read for
            ``calibrated``; same dtype throughout).

    Returns:
        :class:`RankerParams` for :class:`StreamingTopK` / :func:`top_unknown_chunks`.

    Raises:
        ValueError: bad labels or priors, priors None for a ranker that needs them, or
            ``calibrated`` without ``chunks`` (or chunks out of order, or not covering every row).
    """
    t = targets if isinstance(targets, SparseLabels) else check_targets(targets)
    pr, r = _check_stream_ranker(priors, ranker, t.shape[1])
    if r is not Ranker.CALIBRATED or pr is None:
        # Only p's dtype is read for these rankers: float64 here, cast to the chunks' dtype later.
        params = _class_params(np.empty((0, t.shape[1])), t, pr, r)
        return RankerParams(r, params.kind, params.value.astype(np.float64))
    if chunks is None:
        raise ValueError(
            "ranker 'calibrated' fits its shift on the probabilities of calibration_rows(N); pass "
            "chunks= (a first pass over the probabilities) or use another ranker"
        )
    rows = calibration_rows(t.shape[0])
    sample: list[np.ndarray] = []
    seen, dtype = 0, None
    for start, probs in chunks:
        p = check_probs(probs, "probs chunk")
        _check_chunk_place(start, seen, p.shape[0], t.shape[0])
        dtype = _check_chunk_dtype(p, dtype)
        lo, hi = np.searchsorted(rows, [seen, seen + p.shape[0]])
        sample.append(p[rows[lo:hi] - seen])
        seen += p.shape[0]
    if seen != t.shape[0]:
        raise ValueError(f"the chunks cover rows 0..{seen - 1} of {t.shape[0]}; pass every row, in order")
    p_rows = np.concatenate(sample) if sample else np.empty((0, t.shape[1]), dtype=dtype or np.float64)
    t_rows = t.take(rows).dense() if isinstance(t, SparseLabels) else t[rows]
    ratio = _matching_ratio(p_rows, t_rows, _unknown_rate(t, pr))
    return RankerParams(r, "odds", ratio.astype(np.float64))


class StreamingTopK:
    """The ``k`` best unknown cells of a matrix fed in row chunks: :func:`top_unknown` without ``(N, C)``.

    :meth:`push` takes ``(start row, probs (b, C), targets (b, C))`` pieces in row order; each
    chunk is scored with the whole matrix's :class:`RankerParams`, its annotated cells are masked,
    and only cells better than the k-th best kept so far are considered (the k best of a chunk
    found by partitioning its candidates, then merged with the kept ones). The result equals
    :func:`top_unknown` on the stacked chunks: the same cells, scores and order (ties by image
    index, then class index), whatever the chunk sizes.

    Memory: O(b × C + k) — a score buffer ``(b, C)`` in the chunks' dtype and a bool buffer
    ``(b, C)``, reused from chunk to chunk, plus per chunk at most a quarter of its cells as int64
    positions and scores or one partitioned copy ``(b, C)``; kept: k cells of int64 index, score
    and probability. The caller's chunk itself is not kept. (For b = 27,962 rows × 600 classes in
    float32: 64 MiB + 16 MiB of buffers and at most 64 MiB more while a chunk is searched.)

    Example:
        >>> acc = StreamingTopK(2, ranker_params([[-1, -1], [1, -1]], None))
        >>> acc.push(0, np.array([[0.9, 0.2]]), np.array([[-1, -1]]))
        >>> acc.push(1, np.array([[0.6, 0.7]]), np.array([[1, -1]]))
        >>> top = acc.result()
        >>> top.img_idx.tolist(), top.cls_idx.tolist()
        ([0, 1], [0, 1])
    """

    def __init__(self, k: int, params: RankerParams) -> None:
        """Keep the best ``k`` (>= 0) cells, scored with ``params`` (:func:`ranker_params`)."""
        self.k = check_positive_int(k, "k", minimum=0)
        if not isinstance(params, RankerParams):
            raise ValueError(
                f"params must be RankerParams from core.ranking.ranker_params, got {type(params).__name__}"
            )
        self.params = params
        self.n_classes = len(params.value)
        #: Rows pushed so far (the next chunk must start here).
        self.rows = 0
        self._dtype: np.dtype | None = None
        self._chunk_params = _ClassParams(params.kind, params.value)
        self._idx = np.zeros(0, dtype=np.int64)  # flat cell index row * C + class
        self._score = np.zeros(0)
        self._prob = np.zeros(0)
        self._bound = -np.inf  # with k cells kept: the k-th best score (only a better cell enters)
        self._buffers: tuple[np.ndarray, np.ndarray] | None = None

    def push(self, start: int, probs: Any, targets: Any) -> None:
        """Score rows ``start .. start + b - 1`` and keep the best cells seen so far.

        Args:
            start: the chunk's first row; must equal :attr:`rows` (chunks in order, no gaps).
            probs: ``(b, C)`` model probabilities in [0, 1] of those rows (the dtype of the first
                chunk throughout: float32 or float64).
            targets: ``(b, C)`` labels (1 / 0 / -1) of those rows; only -1 cells are candidates.

        Raises:
            ValueError: out-of-order chunk, bad probabilities or labels, shapes that disagree, or
                a dtype other than the first chunk's.
        """
        p = check_probs(probs, "probs chunk")
        t = check_targets(targets, "targets chunk")
        check_same_shape(p, t, "probs chunk", "targets chunk")
        self._push(start, p, t)

    def _push(self, start: int, p: np.ndarray, t: np.ndarray) -> None:
        """:meth:`push` on checked ``p`` (float32/64) and ``t`` (int8) of the same shape."""
        _check_chunk_place(start, self.rows, p.shape[0], None)
        if p.shape[1] != self.n_classes:
            raise ValueError(
                f"probs chunk has {p.shape[1]} classes but the ranker params have {self.n_classes}; "
                "compute the params on the same classes"
            )
        if self._dtype is None:
            self._dtype = p.dtype
            self._chunk_params = _ClassParams(self.params.kind, self.params.value.astype(p.dtype))
            self._score = self._score.astype(p.dtype)
            self._prob = self._prob.astype(p.dtype)
        self._dtype = _check_chunk_dtype(p, self._dtype)
        self.rows += p.shape[0]
        if self.k == 0 or p.size == 0:
            return
        flat, eligible = self._scratch(p.size)
        if self._chunk_params.kind == "scale":
            np.multiply(p, self._chunk_params.value, out=flat.reshape(p.shape))
        else:
            flat[:] = _score_cells(p, slice(None), self._chunk_params).ravel()
        np.not_equal(t.ravel(), UNKNOWN, out=eligible)
        np.putmask(flat, eligible, -np.inf)  # annotated cells
        np.greater(flat, self._bound, out=eligible)  # the bound is -inf until k are kept
        n_eligible = int(np.count_nonzero(eligible))
        if n_eligible == 0:
            return
        if n_eligible <= self.k:
            pos = np.flatnonzero(eligible)
        else:
            pos = _k_best_positions(flat, eligible, n_eligible, self.k)
        self._merge(start * self.n_classes + pos, flat[pos], p.ravel()[pos])

    def _scratch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Score (chunks' dtype) and bool buffers of ``size`` cells, reused from chunk to chunk."""
        if self._buffers is None or self._buffers[0].size < size:
            self._buffers = (np.empty(size, dtype=self._dtype), np.empty(size, dtype=bool))
        return self._buffers[0][:size], self._buffers[1][:size]

    def _merge(self, idx: np.ndarray, score: np.ndarray, prob: np.ndarray) -> None:
        """Add candidates (all after the kept cells in row order) and keep the k best."""
        idx = np.concatenate([self._idx, idx])
        score = np.concatenate([self._score, score])
        prob = np.concatenate([self._prob, prob])
        if idx.size > self.k:
            keep = _k_best_cells(score, idx, self.k)
            idx, score, prob = idx[keep], score[keep], prob[keep]
        self._idx, self._score, self._prob = idx, score, prob
        if idx.size == self.k:
            self._bound = score.min()

    def _order(self) -> np.ndarray:
        return np.lexsort((self._idx, -self._score))

    def result(self) -> TopUnknown:
        """The kept cells, best first (ties by image, then class): :class:`TopUnknown` of length
        ``min(k, #unknown cells pushed)``, scores in the chunks' dtype."""
        order = self._order()
        img, cls = np.divmod(self._idx[order], max(1, self.n_classes))
        return TopUnknown(img.astype(np.int64), cls.astype(np.int64), self._score[order])

    def probs(self) -> np.ndarray:
        """The probabilities of :meth:`result`'s cells in the same order, ``(K,)`` in the chunks' dtype
        (taken from the chunk each cell came from)."""
        return self._prob[self._order()]


def top_unknown_chunks(
    chunks: Iterable[tuple[int, Any]],
    targets: Any,
    priors: Any,
    k: int,
    *,
    ranker: str | Ranker = DEFAULT_RANKER,
    class_params: RankerParams | None = None,
) -> TopUnknown:
    """:func:`top_unknown` over probabilities given in row chunks: no ``(N, C)`` float array is built.

    One pass over ``chunks`` for ``probability``, ``lift`` and ``prior_shift``. ``calibrated``
    needs ``class_params`` from a first pass (:func:`ranker_params` with ``chunks=``).
    Memory: O(b × C + k) for chunks of b rows (see :class:`StreamingTopK`), besides ``targets``.

    Args:
        chunks: ``(start row, probs (b, C))`` pieces covering rows 0..N-1 in order.
        targets: ``(N, C)`` labels (1 / 0 / -1) of the whole matrix, dense int8 or
            :class:`~core.sparse_labels.SparseLabels` (counted in O(nnz)).
        priors: ``(C,)`` class priors in [0, 1] (may be None for ``probability``).
        k: Number of cells wanted (>= 0); fewer if there are fewer unknown cells.
        ranker: A :class:`Ranker`; default :data:`DEFAULT_RANKER`.
        class_params: precomputed :func:`ranker_params` for ``ranker`` (required for ``calibrated``).

    Returns:
        :class:`TopUnknown`, equal to ``top_unknown(np.concatenate(probs), targets, priors, k)``.

    Raises:
        ValueError: bad input (as :func:`top_unknown`), chunks out of order or not covering every
            row, or ``class_params`` missing (``calibrated``) or made for another ranker or class count.

    Example:
        >>> p = np.array([[0.9, 0.2], [0.6, 0.7]])
        >>> t = np.array([[-1, -1], [1, -1]])
        >>> top_unknown_chunks([(0, p[:1]), (1, p[1:])], t, None, 2).cls_idx
        array([0, 1])
    """
    t = check_targets(targets)
    k = check_positive_int(k, "k", minimum=0)
    if class_params is None:
        params = ranker_params(t, priors, ranker=ranker)
    else:
        _, r = _check_stream_ranker(priors, ranker, t.shape[1])
        if not isinstance(class_params, RankerParams) or class_params.ranker is not r:
            raise ValueError(
                f"class_params must be RankerParams of ranker {r.value!r} (core.ranking.ranker_params)"
            )
        if len(class_params.value) != t.shape[1]:
            raise ValueError(
                f"class_params has {len(class_params.value)} classes but targets has {t.shape[1]}"
            )
        params = class_params
    acc = StreamingTopK(k, params)
    for start, probs in chunks:
        p = check_probs(probs, "probs chunk")
        _check_chunk_place(start, acc.rows, p.shape[0], t.shape[0])
        acc._push(start, p, t[start : start + p.shape[0]])  # t is checked, and p's shape by it
    if acc.rows != t.shape[0]:
        raise ValueError(f"the chunks cover rows 0..{acc.rows - 1} of {t.shape[0]}; pass every row, in order")
    return acc.result()


def _check_stream_ranker(
    priors: Any, ranker: str | Ranker, n_classes: int
) -> tuple[np.ndarray | None, Ranker]:
    r = Ranker.from_str(ranker)
    if priors is None:
        if r is not Ranker.PROBABILITY:
            raise ValueError(
                f"ranker {r.value!r} needs class priors; pass priors or use ranker='probability'"
            )
        return None, r
    return check_prior(priors, n_classes, name="priors"), r


def _check_chunk_place(start: Any, expected: int, size: int, n_rows: int | None) -> None:
    """Raise unless a chunk of ``size`` rows starts at row ``expected`` (and ends by ``n_rows``)."""
    if isinstance(start, bool) or not isinstance(start, int | np.integer):
        raise ValueError(f"a chunk's start row must be an integer, got {start!r}")
    if start != expected:
        raise ValueError(
            f"a chunk starts at row {start} but the next row due is {expected}; "
            "pass chunks in row order, without gaps or overlaps"
        )
    if n_rows is not None and start + size > n_rows:
        raise ValueError(f"a chunk covers rows {start}..{start + size - 1} but targets has {n_rows} rows")


def _check_chunk_dtype(p: np.ndarray, dtype: np.dtype | None) -> np.dtype:
    if dtype is not None and p.dtype != dtype:
        raise ValueError(
            f"a probs chunk is {p.dtype} but the first chunk was {dtype}; pass every chunk in one dtype"
        )
    return p.dtype


def _k_best_positions(flat: np.ndarray, eligible: np.ndarray, n_eligible: int, k: int) -> np.ndarray:
    """Positions of the ``k`` largest values where ``eligible`` (1 <= k < n_eligible; ties by
    position), unordered. ``eligible`` (bool, like ``flat``) is overwritten.

    Only candidates are partitioned: the eligible cells when at most a quarter of ``flat``, else the
    cells at or above a threshold estimated on an evenly spaced sample. That is exact whenever at
    least k cells reach the threshold (the k-th best is then at or above it, so every cell left out
    scores below it); otherwise the whole of ``flat`` is partitioned. Memory: a quarter of ``flat``'s
    size in int64 positions and float values at most, or one partitioned copy of ``flat``.
    """
    size = flat.size
    limit = size // 4
    if n_eligible > limit:
        stride = max(1, size // _STREAM_SAMPLE_CELLS)
        sample = flat[::stride][eligible[::stride]]
        k_s = int(2.0 * k / stride + 4.0 * np.sqrt(k / stride) + 16)
        n_above = 0
        if k_s < sample.size:  # the threshold is an eligible value: above the bound, finite
            threshold = np.partition(sample, sample.size - k_s)[sample.size - k_s]
            np.greater_equal(flat, threshold, out=eligible)
            n_above = int(np.count_nonzero(eligible))
        if not k <= n_above <= limit:
            kth = np.partition(flat, size - k)[size - k]
            greater = np.flatnonzero(flat > kth)
            ties = np.flatnonzero(flat == kth)[: k - greater.size]
            return np.concatenate([greater, ties])
    cand = np.flatnonzero(eligible)
    values = flat[cand]
    kth = np.partition(values, values.size - k)[values.size - k]
    greater = cand[values > kth]
    ties = cand[values == kth][: k - greater.size]
    return np.concatenate([greater, ties])


def _k_best_cells(score: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best cells (1 <= k < size) by score desc, then cell index asc; unordered."""
    size = score.size
    kth = score[np.argpartition(score, size - k)[size - k]]
    greater = np.flatnonzero(score > kth)
    ties = np.flatnonzero(score == kth)
    ties = ties[np.argsort(idx[ties], kind="stable")[: k - greater.size]]
    return np.concatenate([greater, ties])
