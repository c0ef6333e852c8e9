"""The suggest step: score every unknown cell of the training images and keep the top ones.

With ``--folds 1`` the target model scores the images it trained on (their annotated cells, not
the unknown ones); with ``--folds K`` each image is scored by a target model trained on the other
folds (:func:`app.pipeline.cross_fit.cross_fit`, K more models). Cells are ranked by
:func:`core.ranking.top_unknown` with the class priors the target model used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.pipeline.cross_fit import cross_fit
from app.pipeline.fit import Fit, Scorer, train_scorer
from common.progress import Progress
from core.ranking import top_unknown


@dataclass
class Suggestions:
    """The likely-missing labels of a cycle, best first (K of them).

    Attributes:
        rows: (K,) int64 dataset rows of the images.
        cls_idx: (K,) int64 class columns.
        score: (K,) float64 class-aware likelihood, higher = more likely a missing positive.
        probs: (K,) float64 the model's probability of each cell, in [0, 1].
        priors: (K,) float64 the class prior of each cell, in [0, 1].
    """

    rows: np.ndarray
    cls_idx: np.ndarray
    score: np.ndarray
    probs: np.ndarray
    priors: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def training_probs(
    scorer: Scorer, fit: Fit, train: np.ndarray, prior: np.ndarray, report: Progress
) -> np.ndarray:
    """The target model's probabilities of the training images' cells, (len(train), C) float32 in [0, 1].

    Args:
        scorer: the cycle's shared images and features.
        fit: the target model trained on all of ``train`` (used when ``folds`` is 1).
        train: (n,) int64 training rows.
        prior: (C,) float64 the prior the target model's loss used (for the fold models).
        report: this stage's progress.
    """
    folds = scorer.config.folds
    if folds <= 1:
        return np.asarray(fit.predict(train), dtype=np.float32)

    def fit_fold(rows: np.ndarray, f: int) -> Fit:
        report(f / (folds + 1), f"fold {f + 1}/{folds}")
        return train_scorer(scorer, scorer.config.loss, rows, prior, f"fold{f}", lambda *_: None)

    probs = cross_fit(fit_fold, train, folds, seed=scorer.config.seed).probs
    report(folds / (folds + 1), f"{folds} folds scored")
    return probs


def suggest(scorer: Scorer, fit: Fit, train: np.ndarray, prior: np.ndarray, report: Progress) -> Suggestions:
    """Score the unknown cells of ``train`` and keep the ``CycleConfig.top_suggestions`` best."""
    probs = training_probs(scorer, fit, train, prior, report)
    top = top_unknown(probs, scorer.data.targets[train], prior, scorer.config.top_suggestions)
    return Suggestions(
        rows=train[top.img_idx],
        cls_idx=top.cls_idx,
        score=top.score.astype(np.float64),
        probs=probs[top.img_idx, top.cls_idx].astype(np.float64),
        priors=prior[top.cls_idx],
    )


__all__ = ["Suggestions", "suggest", "training_probs"]
