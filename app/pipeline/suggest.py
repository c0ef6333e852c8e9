"""The suggest step: score every unknown cell of the training images and keep the top ones.

With ``--folds 1`` the target model scores the images it trained on (their annotated cells, not
the unknown ones); with ``--folds K`` each image is scored by a target model trained on the other
folds (:func:`app.pipeline.cross_fit.cross_fit`, K more models). Cells are ranked by
:func:`core.ranking.top_unknown` with the class priors the target model used, and
``CycleConfig.audit_share`` of the queue is an audit sample of random unknown cells interleaved
with them (:mod:`app.pipeline.audit`; with share 0 the queue is the ranking alone).

Memory: with ``--folds 1`` the training images are scored in chunks of :func:`chunk_rows` rows
(about :data:`CHUNK_BYTES` of float32 probabilities each) through
:class:`core.ranking.StreamingTopK`, so no ``(n, C)`` float array exists: O(chunk × C + K) besides
the sparse labels. The audit cells' probabilities come from predicting just their rows. The
cross-fitted path (``--folds K``) still builds the ``(n, C)`` matrix and the dense labels
(:func:`training_probs`): it is for small datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.pipeline.audit import audit_queue, unknown_per_class
from app.pipeline.cross_fit import cross_fit
from app.pipeline.fit import Fit, Scorer, train_scorer
from common.progress import Progress
from core.ranking import TopUnknown, top_unknown
from core.ranking_stream import StreamingTopK, ranker_params
from core.sparse_labels import LabelMatrix, dense_rows

#: Bytes of float32 probabilities per chunk when the target model scores its training images
#: (``--folds 1``): rows per chunk = this / (4 × C), 27,962 rows for 600 classes.
CHUNK_BYTES = 64 << 20


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

    Builds the whole matrix: :func:`suggest` uses it only for the cross-fitted path (``folds`` > 1);
    with ``folds`` 1 it scores in chunks instead (:func:`streamed_top`).

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

    With ``folds`` 1 the rows are scored in chunks (:func:`streamed_top`; O(chunk × C + K) memory);
    with ``folds`` K > 1 the cross-fitted ``(n, C)`` matrix is built as before (:func:`training_probs`).

    Args:
        audit_seed: mixed with ``CycleConfig.seed`` into the audit sample's seed (the cycle passes
            the run id, so each run draws a fresh sample).
    """
    config = scorer.config
    targets = scorer.data.targets.take(train)
    seed = (config.seed, *audit_seed)
    if config.folds > 1:
        probs = training_probs(scorer, fit, train, prior, report)
        top = top_unknown(probs, targets.dense(), prior, config.top_suggestions)
        queue = audit_queue(top, targets, share=config.audit_share, seed=seed)
        cell_probs = probs[queue.img_idx, queue.cls_idx].astype(np.float64)
    else:
        top, top_probs = streamed_top(fit, train, targets, prior, config.top_suggestions, report)
        queue = audit_queue(top, targets, share=config.audit_share, seed=seed)
        cell_probs = queue_probs(fit, train, top, top_probs, queue.img_idx, queue.cls_idx, targets.shape[1])
    return Suggestions(
        rows=train[queue.img_idx],
        cls_idx=queue.cls_idx,
        score=queue.score,
        probs=cell_probs,
        priors=prior[queue.cls_idx],
        audit=queue.audit,
        unknown_cells=unknown_per_class(targets) if queue.audit.any() else np.zeros(0, dtype=np.int64),
    )


def chunk_rows(n_classes: int) -> int:
    """Rows per scoring chunk: :data:`CHUNK_BYTES` of float32 probabilities over ``n_classes`` (>= 1)."""
    return max(1, CHUNK_BYTES // (4 * max(1, n_classes)))


def streamed_top(
    fit: Fit, train: np.ndarray, targets: LabelMatrix, prior: np.ndarray, k: int, report: Progress
) -> tuple[TopUnknown, np.ndarray]:
    """The ``k`` best unknown cells of ``train`` by probability, scored chunk by chunk.

    Equal to ``top_unknown(fit.predict(train), targets, prior, k)`` on the same probabilities
    (:class:`core.ranking.StreamingTopK`), holding one chunk of :func:`chunk_rows` rows and the K
    kept cells: O(chunk × C + K) memory, never ``(n, C)``.

    Args:
        fit: the target model.
        train: (n,) int64 dataset rows (the target model's training images).
        targets: (n, C) their labels (1 / 0 / -1; sparse or dense int8); only -1 cells are ranked.
        prior: (C,) float64 class priors in [0, 1] (unused by the default ranker, kept for others).
        k: cells wanted (>= 0).
        report: progress: the share of images scored.

    Returns:
        (:class:`core.ranking.TopUnknown` with ``img_idx`` indexing ``train``, (K,) float32 the
        probabilities of those cells, each from the chunk it was scored in).
    """
    n, c = targets.shape
    step = chunk_rows(c)
    acc = StreamingTopK(k, ranker_params(targets, prior))
    for start in range(0, n, step):
        stop = min(n, start + step)
        probs = np.asarray(fit.predict(train[start:stop]), dtype=np.float32)
        acc.push(start, probs, dense_rows(targets, start, stop))
        report(stop / n, f"{stop:,}/{n:,} images scored")
    return acc.result(), acc.probs()


def queue_probs(
    fit: Fit,
    train: np.ndarray,
    top: TopUnknown,
    top_probs: np.ndarray,
    img_idx: np.ndarray,
    cls_idx: np.ndarray,
    n_classes: int,
) -> np.ndarray:
    """The model's probability of each queue cell ``(img_idx[j], cls_idx[j])``, float64 (L,).

    A cell of ``top`` takes its probability ``top_probs``; any other (an audit cell the ranking did
    not pick) is predicted from its row alone, in chunks of :func:`chunk_rows` distinct rows, so
    only the audit cells' rows are scored again.

    Args:
        fit: the model that scored ``top``.
        train: (n,) int64 dataset rows; ``img_idx`` and ``top.img_idx`` index it.
        top: the ranked cells; ``top_probs`` (K,) their probabilities.
        img_idx, cls_idx: (L,) int64 the queue's cells.
        n_classes: C, the number of classes.
    """
    out = np.empty(len(img_idx), dtype=np.float64)
    top_keys = top.img_idx * n_classes + top.cls_idx
    order = np.argsort(top_keys)
    sorted_keys = top_keys[order]
    keys = img_idx * n_classes + cls_idx
    pos = np.searchsorted(sorted_keys, keys)
    ranked = pos < len(sorted_keys)
    ranked[ranked] = sorted_keys[pos[ranked]] == keys[ranked]
    out[ranked] = top_probs[order[pos[ranked]]]
    missing = np.flatnonzero(~ranked)
    rows = np.unique(img_idx[missing])
    row_of = np.searchsorted(rows, img_idx[missing])
    step = chunk_rows(n_classes)
    for start in range(0, len(rows), step):
        probs = np.asarray(fit.predict(train[rows[start : start + step]]), dtype=np.float32)
        sel = (row_of >= start) & (row_of < start + step)
        out[missing[sel]] = probs[row_of[sel] - start, cls_idx[missing[sel]]]
    return out


__all__ = [
    "CHUNK_BYTES",
    "Suggestions",
    "chunk_rows",
    "queue_probs",
    "streamed_top",
    "suggest",
    "training_probs",
]
