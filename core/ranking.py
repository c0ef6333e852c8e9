"""Rank unknown cells as likely-missing positive labels.

A *ranker* turns model probabilities ``p`` ``(N, C)`` into a score per unknown cell (higher = more
likely a missing positive); :func:`top_unknown` returns the K best unknown cells. Rankers
(:class:`Ranker`):

* ``probability`` — raw ``p``. Not comparable across classes when the model's calibration differs
  per class (it usually does: an ``ignore``-mode model learns each class's positive rate among
  *annotated* cells, which partial annotation distorts differently per class).
* ``lift`` — ``p / prior[c]``: how much likelier than the class's base rate.
* ``prior_shift`` — ``p`` moved from the class's positive rate among annotated cells
  ``pi_a = (#pos + 0.5) / (#annotated + 1)`` to its expected rate among unknown cells
  ``pi_u = (prior * N - #pos) / #unknown`` (Bayes' rule for a label-shifted class:
  ``odds' = odds * odds(pi_u) / odds(pi_a)``). Right for an ``ignore``-mode model.
* ``calibrated`` — a per-class shift of the logits chosen so that the class's mean score over its
  unknown cells equals ``pi_u``; needs no assumption about how the model was trained.

``labelmend bench core-study`` measures precision@K of each against hidden labels on generated
low-rank logits, where ``prior_shift`` wins or ties everywhere; ``labelmend bench quality`` measures
them on images, where it does not, so the default is ``probability`` (:data:`DEFAULT_RANKER`; the
numbers are in README.md, "Results" and "Studies behind the defaults").

Streaming (:mod:`core.ranking_stream`): the same top K from probabilities fed in row chunks,
holding O(chunk × C + K) rather than the ``(N, C)`` matrix.

Audit sample (:mod:`core.audit_sample`): cells drawn uniformly at random from the unknown ones,
whatever their score, so that their reviewed labels estimate each class's missing-positive rate and
the ranking's precision without bias.

Cross-fitting: :func:`kfold_split` splits the images into folds, so the suggestions for an image come
from a model that never trained on that image's own (possibly wrong) unknown-as-negative cells.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from common.choice import Choice
from core._validation import check_positive_int, check_prior, check_probs, check_same_shape, check_targets
from core.constants import UNKNOWN
from core.sparse_labels import LabelMatrix, SparseLabels, label_counts

__all__ = [
    "DEFAULT_RANKER",
    "Fold",
    "Ranker",
    "TopUnknown",
    "calibration_rows",
    "kfold_split",
    "score_unknown",
    "top_unknown",
    "unknown_positive_rate",
]

#: Rates are kept inside [_RATE_EPS, 1 - _RATE_EPS] so odds stay finite.
_RATE_EPS: float = 1e-6
#: Rows sampled per class-calibration (the ``calibrated`` ranker) and histogram bins per class.
_CALIBRATION_ROWS: int = 4_096
_CALIBRATION_BINS: int = 128
_CALIBRATION_STEPS: int = 32
#: Matrices with more cells than this use the sampled-threshold fast path of :func:`top_unknown`.
_FAST_PATH_CELLS: int = 2_000_000
#: Rows sampled to estimate the score threshold of the fast path.
_THRESHOLD_ROWS: int = 2_048
_THRESHOLD_MARGIN: float = 1e-3
#: Rows per block when counting labels per class (int16 sums cannot overflow below 32767).
_COUNT_BLOCK: int = 16_384


class Ranker(Choice, kind="ranker", plural="rankers"):
    """Score used to rank unknown cells (higher = more likely a missing positive)."""

    PROBABILITY = "probability"
    LIFT = "lift"
    PRIOR_SHIFT = "prior_shift"
    CALIBRATED = "calibrated"


#: The ranker used when none is given: raw probability, which ranks the hidden positives of images
#: best under RPS and OpenImages-like labels, not under FPC (``labelmend bench quality``; README.md,
#: "Results"). Given the true prevalence ``prior_shift`` would win under FPC and OpenImages-like
#: labels: the prior estimate, not the ranker, is what holds it back.
DEFAULT_RANKER: Ranker = Ranker.PROBABILITY


class TopUnknown(NamedTuple):
    """The top-K unknown cells, best first: ``(img_idx[j], cls_idx[j])`` has score ``score[j]``."""

    img_idx: np.ndarray  #: int64 ``(K,)`` row (image) indices
    cls_idx: np.ndarray  #: int64 ``(K,)`` column (class) indices
    score: np.ndarray  #: float ``(K,)`` scores, non-increasing


class Fold(NamedTuple):
    """One cross-fitting fold: train a model on ``train``, predict (suggest) on ``held``."""

    train: np.ndarray  #: int64 sorted image indices
    held: np.ndarray  #: int64 sorted image indices


def unknown_positive_rate(targets: Any, priors: Any) -> np.ndarray:
    """Expected positive rate among each class's unknown cells, implied by the prior.

    ``pi_u = (prior * N - #annotated positives) / #unknown``, clipped to [1e-6, 1 - 1e-6]
    (0.5 for a class with no unknown cell).

    Args:
        targets: ``(N, C)`` labels (1 / 0 / -1).
        priors: ``(C,)`` class priors in [0, 1].

    Returns:
        float64 ``(C,)``.
    """
    t = check_targets(targets)
    pr = check_prior(priors, t.shape[1], name="priors")
    return _unknown_rate(t, pr)


def score_unknown(
    probs: Any, targets: Any, priors: Any = None, *, ranker: str | Ranker = DEFAULT_RANKER
) -> np.ndarray:
    """Score every unknown cell with ``ranker``.

    Args:
        probs: ``(N, C)`` model probabilities in [0, 1] (float32 stays float32).
        targets: ``(N, C)`` labels (1 / 0 / -1) of the same images.
        priors: ``(C,)`` class priors in [0, 1]; may be None only for ``probability``.
        ranker: A :class:`Ranker`.

    Returns:
        ``(N, C)`` scores, higher = more likely a missing positive; ``-inf`` on annotated cells.
    """
    p, t, pr, r = _check_inputs(probs, targets, priors, ranker)
    return _score(p, t, _class_params(p, t, pr, r))


def top_unknown(
    probs: Any,
    targets: Any,
    priors: Any,
    k: int,
    *,
    ranker: str | Ranker = DEFAULT_RANKER,
) -> TopUnknown:
    """The ``k`` unknown cells most likely to be missing positives, best first.

    Vectorised (``np.argpartition``; no loop over cells). Ties are ordered by image index, then
    class index, so the result is deterministic.

    Args:
        probs: ``(N, C)`` model probabilities in [0, 1].
        targets: ``(N, C)`` labels (1 / 0 / -1); only cells with -1 are candidates.
        priors: ``(C,)`` class priors in [0, 1] (may be None for ``probability``).
        k: Number of cells wanted (>= 0); fewer are returned if there are fewer unknown cells.
        ranker: A :class:`Ranker`; default :data:`DEFAULT_RANKER`.

    Returns:
        :class:`TopUnknown` ``(img_idx, cls_idx, score)``, each of length ``min(k, #unknown)``.

    Example:
        >>> p = np.array([[0.9, 0.2], [0.6, 0.7]])
        >>> t = np.array([[-1, -1], [1, -1]])
        >>> top_unknown(p, t, None, 2, ranker="probability").cls_idx
        array([0, 1])
    """
    p, t, pr, r = _check_inputs(probs, targets, priors, ranker)
    k = check_positive_int(k, "k", minimum=0)
    counts = _class_counts(t)
    n_unknown = int(counts.unk.sum())
    k = min(k, n_unknown)
    if k == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TopUnknown(empty, empty.copy(), np.zeros(0, dtype=p.dtype))
    params = _class_params(p, t, pr, r, counts)
    idx = None
    if p.size > _FAST_PATH_CELLS:
        idx = _top_k_thresholded(p, t, params, k, n_unknown)
    if idx is None:
        flat = _score(p, t, params).ravel()
        idx = _top_k_flat(flat, k)
    img, cls = np.divmod(idx, t.shape[1])
    score = _score_cells(p.ravel()[idx], cls, params)
    return TopUnknown(img.astype(np.int64), cls.astype(np.int64), score)


def calibration_rows(n: int) -> np.ndarray:
    """The rows whose probabilities fit the ``calibrated`` ranker's per-class shift.

    Up to 4,096 evenly spaced rows of ``n`` (all rows when ``n`` is smaller).

    Returns:
        int64 ``(min(n, 4096),)`` increasing row indices.

    Example:
        >>> calibration_rows(3).tolist()
        [0, 1, 2]
    """
    n = check_positive_int(n, "n", minimum=0)
    if n <= _CALIBRATION_ROWS:
        return np.arange(n, dtype=np.int64)
    return np.linspace(0, n - 1, _CALIBRATION_ROWS).astype(np.int64)


def kfold_split(n: int, k: int, seed: int = 0) -> list[Fold]:
    """Split ``n`` images into ``k`` random folds of near-equal size for cross-fitting.

    Every image is in exactly one ``held`` set; train a model per fold on ``train`` and take the
    suggestions for ``held`` images from it.

    Args:
        n: Number of images (>= k).
        k: Number of folds (>= 2).
        seed: Seed of the random permutation.

    Returns:
        ``k`` :class:`Fold` objects.

    Example:
        >>> [f.held.tolist() for f in kfold_split(5, 2, seed=0)]
        [[2, 3, 4], [0, 1]]
    """
    n = check_positive_int(n, "n")
    k = check_positive_int(k, "k", minimum=2)
    if k > n:
        raise ValueError(f"k = {k} folds need at least {k} images, got n = {n}")
    perm = np.random.default_rng(seed).permutation(n)
    folds = []
    for held in np.array_split(perm, k):
        mask = np.ones(n, dtype=bool)
        mask[held] = False
        folds.append(Fold(train=np.flatnonzero(mask).astype(np.int64), held=np.sort(held).astype(np.int64)))
    return folds


def _check_inputs(
    probs: Any, targets: Any, priors: Any, ranker: str | Ranker
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Ranker]:
    p = check_probs(probs)
    t = check_targets(targets)
    check_same_shape(p, t, "probs", "targets")
    r = Ranker.from_str(ranker)
    if priors is None:
        if r is not Ranker.PROBABILITY:
            raise ValueError(
                f"ranker {r.value!r} needs class priors; pass priors or use ranker='probability'"
            )
        return p, t, None, r
    return p, t, check_prior(priors, t.shape[1], name="priors"), r


class _ClassParams(NamedTuple):
    """Per-class parameters of a ranker: ``score = p * scale[c]`` or ``p / (p + (1 - p) * ratio[c])``."""

    kind: str  # "scale" or "odds"
    value: np.ndarray  # (C,) in p's dtype


def _class_params(
    p: np.ndarray, t: np.ndarray, prior: np.ndarray | None, ranker: Ranker, counts: _Counts | None = None
) -> _ClassParams:
    c = t.shape[1]
    if ranker is Ranker.PROBABILITY or prior is None:
        return _ClassParams("scale", np.ones(c, dtype=p.dtype))
    if ranker is Ranker.LIFT:
        return _ClassParams("scale", (1.0 / np.maximum(prior, _RATE_EPS)).astype(p.dtype))
    counts = _class_counts(t) if counts is None else counts
    pi_u = _unknown_rate(t, prior, counts)
    if ranker is Ranker.PRIOR_SHIFT:
        pi_a = (counts.pos + 0.5) / (counts.pos + counts.neg + 1.0)
        ratio = _odds(pi_a) / _odds(pi_u)
    else:
        ratio = _mean_matching_ratio(p, t, pi_u)
    return _ClassParams("odds", ratio.astype(p.dtype))


class _Counts(NamedTuple):
    pos: np.ndarray  # float64 (C,)
    neg: np.ndarray
    unk: np.ndarray


def _class_counts(t: LabelMatrix) -> _Counts:
    """Positives, negatives and unknowns per class, summed in int16 blocks (fast on int8 input)."""
    if isinstance(t, SparseLabels):
        return _Counts(*label_counts(t))
    n, c = t.shape
    total = np.zeros(c, dtype=np.int64)
    unk = np.zeros(c, dtype=np.int64)
    for start in range(0, n, _COUNT_BLOCK):
        block = t[start : start + _COUNT_BLOCK]
        total += block.sum(axis=0, dtype=np.int16)
        unk += (block == UNKNOWN).view(np.int8).sum(axis=0, dtype=np.int16)
    pos = (total + unk).astype(np.float64)  # sum(t) = #pos - #unknown
    unk_f = unk.astype(np.float64)
    return _Counts(pos, n - pos - unk_f, unk_f)


def _unknown_rate(t: LabelMatrix, prior: np.ndarray, counts: _Counts | None = None) -> np.ndarray:
    n = t.shape[0]
    counts = _class_counts(t) if counts is None else counts
    n_pos, n_unk = counts.pos, counts.unk
    rate = np.divide(prior * n - n_pos, n_unk, out=np.full(t.shape[1], 0.5), where=n_unk > 0)
    return np.clip(rate, _RATE_EPS, 1.0 - _RATE_EPS)


def _odds(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, _RATE_EPS, 1.0 - _RATE_EPS)
    return x / (1.0 - x)


def _score_cells(p: np.ndarray, cls: np.ndarray | slice, params: _ClassParams) -> np.ndarray:
    """Scores of cells with probabilities ``p`` and class indices ``cls`` (any matching shapes)."""
    v = params.value[cls]
    if params.kind == "scale":
        return p * v
    # ratio > 0 and p in [0, 1] make the denominator positive.
    den = (1.0 - p) * v
    den += p
    return p / den


def _p_threshold(s: float, params: _ClassParams) -> np.ndarray:
    """Per-class probability at which the (increasing) score reaches ``s``, shape ``(C,)``."""
    v = params.value.astype(np.float64)
    if params.kind == "scale":
        return s / v
    if s >= 1.0:
        return np.ones_like(v)
    odds = s / (1.0 - s) * v
    return odds / (1.0 + odds)


def _score(p: np.ndarray, t: np.ndarray, params: _ClassParams) -> np.ndarray:
    """Scores ``(N, C)`` in ``p``'s dtype, ``-inf`` on annotated cells."""
    out = p * params.value if params.kind == "scale" else _score_cells(p, slice(None), params)
    np.putmask(out, t != UNKNOWN, -np.inf)
    return out


def _mean_matching_ratio(p: np.ndarray, t: np.ndarray, pi_u: np.ndarray) -> np.ndarray:
    """Per-class odds ratio r such that mean over unknown cells of ``p / (p + (1-p) r)`` is ``pi_u``.

    Computed on a histogram (bin means kept) of up to ``_CALIBRATION_ROWS`` evenly spaced rows
    (:func:`calibration_rows`).
    """
    rows = calibration_rows(p.shape[0])
    return _matching_ratio(p[rows], t[rows], pi_u)


def _matching_ratio(p_rows: np.ndarray, t_rows: np.ndarray, pi_u: np.ndarray) -> np.ndarray:
    """:func:`_mean_matching_ratio` on the calibration rows' probabilities and labels ``(S, C)``."""
    c = p_rows.shape[1]
    ps = p_rows.astype(np.float64)
    unknown = t_rows == UNKNOWN
    bins = np.minimum((ps * _CALIBRATION_BINS).astype(np.int64), _CALIBRATION_BINS - 1)
    bins += np.arange(c, dtype=np.int64) * _CALIBRATION_BINS  # flat (class, bin) index
    size = c * _CALIBRATION_BINS
    counts = np.bincount(bins.ravel(), weights=unknown.ravel(), minlength=size).reshape(c, _CALIBRATION_BINS)
    sums = np.bincount(bins.ravel(), weights=(ps * unknown).ravel(), minlength=size).reshape(
        c, _CALIBRATION_BINS
    )
    counts, sums = counts.astype(np.float64), sums.astype(np.float64)
    pbar = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    n_u = counts.sum(axis=1)
    target = pi_u * n_u
    lo = np.full(c, -40.0)  # log r
    hi = np.full(c, 40.0)
    for _ in range(_CALIBRATION_STEPS):
        mid = 0.5 * (lo + hi)
        r = np.exp(mid)[:, None]
        mean = np.sum(sums / np.maximum(pbar + (1.0 - pbar) * r, 1e-300), axis=1)
        too_high = mean > target  # the mean falls as r grows
        lo = np.where(too_high, mid, lo)
        hi = np.where(too_high, hi, mid)
    return np.where(n_u > 0, np.exp(0.5 * (lo + hi)), 1.0)


def _top_k_thresholded(
    p: np.ndarray, t: np.ndarray, params: _ClassParams, k: int, n_unknown: int
) -> np.ndarray | None:
    """Exact top-k via a score threshold estimated on sampled rows; None if the sample misjudged.

    Every unknown cell scoring at or above the threshold is a candidate (found with one comparison
    of ``p`` against per-class probability thresholds), so the top k of the candidates are the top
    k overall whenever there are at least k candidates.
    """
    n, c = p.shape
    rows = np.linspace(0, n - 1, min(n, _THRESHOLD_ROWS)).astype(np.int64)
    ps, ts = p[rows], t[rows]
    r_idx, c_idx = np.nonzero(ts == UNKNOWN)
    if r_idx.size == 0:
        return None
    sample = _score_cells(ps[r_idx, c_idx], c_idx, params)
    expected = k * r_idx.size / n_unknown
    k_s = int(2.0 * expected + 4.0 * np.sqrt(expected) + 16)
    if k_s >= sample.size:
        return None
    s_star = float(np.partition(sample, sample.size - k_s)[sample.size - k_s])
    # Lower the thresholds by a relative margin far above rounding error: every cell left out
    # then scores clearly below s_star.
    tau = (_p_threshold(s_star, params) * (1.0 - _THRESHOLD_MARGIN)).astype(p.dtype)
    cand = np.flatnonzero(p >= tau)
    cand = cand[t.ravel()[cand] == UNKNOWN]
    scores = _score_cells(p.ravel()[cand], cand % c, params)
    # Exact only if at least k candidates reach s_star: then the k-th best beats every left-out cell.
    if np.count_nonzero(scores >= s_star) < k:
        return None
    return cand[_top_k_flat(scores, k)]


def _top_k_flat(flat: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest values (1 <= k <= size), by value desc then position asc."""
    size = flat.size
    part = np.argpartition(flat, size - k)[size - k :]
    kth = flat[part].min()
    greater = part[flat[part] > kth]
    n_ties = k - greater.size
    if n_ties:
        ties = np.flatnonzero(flat == kth)[:n_ties]
        idx = np.concatenate([greater, ties])
    else:
        idx = greater
    order = np.lexsort((idx, -flat[idx]))
    return idx[order]
