"""Estimators of the positive rate among each class's unknown cells, behind :func:`core.priors.model_prior`.

Every estimator takes

* ``p``: float ``(N, C)`` probabilities in [0, 1] of a temporary ``ignore``-mode model (cross-fitted:
  each image scored by a model that did not train on it), already validated;
* ``t``: int8 ``(N, C)`` targets, 1 positive / 0 negative / -1 unknown, of the same images;

and returns float64 ``(C,)`` in [0, 1]: ``pi_u``, the estimated share of positives among the class's
unknown cells (0 for a class without unknown cells). ``core.priors`` turns it into a prior
``(#annotated positives + #unknown * pi_u) / N``. Each assumes something about how the annotated
cells were chosen:

* :func:`random_rate` — annotation independent of the label (RPS): ``pi_u`` = the positive rate of
  the annotated cells. Exact in expectation under that assumption, badly wrong otherwise.
* :func:`adjusted_rate` — unknown cells differ from annotated ones only in their positive rate
  (label shift, e.g. FPC): adjusted classify-and-count. Unbiased there but noisy, since it divides
  by the separation of the model's scores.
* :func:`shrunk_rate` — as ``adjusted``, shrunk towards 0 (the naive count) by its estimated
  sampling variance: classes whose estimate is mostly noise fall back to counting.
* :func:`shifted_rate` — as ``adjusted`` with calibrated ``p``: Saerens et al.'s EM.

:func:`random_annotation_pvalue` tests, per dataset, whether the annotated cells can be a random
sample of each class's cells (then :func:`random_rate` applies). Private: helpers trust their inputs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from core.constants import NEGATIVE, POSITIVE, UNKNOWN
from core.sparse_labels import LabelMatrix, RowBlocks, SparseLabels, iter_row_blocks, label_counts

#: Probabilities as the estimators take them: a dense ``(N, C)`` array or lazily computed row blocks.
Probs = np.ndarray | RowBlocks
#: Per-class moments of ``p`` over positive / negative / unknown cells (keys 1 / 0 / -1).
ClassMoments = dict[int, "_Moments"]

#: Histogram bins per class used by :func:`shifted_rate` (bin means keep sum(p) exact).
_SHIFT_BINS: int = 1024
#: Bisection steps of :func:`shifted_rate` (interval [0, 1] halves each step).
_SHIFT_STEPS: int = 60
#: ``adjusted`` / ``shrunk`` give 0 when f1 - f0 is below this (the score does not separate).
MIN_SEPARATION: float = 0.01
#: Level of the random-annotation test used by ``auto`` (false rejections ≤ this under the null).
RANDOM_TEST_LEVEL: float = 0.01
#: Rows per block of :func:`class_moments` at most (float64 temporaries of a block's rows x C).
_BLOCK_ROWS: int = 8_192
#: At most this many cells per block (fewer rows when C is large: 2,097,152 / 9,605 = 218 rows).
_BLOCK_CELLS: int = 1 << 21
#: Cells a class needs on each side (annotated, unknown) to enter the random-annotation test.
_MIN_TEST_CELLS: int = 5


class _Moments(NamedTuple):
    """Per class: cell count ``n``, mean ``mean`` and sum of squared deviations ``m2``; float64 (C,)."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    def var(self) -> np.ndarray:
        """Sample variance (ddof 1); 0 for a class with fewer than two cells."""
        return np.divide(self.m2, self.n - 1.0, out=np.zeros_like(self.m2), where=self.n > 1)


def _combine(a: _Moments, b: _Moments) -> _Moments:
    """The moments of the union of two disjoint sets of cells (Chan et al.'s pairwise update)."""
    n = a.n + b.n
    share = np.divide(b.n, n, out=np.zeros_like(n), where=n > 0)
    delta = b.mean - a.mean
    return _Moments(n, a.mean + delta * share, a.m2 + b.m2 + delta**2 * a.n * share)


