"""The suggest step: score every unknown cell of the training images and keep the top ones.

With ``--folds 1`` the target model scores the images it trained on (their annotated cells, not
the unknown ones); with ``--folds K`` each image is scored by a target model trained on the other
folds (:func:`app.pipeline.cross_fit.cross_fit`, K more models). Cells are ranked by
:func:`core.ranking.top_unknown` with the class priors the target model used, and
``CycleConfig.audit_share`` of the queue is an audit sample of random unknown cells interleaved
with them (:mod:`app.pipeline.audit`; with share 0 the queue is the ranking alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.pipeline.audit import audit_queue, unknown_per_class
from app.pipeline.cross_fit import cross_fit
from app.pipeline.fit import Fit, Scorer, train_scorer
from common.progress import Progress
from core.ranking import top_unknown


@dataclass
class Suggestions:
    """The review queue of a cycle in order (K cells): likely-missing labels, best first, with the
    audit sample interleaved (:mod:`app.pipeline.audit`).

    Attributes:
        rows: (K,) int64 dataset rows of the images.
        cls_idx: (K,) int64 class columns.
        score: (K,) float64 queue key, non-increasing: for a ranked cell its class-aware likelihood
            (higher = more likely a missing positive); for an audit cell a key between its
            neighbours' scores, *not* the model's likelihood.
        probs: (K,) float64 the model's probability of each cell, in [0, 1].
        priors: (K,) float64 the class prior of each cell, in [0, 1].
        audit: (K,) bool True for a cell of the audit sample (drawn uniformly from the unknown
            training cells); empty = no audit cell.
        unknown_cells: (C,) int64 unknown cells per class of the training images, the population
            the audit sample was drawn from; empty when there is no audit sample.
    """

    rows: np.ndarray
    cls_idx: np.ndarray
    score: np.ndarray
    probs: np.ndarray
    priors: np.ndarray
    audit: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    unknown_cells: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if len(self.audit) == 0:
            self.audit = np.zeros(len(self.rows), dtype=bool)
        if len(self.audit) != len(self.rows):
            raise ValueError(f"audit has {len(self.audit)} flags for {len(self.rows)} suggestions")

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


def suggest(
    scorer: Scorer,
    fit: Fit,
    train: np.ndarray,
    prior: np.ndarray,
    report: Progress,
    *,
    audit_seed: Sequence[int] = (),
) -> Suggestions:
    """Score the unknown cells of ``train``: the ``CycleConfig.top_suggestions`` best, with the audit sample.

    Args:
        audit_seed: mixed with ``CycleConfig.seed`` into the audit sample's seed (the cycle passes
            the run id, so each run draws a fresh sample).
    """
    config = scorer.config
    probs = training_probs(scorer, fit, train, prior, report)
    targets = scorer.data.targets[train]
    top = top_unknown(probs, targets, prior, config.top_suggestions)
    queue = audit_queue(top, targets, share=config.audit_share, seed=(config.seed, *audit_seed))
    return Suggestions(
        rows=train[queue.img_idx],
        cls_idx=queue.cls_idx,
        score=queue.score,
        probs=probs[queue.img_idx, queue.cls_idx].astype(np.float64),
        priors=prior[queue.cls_idx],
        audit=queue.audit,
        unknown_cells=unknown_per_class(targets) if queue.audit.any() else np.zeros(0, dtype=np.int64),
    )


__all__ = ["Suggestions", "suggest", "training_probs"]
