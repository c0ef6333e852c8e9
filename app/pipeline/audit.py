"""The audit sample of a cycle: random unknown cells interleaved with the ranked suggestions.

``CycleConfig.audit_share`` of the review queue (``round(share * top_suggestions)`` cells) is drawn
uniformly at random from *all* unknown cells of the training images
(:func:`core.ranking.audit_sample`), whatever the model scores them. The queue keeps its length:
the audit cells take the places of the lowest-ranked suggestions. They are spread by
stratification: the queue of L positions is cut into as many blocks as there are audit cells
(about ``1 / share`` positions each), and each block gets one audit cell at a uniformly random
position, so however far reviewers get, about ``share`` of what they reviewed is audit, and where
an audit cell sits says nothing about it. A drawn cell that the ranking also picked is listed once,
as an audit cell in its block (kept at its rank it would be reached early exactly when it scores
high, and a queue reviewed only in part would over-count its positives).

Reviewers see audit cells like any other suggestion. Their decisions estimate, without bias, each
class's rate of missing positives among unknown cells and, by comparison, the ranked
suggestions' precision (the Models page; :mod:`app.audit_stats`).

The review queue orders by ``score DESC, id`` (``db.models.Suggestion``; ids follow the stored
``rank``), so an audit cell's ``score`` is a *queue key*, not the model's likelihood: it lies between
its neighbours' scores (evenly spaced when several audit cells meet between the same two ranked
ones; equal to the neighbour's at either end of the queue). Its ``prob`` is the model's real
probability of the cell and its ``prior`` the class prior, as for ranked cells, and its ``rank`` is
its position in the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from core.audit_sample import audit_sample
from core.constants import UNKNOWN
from core.ranking import TopUnknown
from core.sparse_labels import LabelMatrix, SparseLabels, label_counts

#: Rows per block when counting unknown cells per class.
_COUNT_BLOCK = 16_384


class Queue(NamedTuple):
    """The review queue in order: cell ``j`` is ``(img_idx[j], cls_idx[j])`` with queue key ``score[j]``.

    ``score`` is non-increasing: the model's score for ranked cells, a key between the neighbours'
    for audit cells (``audit[j]`` True).
    """

    img_idx: np.ndarray  #: int64 (L,) row indices into the scored matrix
    cls_idx: np.ndarray  #: int64 (L,) class indices
    score: np.ndarray  #: float64 (L,) queue keys, non-increasing
    audit: np.ndarray  #: bool (L,) True for a cell of the audit sample


def n_audit_cells(share: float, top_suggestions: int) -> int:
    """The size of the audit sample: ``round(share * top_suggestions)`` (before capping)."""
    return round(share * top_suggestions)


def audit_queue(top: TopUnknown, targets: LabelMatrix, *, share: float, seed: Sequence[int]) -> Queue:
    """Interleave an audit sample of ``targets``' unknown cells with the ranked cells ``top``.

    Args:
        top: the ranked cells of ``targets``, best first (:func:`core.ranking.top_unknown` asked for
            ``top_suggestions`` cells; it returns fewer only when there are fewer unknown cells).
        targets: ``(n, C)`` labels (1 / 0 / -1; dense int8 or sparse) of the scored images; the
            audit sample is drawn from its -1 cells.
        share: the audit share in [0, 0.5]; ``round(share * len(top))`` cells are drawn (0: ``top``
            is returned unchanged, with no audit cell).
        seed: seeds of the draw and of the positions (e.g. ``(cycle seed, run id)``).

    Returns:
        The :class:`Queue` of ``len(top)`` cells: the ``len(top) - k`` best ranked cells that were
        not drawn, in rank order, and the ``k`` audit cells, one at a random position in each of
        ``k`` consecutive blocks of the queue.
    """
    size = len(top.img_idx)
    k = n_audit_cells(share, size)
    img_a, cls_a = audit_sample(targets, k, seed=[*seed, 0])
    k = len(img_a)
    if k == 0:
        return Queue(top.img_idx, top.cls_idx, top.score.astype(np.float64), np.zeros(size, dtype=bool))
    c = targets.shape[1]
    drawn = np.isin(top.img_idx * c + top.cls_idx, img_a * c + cls_a)
    kept = np.flatnonzero(~drawn)[: size - k]
    positions = stratified_positions(size, k, np.random.default_rng([*seed, 1]))
    is_audit = np.zeros(size, dtype=bool)
    is_audit[positions] = True
    img = np.empty(size, dtype=np.int64)
    cls = np.empty(size, dtype=np.int64)
    score = np.full(size, np.nan)
    img[positions], cls[positions] = img_a, cls_a
    img[~is_audit], cls[~is_audit] = top.img_idx[kept], top.cls_idx[kept]
    score[~is_audit] = top.score[kept]
    return Queue(img, cls, queue_keys(score), is_audit)


def stratified_positions(size: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random position in each of ``k`` blocks that cut ``range(size)`` evenly.

    Block ``j`` is ``[j * size // k, (j + 1) * size // k)``; needs ``1 <= k <= size``.

    Returns:
        int64 ``(k,)`` increasing positions.
    """
    bounds = (np.arange(k + 1, dtype=np.int64) * size) // k
    return bounds[:-1] + (rng.random(k) * np.diff(bounds)).astype(np.int64)


def queue_keys(score: np.ndarray) -> np.ndarray:
    """Fill the NaN places of a non-increasing ``score`` (L,) with keys between their neighbours.

    ``g`` NaNs between scores ``hi`` and ``lo`` get ``hi - (hi - lo) * i / (g + 1)``, i = 1..g; NaNs
    before the first score take its value, after the last one its value; all NaN gives zeros. Ties
    are ordered by position (the stored ids follow it).

    Returns:
        float64 (L,), non-increasing.
    """
    out = np.asarray(score, dtype=np.float64).copy()
    known = np.flatnonzero(~np.isnan(out))
    if known.size == 0:
        return np.zeros_like(out)
    gaps = np.flatnonzero(np.isnan(out))
    after = np.searchsorted(known, gaps)  # index into known of the next ranked place
    hi = out[known[np.maximum(after - 1, 0)]]
    lo = out[known[np.minimum(after, known.size - 1)]]
    prev_pos = np.where(after > 0, known[np.maximum(after - 1, 0)], -1)
    next_pos = np.where(after < known.size, known[np.minimum(after, known.size - 1)], out.size)
    frac = (gaps - prev_pos) / (next_pos - prev_pos)
    hi = np.where(after > 0, hi, lo)  # before the first ranked place: its score
    lo = np.where(after < known.size, lo, hi)  # after the last one: its score
    out[gaps] = np.clip(hi - (hi - lo) * frac, lo, hi)
    return np.minimum.accumulate(out)


def unknown_per_class(targets: LabelMatrix) -> np.ndarray:
    """Unknown cells per class of ``(n, C)`` targets (dense int8 or sparse), int64 ``(C,)`` (the audit's population)."""
    if isinstance(targets, SparseLabels):
        return label_counts(targets)[2].astype(np.int64)
    out = np.zeros(targets.shape[1], dtype=np.int64)
    for start in range(0, targets.shape[0], _COUNT_BLOCK):
        out += (targets[start : start + _COUNT_BLOCK] == UNKNOWN).sum(axis=0)
    return out


__all__ = ["Queue", "audit_queue", "n_audit_cells", "queue_keys", "stratified_positions", "unknown_per_class"]