def _sparse_moments(values: np.ndarray, cols: np.ndarray, c: int) -> _Moments:
    """:class:`_Moments` of ``values`` grouped by class ``cols`` (two-pass, O(len(values)))."""
    k = np.bincount(cols, minlength=c).astype(np.float64)
    mean = np.divide(np.bincount(cols, weights=values, minlength=c), k, out=np.zeros(c), where=k > 0)
    return _Moments(k, mean, np.bincount(cols, weights=(values - mean[cols]) ** 2, minlength=c))


def class_moments(p: Probs, t: LabelMatrix) -> ClassMoments:
    """:class:`_Moments` of ``p`` over each class's positive, negative and unknown cells (keys 1 / 0 / -1).

    One pass over row blocks of at most :data:`_BLOCK_CELLS` cells, so memory is O(block) rather
    than O(N x C); ``p`` may be :class:`~core.sparse_labels.RowBlocks` (each block computed once,
    checked to lie in [0, 1]) and ``t`` :class:`~core.sparse_labels.SparseLabels` (its annotated
    cells read straight from the CSR arrays). Annotated cells (few) are gathered by index, two-pass
    within a block. Unknown cells (most) are every cell minus the annotated ones: per class the
    block's column sums and squared deviations from a shift ``a`` (the block's column mean), less
    the annotated cells' — ``sum_U (p - m_U)^2 = sum_U (p - a)^2 - n_U (m_U - a)^2`` — so no mask
    or (rows x C) float64 temporary is built. Blocks are combined by :func:`_combine`.
    """
    c = p.shape[1]
    zero = _Moments(np.zeros(c), np.zeros(c), np.zeros(c))
    out = {POSITIVE: zero, NEGATIVE: zero, UNKNOWN: zero}
    lazy = not isinstance(p, np.ndarray)
    block_rows = max(64, min(_BLOCK_ROWS, _BLOCK_CELLS // max(c, 1)))
    for start, stop in iter_row_blocks(p.shape[0], block_rows):
        pb = np.asarray(p[start:stop])
        if lazy and pb.size and not (float(pb.min()) >= 0.0 and float(pb.max()) <= 1.0):
            raise ValueError(
                f"probs rows {start}:{stop} hold values outside [0, 1] (or NaN); pass probabilities"
            )
        r, cols, vals = _annotated_cells(t, start, stop)
        pa = pb[r, cols].astype(np.float64)
        for value in (POSITIVE, NEGATIVE):
            sel = vals == value
            out[value] = _combine(out[value], _sparse_moments(pa[sel], cols[sel], c))
        n_rows = float(stop - start)
        total = pb.sum(axis=0, dtype=np.float64)
        shift = (total / n_rows).astype(pb.dtype)  # the block's column means, in p's precision
        dev = pb - shift
        square_all = np.einsum("ij,ij->j", dev, dev, dtype=np.float64)  # sum (p - a)^2, every cell
        shift64 = shift.astype(np.float64)
        k = n_rows - np.bincount(cols, minlength=c)
        sum_u = total - np.bincount(cols, weights=pa, minlength=c)
        square_u = square_all - np.bincount(cols, weights=(pa - shift64[cols]) ** 2, minlength=c)
        mean = np.divide(sum_u, k, out=np.zeros(c), where=k > 0)
        m2 = np.where(k > 0, np.maximum(square_u - k * (mean - shift64) ** 2, 0.0), 0.0)
        out[UNKNOWN] = _combine(out[UNKNOWN], _Moments(k, mean, m2))
    return out


def _annotated_cells(t: LabelMatrix, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows within the block, class columns, values) int64 / int64 / int8 of the annotated cells of rows ``start:stop``."""
    if isinstance(t, SparseLabels):
        lo, hi = int(t.indptr[start]), int(t.indptr[stop])
        r = np.repeat(np.arange(stop - start), np.diff(t.indptr[start : stop + 1]))
        return r, t.indices[lo:hi].astype(np.int64), t.values[lo:hi]
    tb = t[start:stop]
    r, cols = np.nonzero(tb != UNKNOWN)
    return r, cols, tb[r, cols]


def random_rate(p: Probs, t: LabelMatrix, moments: ClassMoments | None = None) -> np.ndarray:
    """``pi_u`` = positives / annotated cells of each class (``p`` is not used).

    Exact in expectation when whether a cell is annotated does not depend on its label (RPS: every
    label hidden independently with the same probability); biased by the annotators' choice
    otherwise (FPC's balanced annotations give ~0.5). A class without annotated cells or without
    unknown cells gets 0.

    Args:
        p: ``(N, C)`` probabilities (unused; kept for one signature).
        t: int8 ``(N, C)`` targets.

    Returns:
        float64 ``(C,)`` in [0, 1].

    Example:
        >>> t = np.array([[1, 0], [0, -1], [-1, -1], [1, 1]], dtype=np.int8)
        >>> random_rate(np.zeros((4, 2)), t).tolist()
        [0.6666666666666666, 0.5]
    """
    del p, moments
    n_pos, n_neg, n_unk = label_counts(t)
    n_ann = n_pos + n_neg
    rate = np.divide(n_pos, n_ann, out=np.zeros(len(n_pos)), where=n_ann > 0)
    return np.where(n_unk > 0, rate, 0.0)


def _adjusted_parts(
    p: Probs, t: LabelMatrix, moments: ClassMoments | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unclipped adjusted classify-and-count ``(m - f0) / (f1 - f0)``, its delta-method variance, usable.

    Returns:
        float64 ``(C,)`` estimate (0 where not usable), float64 ``(C,)`` variance, bool ``(C,)``
        usable: the class has an annotated positive and negative, an unknown cell, and
        ``f1 - f0 ≥`` :data:`MIN_SEPARATION`. ``moments``: :func:`class_moments` of ``(p, t)``
        when already computed (saves a pass over ``p``).
    """
    moments = class_moments(p, t) if moments is None else moments
    pos, neg, unk = moments[POSITIVE], moments[NEGATIVE], moments[UNKNOWN]
    n1, f1, v1 = pos.n, pos.mean, pos.var()
    n0, f0, v0 = neg.n, neg.mean, neg.var()
    nu, m, vu = unk.n, unk.mean, unk.var()
    gap = f1 - f0
    usable = (n1 > 0) & (n0 > 0) & (nu > 0) & (gap >= MIN_SEPARATION)
    safe_gap = np.where(usable, gap, 1.0)
    est = np.where(usable, (m - f0) / safe_gap, 0.0)
    w = np.clip(est, 0.0, 1.0)
    var_num = (
        np.divide(vu, nu, out=np.zeros_like(vu), where=nu > 0)
        + (1.0 - w) ** 2 * np.divide(v0, n0, out=np.zeros_like(v0), where=n0 > 0)
        + w**2 * np.divide(v1, n1, out=np.zeros_like(v1), where=n1 > 0)
    )
    return est, np.where(usable, var_num / safe_gap**2, 0.0), usable


def adjusted_rate(p: Probs, t: LabelMatrix, moments: ClassMoments | None = None) -> np.ndarray:
    """``pi_u`` by adjusted classify-and-count.

    With ``f1`` / ``f0`` the class's mean ``p`` over annotated positives / negatives and ``m`` its
    mean ``p`` over unknown cells, ``pi_u = clip((m - f0) / (f1 - f0), 0, 1)`` (Forman 2008; the
    binary case of Lipton et al. 2018's black-box shift estimation). Unbiased (before clipping)
    whenever unknown cells differ from annotated ones only in their positive rate, for any score,
    calibrated or not. A class without an annotated positive or negative, or with
    ``f1 - f0 <`` :data:`MIN_SEPARATION`, gets 0 (its prior falls back to the naive count): there
    the model's ``p`` says nothing about the unknown cells — e.g. a rare class verified only as
    present, where an ignore-mode model predicts ~1 everywhere. A class without unknown cells gets 0.

    Args:
        p: float ``(N, C)`` probabilities in [0, 1].
        t: int8 ``(N, C)`` targets.

    Returns:
        float64 ``(C,)`` in [0, 1].
    """
    est, _, usable = _adjusted_parts(p, t, moments)
    return np.where(usable, np.clip(est, 0.0, 1.0), 0.0)


def shrunk_rate(p: Probs, t: LabelMatrix, moments: ClassMoments | None = None) -> np.ndarray:
    """``pi_u`` by adjusted classify-and-count, shrunk towards 0 by its sampling variance.

    With ``a`` the clipped :func:`adjusted_rate` estimate and ``v`` its delta-method variance
    (``(var m + (1 - a)^2 var f0 + a^2 var f1) / (f1 - f0)^2``, each mean's variance its sample
    variance over its cell count), ``pi_u = a * a^2 / (a^2 + v)``: the weight minimising the mean
    squared error of ``w * a`` when ``a`` is unbiased with variance ``v``. A class whose
    estimate is within noise of 0 (few annotated cells, little separation) falls back towards the
    naive count; a clear one keeps ``adjusted``. Same assumption as ``adjusted`` (label shift), but
    trades its variance for a bias towards the naive count; it also removes the upward bias that
    clipping at 0 gives ``adjusted`` on classes whose true ``pi_u`` is 0.

    Args:
        p: float ``(N, C)`` probabilities in [0, 1].
        t: int8 ``(N, C)`` targets.

    Returns:
        float64 ``(C,)`` in [0, 1].
    """
    est, var, usable = _adjusted_parts(p, t, moments)
    a = np.clip(est, 0.0, 1.0)
    den = a**2 + var
    weight = np.divide(a**2, den, out=np.zeros_like(a), where=den > 0)
    return np.where(usable, a * weight, 0.0)


def shifted_rate(p: Probs, t: LabelMatrix, moments: ClassMoments | None = None) -> np.ndarray:
    """``pi_u`` corrected for label shift, taking ``p`` as calibrated on the annotated cells.

    The annotated cells' positive rate is ``pi_a = (#pos + 0.5) / (#annotated + 1)``. If the
    unknown cells differ from the annotated ones only in their positive rate ``pi_u``, the
    likelihood of their ``p`` values is ``prod_i (pi_u * p_i / pi_a + (1 - pi_u) * (1 - p_i) /
    (1 - pi_a))``, whose logarithm is concave in ``pi_u``; it is maximised here by bisection on its
    derivative (the fixed point of the Saerens et al. EM). Unknown ``p`` values are histogrammed
    per class first (1024 bins, bin means kept), so the cost is one pass over the matrix. A class
    with no annotated cell keeps ``mean(p)`` over its unknown cells; a class with no unknown cell
    gets 0.

    Args:
        p: float ``(N, C)`` probabilities in [0, 1].
        t: int8 ``(N, C)`` targets.

    Returns:
        float64 ``(C,)`` in [0, 1].

    Raises:
        ValueError: ``p`` or ``t`` is not a dense array (this estimator is not blocked).
    """
    del moments
    if isinstance(t, SparseLabels) or not isinstance(p, np.ndarray):
        raise ValueError("the 'shifted' prior needs dense probs and targets; use 'shrunk' or 'auto' at scale")
    c = p.shape[1]
    unknown = t == UNKNOWN
    n_pos = (t == POSITIVE).sum(axis=0, dtype=np.float64)
    n_ann = n_pos + (t == NEGATIVE).sum(axis=0, dtype=np.float64)
    pi_a = (n_pos + 0.5) / (n_ann + 1.0)

    # Per-class histogram of unknown p: counts and sums per (class, bin).
    rows, cols = np.nonzero(unknown)
    pu = p[rows, cols].astype(np.float64)
    bins = np.minimum((pu * _SHIFT_BINS).astype(np.int64), _SHIFT_BINS - 1)
    flat = cols * _SHIFT_BINS + bins
    counts = np.bincount(flat, minlength=c * _SHIFT_BINS).reshape(c, _SHIFT_BINS).astype(np.float64)
    sums = np.bincount(flat, weights=pu, minlength=c * _SHIFT_BINS).reshape(c, _SHIFT_BINS).astype(np.float64)
    pbar = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    n_unknown = counts.sum(axis=1)

    a = pbar / pi_a[:, None]  # likelihood ratio terms, (C, bins)
    b = (1.0 - pbar) / (1.0 - pi_a[:, None])

    def slope(pi: np.ndarray) -> np.ndarray:
        den = pi[:, None] * a + (1.0 - pi[:, None]) * b
        return (counts * (a - b) / np.maximum(den, 1e-300)).sum(axis=1)

    lo = np.zeros(c)
    hi = np.ones(c)
    for _ in range(_SHIFT_STEPS):
        mid = 0.5 * (lo + hi)
        up = slope(mid) > 0
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    pi_u = 0.5 * (lo + hi)
    no_unknown = n_unknown == 0
    no_annotation = n_ann == 0
    mean_u = np.divide(sums.sum(axis=1), n_unknown, out=np.zeros(c), where=~no_unknown)
    pi_u = np.where(no_annotation, mean_u, pi_u)
    return np.where(no_unknown, 0.0, pi_u)


def random_annotation_z(
    p: Probs, t: LabelMatrix, moments: ClassMoments | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, Welch's z of the mean ``p`` of annotated cells against that of unknown cells.

    If the annotated cells of a class are a random sample of its cells (independent of the label
    and of the image), the cross-fitted ``p`` of annotated and unknown cells have one distribution,
    so ``z`` is approximately standard normal. A candidate generator (annotating hard negatives) or
    a per-class quota (FPC: as many positives as negatives annotated) moves the means apart.

    Args:
        p: float ``(N, C)`` probabilities in [0, 1].
        t: int8 ``(N, C)`` targets.

    Returns:
        float64 ``(C,)`` z (0 where not tested) and bool ``(C,)``: tested (at least
        ``_MIN_TEST_CELLS`` annotated and unknown cells, and a positive variance).
    """
    moments = class_moments(p, t) if moments is None else moments
    ann = _combine(moments[POSITIVE], moments[NEGATIVE])
    na, ma, va = ann.n, ann.mean, ann.var()
    nu, mu, vu = moments[UNKNOWN].n, moments[UNKNOWN].mean, moments[UNKNOWN].var()
    se2 = np.divide(va, na, out=np.zeros_like(va), where=na > 0) + np.divide(
        vu, nu, out=np.zeros_like(vu), where=nu > 0
    )
    tested = (na >= _MIN_TEST_CELLS) & (nu >= _MIN_TEST_CELLS) & (se2 > 0)
    z = np.divide(ma - mu, np.sqrt(se2), out=np.zeros_like(se2), where=tested)
    return z, tested


def random_annotation_pvalue(p: Probs, t: LabelMatrix, moments: ClassMoments | None = None) -> float:
    """p-value of "every class's annotated cells are a random sample of its cells" (Bonferroni).

    The smallest two-sided normal p-value of :func:`random_annotation_z` over the tested classes,
    times their number (capped at 1): valid whatever the dependence between classes (cells of one
    image are scored together). NaN when no class can be tested.

    Args:
        p: float ``(N, C)`` probabilities in [0, 1].
        t: int8 ``(N, C)`` targets.

    Returns:
        float in [0, 1] (or NaN); reject randomness when below :data:`RANDOM_TEST_LEVEL`.
    """
    z, tested = random_annotation_z(p, t, moments)
    k = int(tested.sum())
    if k == 0:
        return float("nan")
    z_max = float(np.abs(z[tested]).max())
    return min(1.0, k * math.erfc(z_max / math.sqrt(2.0)))


__all__ = [
    "MIN_SEPARATION",
    "RANDOM_TEST_LEVEL",
    "ClassMoments",
    "Probs",
    "adjusted_rate",
    "class_moments",
    "random_annotation_pvalue",
    "random_annotation_z",
    "random_rate",
    "shifted_rate",
    "shrunk_rate",
]
