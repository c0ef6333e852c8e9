"""K-fold cross-fitting: every image scored by a model that never trained on it.

The one implementation behind the prior model's cross-fitted probabilities
(:mod:`app.pipeline.priors`, ``--prior-folds``), the cross-fitted scores of unknown cells
(:mod:`app.pipeline.suggest`, ``--folds``) and the quality benchmark's out-of-fold probabilities
(``bench.quality_methods``), so the README's numbers measure the code the app runs.

Folds come from :func:`core.ranking.kfold_split` over the positions of ``idx``; how each fold's
model is trained (its seed, its loss, its progress) is up to the caller's ``fit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from core.ranking import kfold_split


class Predictor(Protocol):
    """A trained model: ``predict(idx)`` → (len(idx), C) probabilities in [0, 1] for rows ``idx``."""

    def predict(self, idx: np.ndarray) -> np.ndarray: ...


P = TypeVar("P", bound=Predictor)

#: ``fit(train_idx, fold)`` → a model trained on ``train_idx`` (a subset of ``idx``), fold 0 … k-1.
FitFn = Callable[[np.ndarray, int], P]


@dataclass
class CrossFit(Generic[P]):
    """What :func:`cross_fit` returns.

    Attributes:
        probs: (len(idx), C) float32 out-of-fold probabilities, in the order of ``idx``: row i comes
            from the one model whose training set left ``idx[i]`` out.
        extra: (len(extra), C) float32, the mean of the k models' probabilities of the ``extra``
            rows (e.g. a validation split no model trained on); (0, C) when none were given.
        models: the k fitted models, in fold order.
    """

    probs: np.ndarray
    extra: np.ndarray
    models: list[P]


def cross_fit(
    fit: Callable[[np.ndarray, int], P],
    idx: np.ndarray,
    k: int,
    *,
    seed: int,
    extra: np.ndarray | None = None,
) -> CrossFit[P]:
    """Train ``k`` models, each on all of ``idx`` but one fold, and score each fold with its model.

    Args:
        fit: ``fit(train_idx, fold)`` trains and returns a :class:`Predictor`; ``train_idx`` is
            ``idx[fold.train]`` (int64, the order of ``idx``), ``fold`` the fold number 0 … k-1.
        idx: (N,) int64 rows (of the caller's dataset or arrays) to cross-fit over.
        k: number of folds, 2 ≤ k ≤ N.
        seed: seed of the fold split (``core.ranking.kfold_split(N, k, seed=seed)``).
        extra: (M,) int64 rows every model scores too (their probabilities are averaged), or None.

    Returns:
        :class:`CrossFit`: out-of-fold ``probs`` (N, C), averaged ``extra`` (M, C), the models.

    Raises:
        ValueError: ``k`` < 2 or more folds than rows (one line, from ``kfold_split``).

    Example:
        A "model" that predicts the mean of its training rows: rows 0 and 2 are held out together
        and scored by the model of rows 1 and 3, and the other way round.

        >>> class Mean:
        ...     def __init__(self, rows): self.value = float(np.mean(rows))
        ...     def predict(self, rows): return np.full((len(rows), 1), self.value)
        >>> cross_fit(lambda rows, _f: Mean(rows), np.arange(4), 2, seed=0).probs.ravel().tolist()
        [2.0, 1.0, 2.0, 1.0]
    """
    idx = np.asarray(idx, dtype=np.int64)
    others = np.zeros(0, dtype=np.int64) if extra is None else np.asarray(extra, dtype=np.int64)
    probs: np.ndarray | None = None
    extra_probs: np.ndarray | None = None
    models: list[P] = []
    for f, fold in enumerate(kfold_split(len(idx), k, seed=seed)):
        model = fit(idx[fold.train], f)
        models.append(model)
        held = model.predict(idx[fold.held])
        if probs is None:
            probs = np.zeros((len(idx), held.shape[1]), dtype=np.float32)
            extra_probs = np.zeros((len(others), held.shape[1]), dtype=np.float32)
        probs[fold.held] = held
        if len(others):
            extra_probs += model.predict(others) / k
    if probs is None or extra_probs is None:  # kfold_split returns k ≥ 2 folds or raises
        raise RuntimeError("cross_fit trained no model")
    return CrossFit(probs, extra_probs, models)


@dataclass
class FoldModels(Generic[P]):
    """The k models of a cross-fit, with the fold of every row; their scores computed on demand.

    Attributes:
        idx: (N,) int64 the rows cross-fitted over.
        fold_of: (N,) int64 the fold that held out ``idx[i]`` (0 … k-1).
        models: the k fitted models, in fold order.
    """

    idx: np.ndarray
    fold_of: np.ndarray
    models: list[P]

    def out_of_fold(self, n_classes: int, positions: np.ndarray | None = None) -> OutOfFold[P]:
        """Row blocks of the out-of-fold probabilities (N, C): row i from the model that left ``idx[i]`` out.

        ``positions``: (M,) int64 positions into ``idx`` to read instead of all N (a row sample):
        the blocks are then (M, C), row j being ``idx[positions[j]]``.
        """
        return OutOfFold(self, n_classes, positions)

    def mean_of(self, rows: np.ndarray, n_classes: int) -> MeanOfModels[P]:
        """Row blocks of the k models' mean probabilities of ``rows`` (M,) int64: (M, C)."""
        return MeanOfModels(self.models, np.asarray(rows, dtype=np.int64), n_classes)


class OutOfFold(Generic[P]):
    """:class:`core.sparse_labels.RowBlocks` of :meth:`FoldModels.out_of_fold`; a block holds (rows, C) float32."""

    def __init__(self, folds: FoldModels[P], n_classes: int, positions: np.ndarray | None = None) -> None:
        self._folds = folds
        self._positions = (
            np.arange(len(folds.idx)) if positions is None else np.asarray(positions, dtype=np.int64)
        )
        self.shape = (len(self._positions), int(n_classes))

    def __getitem__(self, rows: slice) -> np.ndarray:
        pos = self._positions[rows]
        out = np.empty((len(pos), self.shape[1]), dtype=np.float32)
        fold = self._folds.fold_of[pos]
        for f in np.unique(fold):
            sel = fold == f
            out[sel] = self._folds.models[int(f)].predict(self._folds.idx[pos[sel]])
        return out


class MeanOfModels(Generic[P]):
    """:class:`core.sparse_labels.RowBlocks` of the mean of several models' probabilities of ``rows``."""

    def __init__(self, models: list[P], rows: np.ndarray, n_classes: int) -> None:
        self._models, self._rows = models, rows
        self.shape = (len(rows), int(n_classes))
        scorers = [getattr(m, "predict_cells", None) for m in models]
        if models and all(callable(f) for f in scorers):  # the RowBlocks ``cells`` method

            def cells(labels: Any) -> np.ndarray:
                out = np.zeros(labels.nnz, dtype=np.float32)
                for f in scorers:
                    out += np.asarray(f(self._rows, labels), dtype=np.float32) / len(scorers)  # type: ignore[misc]
                return out

            self.cells = cells

    def __getitem__(self, rows: slice) -> np.ndarray:
        sel = self._rows[rows]
        out = np.zeros((len(sel), self.shape[1]), dtype=np.float32)
        if len(sel):
            for model in self._models:
                out += np.asarray(model.predict(sel), dtype=np.float32) / len(self._models)
        return out


def fit_folds(fit: Callable[[np.ndarray, int], P], idx: np.ndarray, k: int, *, seed: int) -> FoldModels[P]:
    """Train the ``k`` fold models of :func:`cross_fit` without scoring anything (same folds, same order).

    Their out-of-fold and averaged probabilities are then read block by block
    (:meth:`FoldModels.out_of_fold`, :meth:`FoldModels.mean_of`), so no (N, C) matrix is built.
    """
    idx = np.asarray(idx, dtype=np.int64)
    fold_of = np.zeros(len(idx), dtype=np.int64)
    models: list[P] = []
    for f, fold in enumerate(kfold_split(len(idx), k, seed=seed)):
        fold_of[fold.held] = f
        models.append(fit(idx[fold.train], f))
    return FoldModels(idx, fold_of, models)


__all__ = [
    "CrossFit",
    "FitFn",
    "FoldModels",
    "MeanOfModels",
    "OutOfFold",
    "Predictor",
    "cross_fit",
    "fit_folds",
]
