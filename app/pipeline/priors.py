"""The prior step: the temporary ignore-mode model, cross-fitted, and the class priors it gives.

Three estimates are kept for every class, whichever is used: ``naive`` (the annotated positive
rate), ``model`` (:func:`core.priors.model_prior` on the ignore-mode model's probabilities of
images it did not train on, ``--prior-folds`` folds, by the method ``auto`` picks for these labels;
above :data:`PRIOR_SAMPLE_CELLS` cells the rates come from a uniform sample of the images) and the one ``used`` by the target model's loss
and the ranking (:class:`~app.pipeline.config.PriorSource`: model, naive, or a
``Classes,avg_pred`` file, read and checked by :func:`read_prior_file` before any training).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.pipeline.config import PriorSource
from app.pipeline.cross_fit import fit_folds
from app.pipeline.evaluate import Validation, validate
from app.pipeline.fit import Fit, PredictedRows, Scorer, train_scorer
from app.pipeline.load import DatasetArrays
from common.progress import Progress
from core.losses.catalog import LossName
from core.priors import model_prior_with_method, naive_prior, read_prior_csv
from core.sparse_labels import RowBlocks

#: The temporary model's loss: annotated cells only, so its probabilities estimate the prevalence.
PRIOR_LOSS = LossName.IGNORE


@dataclass
class Priors:
    """The class priors of a cycle, each float64 (C,) in [0, 1] in the dataset's class order.

    Attributes:
        naive: annotated positives / images of each class (training split).
        model: from the ignore-mode model's out-of-fold probabilities.
        used: the one the target model and the ranking use (``CycleConfig.prior``).
        validation: the ignore-mode model's partial mAP on the validation split (mean of the folds' models).
        fit: the last ignore-mode model trained (its artifacts and training seconds are stored).
        method: the :class:`core.priors.PriorMethod` that gave ``model`` (what ``auto`` chose on
            these labels: ``random`` or ``shrunk``); stored with the prior run's metrics.
    """

    naive: np.ndarray
    model: np.ndarray
    used: np.ndarray
    validation: Validation
    fit: Fit
    method: str


def read_prior_file(path: Path, data: DatasetArrays) -> np.ndarray:
    """(C,) float64 prior in [0, 1] from a ``Classes,avg_pred`` CSV, in the dataset's class order.

    Raises:
        ValueError: one line naming the file (and line): NaN, outside [0, 1], missing classes, ….
    """
    table = read_prior_csv(path, data.class_keys)
    return np.asarray(table.prior, dtype=np.float64)


#: The prior's unknown-cell rates are estimated on at most this many (image × class) cells: above
#: it, on a uniform sample of the training images (the counts they scale stay the whole set's).
#: Reading the temporary model's scores is one pass of O(cells × D); at 2M × 9,605 the whole set
#: is ten of these. A sample of ~200k images still gives every class ~200k unknown cells.
PRIOR_SAMPLE_CELLS = 2_000_000_000


def prior_sample(
    n_rows: int, n_classes: int, *, seed: int, max_cells: int = PRIOR_SAMPLE_CELLS
) -> np.ndarray:
    """Sorted (m,) int64 positions 0 … n_rows-1 of the images whose scores estimate the prior.

    All of them while ``n_rows × n_classes ≤ max_cells``; else a uniform sample without replacement
    of ``max_cells // n_classes`` images (at least 1), reproducible from ``seed``.
    """
    m = max(1, max_cells // max(n_classes, 1))
    if n_rows <= m:
        return np.arange(n_rows, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x5A3])
    return np.sort(rng.choice(n_rows, size=m, replace=False)).astype(np.int64)


def prior_model_probs(
    scorer: Scorer, train: np.ndarray, val: np.ndarray, report: Progress, *, sample: np.ndarray | None = None
) -> tuple[RowBlocks, RowBlocks, Fit]:
    """Probabilities of the temporary ignore-mode model: cross-fitted on ``train``, averaged on ``val``.

    ``sample``: (m,) int64 positions into ``train`` (from :func:`prior_sample`) whose out-of-fold
    probabilities are returned instead of all of ``train``'s; the models still train on all of it.

    ``CycleConfig.prior_folds`` folds when there are at least two training images per fold;
    otherwise (or with ``prior_folds`` = 1) one model trains on all of ``train`` and scores it.
    The probabilities are row blocks computed when read (:class:`~app.pipeline.fit.PredictedRows`,
    :class:`~app.pipeline.cross_fit.OutOfFold`): no (N, C) matrix is built.

    Returns:
        (float32 (len(train), C) row blocks — each image scored by a model that did not train on it
        (len(sample) rows with ``sample``), float32 (len(val), C) row blocks, the last model fitted).
    """
    folds = scorer.config.prior_folds
    c = scorer.data.n_classes
    k = folds if len(train) >= 2 * max(folds, 1) else 1
    if k <= 1:
        fit = train_scorer(scorer, PRIOR_LOSS, train, None, "prior", report)
        scored = train if sample is None else train[sample]
        return (
            PredictedRows(fit.predict, scored, c),
            PredictedRows(fit.predict, val, c, fit.predict_cells),
            fit,
        )

    def fit_fold(rows: np.ndarray, f: int) -> Fit:
        def fold_report(fraction: float, message: str) -> None:
            report((f + fraction) / k, f"fold {f + 1}/{k}: {message}")

        return train_scorer(scorer, PRIOR_LOSS, rows, None, f"prior{f}", fold_report)

    models = fit_folds(fit_fold, train, k, seed=scorer.config.seed)
    return models.out_of_fold(c, sample), models.mean_of(val, c), models.models[-1]


def choose_prior(
    source: PriorSource, *, naive: np.ndarray, model: np.ndarray, file: np.ndarray | None
) -> np.ndarray:
    """The prior ``source`` names, (C,) float64.

    Raises:
        ValueError: ``source`` is ``file`` and no file prior was read.
    """
    chosen = {PriorSource.MODEL: model, PriorSource.NAIVE: naive, PriorSource.FILE: file}[source]
    if chosen is None:
        raise ValueError("the prior source is 'file' but no prior file was read; pass --prior-file PATH")
    return chosen


def estimate_priors(
    scorer: Scorer,
    train: np.ndarray,
    val: np.ndarray,
    report: Progress,
    *,
    file_prior: np.ndarray | None = None,
) -> Priors:
    """Train the ignore-mode model(s) and estimate every prior of the cycle.

    Args:
        scorer: the cycle's shared images and features.
        train: (n,) int64 usable training rows; val: (v,) int64 usable validation rows.
        report: this stage's progress.
        file_prior: (C,) float64 from :func:`read_prior_file` when ``CycleConfig.prior`` is ``file``.
    """
    targets = scorer.data.targets.take(train)
    naive = naive_prior(targets)
    sample = prior_sample(
        len(train), scorer.data.n_classes, seed=scorer.config.seed, max_cells=PRIOR_SAMPLE_CELLS
    )
    probs, val_probs, fit = prior_model_probs(scorer, train, val, report, sample=sample)
    whole = len(sample) == len(train)
    report(
        1.0,
        f"estimating the priors (one pass over {'the' if whole else f'{len(sample):,} sampled'} training images)",
    )
    if whole:
        model, method = model_prior_with_method(probs, targets)
    else:
        model, method = model_prior_with_method(probs, targets.take(sample), population=targets)
    used = choose_prior(scorer.config.prior, naive=naive, model=model, file=file_prior)
    validation = validate(val_probs, scorer.data.targets.take(val))
    return Priors(naive, model, used, validation, fit, method.value)


__all__ = [
    "PRIOR_LOSS",
    "Priors",
    "choose_prior",
    "estimate_priors",
    "prior_model_probs",
    "prior_sample",
    "read_prior_file",
]
