"""Agreement between two annotators' accept/reject decisions: percent agreement and Cohen's kappa.

Pure functions over arrays, no I/O. Decisions are label values: 1 = accept (present), 0 =
reject (absent). A 2 x 2 confusion ``counts[a, b]`` holds how many items the first annotator
decided ``a`` and the second ``b``. Cohen's kappa (two raters, two categories) is
``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement and ``p_e`` the agreement
expected from each rater's own accept rate; it is NaN when ``p_e`` is 1 (both raters gave one
and the same value to every item), as scikit-learn's ``cohen_kappa_score`` returns.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Agreement:
    """Agreement over ``n`` doubly-decided items.

    Attributes:
        n: items both annotators decided.
        agreed: items they decided alike.
        kappa: Cohen's kappa in [-1, 1]; NaN when undefined (see the module docstring) or n = 0.
    """

    n: int
    agreed: int
    kappa: float

    @property
    def percent(self) -> float:
        """Percent agreement in [0, 100]; NaN when n = 0."""
        return 100.0 * self.agreed / self.n if self.n else math.nan


def _check_values(name: str, values: npt.ArrayLike) -> npt.NDArray[np.int8]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one decision per item, shape (N,); got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} holds values other than 1 (accept) and 0 (reject); map decisions first")
    return arr.astype(np.int8)


def confusion(first: npt.ArrayLike, second: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The 2 x 2 confusion of two annotators' decisions.

    Args:
        first, second: shape (N,), 1 = accept, 0 = reject; item i decided by both.

    Returns:
        int64 array of shape (2, 2): ``[a, b]`` = items decided ``a`` by ``first`` and ``b`` by ``second``.

    Raises:
        ValueError: not 1-D, lengths differ, or a value other than 0 and 1.

    Example:
        >>> confusion([1, 1, 0], [1, 0, 0]).tolist()
        [[1, 0], [1, 1]]
    """
    a, b = _check_values("first", first), _check_values("second", second)
    if a.shape != b.shape:
        raise ValueError(f"first has {a.size} decisions, second {b.size}; give one pair per item")
    return np.bincount(2 * a.astype(np.int64) + b, minlength=4).reshape(2, 2)


def from_counts(counts: npt.ArrayLike) -> Agreement:
    """Percent agreement and Cohen's kappa from a 2 x 2 confusion (see :func:`confusion`).

    Raises:
        ValueError: not a (2, 2) array of non-negative counts.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.shape != (2, 2) or (c < 0).any():
        raise ValueError(f"counts must be a (2, 2) array of non-negative counts; got shape {c.shape}")
    n = float(c.sum())
    if n == 0:
        return Agreement(0, 0, math.nan)
    agreed = float(c[0, 0] + c[1, 1])
    p_o = agreed / n
    p_e = float(c.sum(axis=1) @ c.sum(axis=0)) / (n * n)
    kappa = math.nan if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)
    return Agreement(int(n), int(agreed), kappa)


def cohen_kappa(first: npt.ArrayLike, second: npt.ArrayLike) -> float:
    """Cohen's kappa of two annotators' decisions (shape (N,), 1 accept / 0 reject); NaN if undefined.

    Example:
        >>> round(cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]), 3)
        0.5
    """
    return from_counts(confusion(first, second)).kappa


def agreement(first: npt.ArrayLike, second: npt.ArrayLike) -> Agreement:
    """:class:`Agreement` of two annotators' decisions (shape (N,), 1 accept / 0 reject)."""
    return from_counts(confusion(first, second))


def grouped(
    keys: Sequence[Hashable],
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> dict[Hashable, Agreement]:
    """:class:`Agreement` per group of items.

    Args:
        keys: shape (N,), the group of each item (e.g. an annotator pair or a class id).
        first, second: shape (N,), the two decisions of each item (1 accept / 0 reject).
        weights: shape (N,), how many items each row stands for (default 1 each), so rows
            already counted by ``GROUP BY key, first, second`` can be passed as they are.

    Returns:
        Agreement by key, keys in order of first appearance.
    """
    a, b = _check_values("first", first), _check_values("second", second)
    w = np.ones(a.size, dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    if not (len(keys) == a.size == b.size == w.size):
        raise ValueError(
            f"keys ({len(keys)}), first ({a.size}), second ({b.size}) and weights ({w.size}) "
            "must have one entry per item"
        )
    counts: dict[Hashable, npt.NDArray[np.int64]] = {}
    for key, x, y, n in zip(keys, a.tolist(), b.tolist(), w.tolist(), strict=True):
        counts.setdefault(key, np.zeros((2, 2), dtype=np.int64))[x, y] += n
    return {key: from_counts(c) for key, c in counts.items()}


def pair_key(a: str, b: str) -> tuple[str, str]:
    """An unordered annotator pair as a sorted tuple (kappa does not depend on who was first)."""
    return (a, b) if a <= b else (b, a)


def by_pair(
    first_reviewer: Iterable[str],
    second_reviewer: Iterable[str],
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> dict[tuple[str, str], Agreement]:
    """:class:`Agreement` per unordered annotator pair (shapes (N,); see :func:`grouped`).

    Whoever decided first, each pair's kappa is computed with the same annotator as rater one
    (the name that sorts first), as if the two had decided the items side by side.

    Example:
        >>> res = by_pair(["ann", "bob"], ["bob", "ann"], [1, 0], [1, 0])
        >>> list(res), res[("ann", "bob")].percent
        ([('ann', 'bob')], 100.0)
    """
    names_a, names_b = list(first_reviewer), list(second_reviewer)
    a, b = _check_values("first", first), _check_values("second", second)
    if not (len(names_a) == len(names_b) == a.size == b.size):
        raise ValueError(
            f"first_reviewer ({len(names_a)}), second_reviewer ({len(names_b)}), first ({a.size}) and "
            f"second ({b.size}) must have one entry per item"
        )
    # Each pair's table is oriented by name: rows are the alphabetically first annotator's values.
    swap = np.array([x > y for x, y in zip(names_a, names_b, strict=True)], dtype=bool)
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    keys = [pair_key(x, y) for x, y in zip(names_a, names_b, strict=True)]
    return grouped(keys, lo, hi, weights)  # type: ignore[return-value]


__all__ = [
    "Agreement",
    "agreement",
    "by_pair",
    "cohen_kappa",
    "confusion",
    "from_counts",
    "grouped",
    "pair_key",
]
