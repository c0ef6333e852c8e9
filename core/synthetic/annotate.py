"""Annotation simulators: turn a full truth matrix into partial labels, seeded, pure numpy.

Input ``truth`` is an integer or bool array (N, C) of 1 (present) / 0 (absent); output is int8
(N, C) with 1 = annotated positive, 0 = annotated negative, -1 = unknown (``core.constants``).
Every annotated cell equals the truth: the simulators hide labels, they never flip them.

* :func:`fpc` — fixed per class (CSL.md "FPC(N)").
* :func:`rps` — random per sample (CSL.md "RPS(p)").
* :func:`openimages_like` — a few verified positives and negatives per image.
"""

from __future__ import annotations

import numpy as np

from core.constants import NEGATIVE, POSITIVE, UNKNOWN


def _check_truth(truth: np.ndarray) -> np.ndarray:
    truth = np.asarray(truth)
    if truth.ndim != 2:
        raise ValueError(f"truth has shape {truth.shape}: expected a 2-D (N, C) array")
    if truth.dtype != np.bool_ and not np.issubdtype(truth.dtype, np.integer):
        raise ValueError(f"truth has dtype {truth.dtype}: expected integers 0/1 or bool")
    if truth.size and not np.isin(truth, (0, 1)).all():
        bad = np.setdiff1d(np.unique(truth), (0, 1))
        raise ValueError(f"truth holds values {bad.tolist()}: the full truth must be only 0 and 1")
    return truth.astype(np.int8, copy=False)


def fpc(truth: np.ndarray, n_per_class: int, seed: int) -> np.ndarray:
    """Fixed per class: keep, per class, ``min(N, #pos)`` random positives and ``min(N, #neg)`` negatives.

    Everything else becomes unknown. Within a class the kept positives (and negatives) are a uniform
    random subset, drawn without replacement.

    Args:
        truth: int or bool (N_images, C), 1 present / 0 absent.
        n_per_class: N ≥ 0, the positives and the negatives kept per class.
        seed: random seed; the same seed gives the same mask.

    Returns:
        int8 (N_images, C): 1 / 0 where kept (equal to truth), -1 elsewhere.

    Raises:
        ValueError: if ``truth`` is not a 0/1 matrix or ``n_per_class`` < 0.

    Example:
        >>> t = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
        >>> a = fpc(t, 1, seed=0)
        >>> ((a == 1).sum(0).tolist(), (a == 0).sum(0).tolist())
        ([1, 1], [1, 1])
    """
    truth = _check_truth(truth)
    if n_per_class < 0:
        raise ValueError(f"n_per_class={n_per_class}: must be >= 0")
    rng = np.random.default_rng(seed)
    out = np.full(truth.shape, UNKNOWN, dtype=np.int8)
    for c in range(truth.shape[1]):
        for value in (POSITIVE, NEGATIVE):
            rows = np.flatnonzero(truth[:, c] == value)
            keep = rng.choice(rows, size=min(n_per_class, rows.size), replace=False)
            out[keep, c] = value
    return out


def rps(truth: np.ndarray, p: float, seed: int) -> np.ndarray:
    """Random per sample: each entry, positive or negative, independently becomes unknown with probability p.

    Args:
        truth: int or bool (N, C), 1 present / 0 absent.
        p: drop probability in [0, 1].
        seed: random seed; the same seed gives the same mask.

    Returns:
        int8 (N, C): the truth where kept, -1 where dropped.

    Raises:
        ValueError: if ``truth`` is not a 0/1 matrix or ``p`` is outside [0, 1].

    Example:
        >>> a = rps(np.ones((100, 10), dtype=np.int8), 0.5, seed=0)
        >>> 0.4 < float((a == -1).mean()) < 0.6
        True
    """
    truth = _check_truth(truth)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p}: the drop probability must be in [0, 1]")
    rng = np.random.default_rng(seed)
    out = truth.copy()
    out[rng.random(truth.shape) < p] = UNKNOWN
    return out


def _weighted_pick(eligible: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Per row, pick ``min(k, #eligible)`` eligible columns without replacement, P ∝ weight.

    Efraimidis–Spirakis: key = U^(1/w), take the k largest keys. Returns bool (N, C).
    """
    n, c = eligible.shape
    if k == 0 or c == 0:
        return np.zeros_like(eligible)
    keys = rng.random((n, c)) ** (1.0 / weights)
    keys = np.where(eligible, keys, -1.0)
    top = np.argsort(-keys, axis=1, kind="stable")[:, : min(k, c)]
    picked = np.zeros_like(eligible)
    np.put_along_axis(picked, top, True, axis=1)
    return picked & eligible


def _broadcast_weights(weights: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray:
    if weights is None:
        return np.ones(shape, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape not in (shape, (shape[1],)):
        raise ValueError(f"{name} has shape {w.shape}: expected ({shape[1]},) or {shape}")
    if not (np.isfinite(w).all() and (w > 0).all()):
        raise ValueError(f"{name} must be finite and > 0 everywhere")
    return np.broadcast_to(w, shape)


def openimages_like(
    truth: np.ndarray,
    seed: int,
    *,
    n_pos: int = 2,
    n_neg: int = 4,
    pos_weights: np.ndarray | None = None,
    neg_weights: np.ndarray | None = None,
) -> np.ndarray:
    """OpenImages-style verification: a few verified positives and negatives per image, the rest unknown.

    Per image, ``min(n_pos, #positives)`` of its positives and ``min(n_neg, #negatives)`` of its
    negatives are verified, drawn without replacement with probability proportional to the weights.
    OpenImages verifies candidate labels proposed by a classifier, so its verified negatives are
    plausible-but-absent classes rather than random ones. By default the negative weights are each
    class's prevalence in ``truth`` (frequent classes are proposed more often); pass
    ``SyntheticDataset.confusable_weights()`` to also favour look-alike classes (same shape or colour
    as something in the image). Positives are uniform unless ``pos_weights`` is given.

    Args:
        truth: int or bool (N, C), 1 present / 0 absent.
        seed: random seed; the same seed gives the same mask.
        n_pos: verified positives per image (fewer when the image has fewer), ≥ 0.
        n_neg: verified negatives per image (fewer when the image has fewer), ≥ 0.
        pos_weights: float (C,) or (N, C), > 0; relative chance a positive is verified. None = uniform.
        neg_weights: float (C,) or (N, C), > 0; relative chance a negative is verified.
            None = class prevalence in ``truth`` (+ 1/N so no class has weight 0).

    Returns:
        int8 (N, C): 1 / 0 on verified cells (equal to truth), -1 elsewhere.

    Raises:
        ValueError: on a non-0/1 ``truth``, negative counts, or weights of the wrong shape or sign.

    Example:
        >>> t = np.array([[1, 1, 1, 0, 0, 0, 0, 0, 0]])
        >>> a = openimages_like(t, seed=0, n_pos=2, n_neg=4)
        >>> int((a == 1).sum()), int((a == 0).sum()), int((a == -1).sum())
        (2, 4, 3)
    """
    truth = _check_truth(truth)
    if n_pos < 0 or n_neg < 0:
        raise ValueError(f"n_pos={n_pos}, n_neg={n_neg}: counts must be >= 0")
    shape = truth.shape
    if neg_weights is None and shape[0] > 0:
        neg_weights = truth.mean(axis=0, dtype=np.float64) + 1.0 / shape[0]
    w_pos = _broadcast_weights(pos_weights, shape, "pos_weights")
    w_neg = _broadcast_weights(neg_weights, shape, "neg_weights")
    rng = np.random.default_rng(seed)
    out = np.full(shape, UNKNOWN, dtype=np.int8)
    out[_weighted_pick(truth == POSITIVE, w_pos, n_pos, rng)] = POSITIVE
    out[_weighted_pick(truth == NEGATIVE, w_neg, n_neg, rng)] = NEGATIVE
    return out
