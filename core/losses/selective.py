"""Class-aware selective loss (CSL; Ben-Baruch et al., CVPR 2022) and its ignore/negative modes.

The loss is stated exactly in ``shared/method/CSL.md``; this module reproduces the reference
implementation's numbers (see the golden case in ``tests/core/test_losses.py``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from common.choice import Choice
from core._validation import check_prior
from core.losses._bce import Group, summed_loss, weighted_bce
from core.losses._common import (
    LOG_CLAMP,
    Workspace,
    full_precision,
    prepare,
    set_epoch_noop,
    target_masks,
    top_unknowns,
)

__all__ = ["ClassAwareSelectiveLoss", "LossMode", "likelihood_topk_for", "resolve_topk"]

logger = logging.getLogger(__name__)

#: Number of classes the reference ``likelihood_topk`` (per image) was tuned for (MS-COCO).
REFERENCE_NUM_CLASSES: int = 80


class LossMode(Choice, kind="loss mode", plural="modes"):
    """How :class:`ClassAwareSelectiveLoss` treats unknown (-1) labels."""

    SELECTIVE = "selective"  #: CSL: ignore unknowns of common classes and the batch's most likely ones
    IGNORE = "ignore"  #: unknowns get no loss (BCE on annotated cells only)
    NEGATIVE = "negative"  #: every unknown is a negative (with gamma_unann / alpha_unann)


def resolve_topk(likelihood_topk: float, batch_size: int, num_classes: int) -> int:
    """Number K of unknown entries the likelihood rule ignores in one batch.

    Args:
        likelihood_topk: Either a count per image (``0`` or ``>= 1``; the reference meaning:
            ``K = likelihood_topk * B``) or a fraction of the classes per image in ``(0, 1)``
            (``K = round(likelihood_topk * C * B)``).
        batch_size: B, images in the batch.
        num_classes: C, classes.

    Returns:
        K >= 0, rounded half up.
    """
    if 0.0 < likelihood_topk < 1.0:
        return math.floor(likelihood_topk * num_classes * batch_size + 0.5)
    return math.floor(likelihood_topk * batch_size + 0.5)


def likelihood_topk_for(num_classes: int, per_image: float = 5.0) -> float:
    """Scale the reference per-image ``likelihood_topk`` (tuned for 80 classes) to ``num_classes``.

    With fewer than 80 classes the same share of cells is kept: the result is the fraction
    ``per_image / 80`` (so 24 classes ignore 1.5 cells per image, not 5 of 24). With 80 or more
    classes the reference count per image is kept (a missing positive per image does not become
    more common because the vocabulary is larger).

    Args:
        num_classes: C, number of classes (>= 1).
        per_image: The reference count per image at 80 classes.

    Returns:
        A value for ``ClassAwareSelectiveLoss(likelihood_topk=...)``.
    """
    if num_classes >= REFERENCE_NUM_CLASSES:
        return float(per_image)
    frac = per_image / REFERENCE_NUM_CLASSES
    if not 0.0 < frac < 1.0:
        raise ValueError(f"per_image must be in (0, {REFERENCE_NUM_CLASSES}), got {per_image}")
    return frac


def _check_nonneg(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class ClassAwareSelectiveLoss(nn.Module):
    """The class-aware selective loss with asymmetric focusing, summed over a batch.

    For ``p = sigmoid(x)`` and ``q = min(1 - p + clip, 1)`` (``q = 1 - p`` when ``clip`` is 0)::

        l(i,c) = - alpha_pos   * (1-p)^gamma_pos   * log p             if t =  1
                 - alpha_neg   * (1-q)^gamma_neg   * log q             if t =  0
                 - W(i,c) * alpha_unann * (1-q)^gamma_unann * log q    if t = -1
        loss   = sum over i, c of l(i,c)

    ``log`` takes its argument clamped below at 1e-8; the focusing factors carry no gradient.
    ``W`` is 0 for every unknown in ``ignore`` mode, 1 in ``negative`` mode, and in ``selective``
    mode 0 for unknowns of classes with ``prior[c] > prior_threshold`` (when a prior is given and
    the threshold is non-zero) and for the K unknown entries of the batch with the highest ``p``
    (lowest ``q``; slots spent on entries already ignored by the prior rule are used up). The
    entries are ranked by logit, which orders them exactly as ``q`` ascending does, without the
    ties float rounding creates in ``q``; exact ties are broken by class index, then row, so the
    loss does not depend on the order of the batch. (Entries whose shifted ``q`` is clamped at 1
    contribute 0, so which of them take leftover slots does not matter.)

    The loss is computed in float32 (float64 inputs stay float64) with autocast disabled, in one
    fused pass that also yields the gradient (:mod:`core.losses._bce`); it matches autograd over
    the formula above to float rounding, and its backward cannot be differentiated again.

    Args:
        mode: ``"selective"`` (CSL), ``"ignore"`` or ``"negative"``; see :class:`LossMode`.
        gamma_pos: Focusing exponent for positives (>= 0).
        gamma_neg: Focusing exponent for annotated negatives (>= 0).
        gamma_unann: Focusing exponent for unknowns trained as negatives (>= 0).
        alpha_pos: Weight of positives (>= 0).
        alpha_neg: Weight of annotated negatives (>= 0).
        alpha_unann: Weight of unknowns trained as negatives (>= 0).
        clip: Probability margin m in [0, 1) added to ``1 - p`` for negatives and unknowns.
        prior: Class prior, shape ``(C,)``, values in [0, 1] (sequence, array or tensor), or None.
        prior_threshold: Classes with ``prior > prior_threshold`` have their unknowns ignored in
            selective mode; 0 switches the rule off.
        likelihood_topk: Unknown entries ignored per image by the likelihood rule: a count
            (``K = likelihood_topk * B``) or, in ``(0, 1)``, a fraction of the classes
            (``K = round(likelihood_topk * C * B)``). See :func:`likelihood_topk_for`.

    Example:
        >>> loss_fn = ClassAwareSelectiveLoss(likelihood_topk=1)
        >>> logits = torch.zeros(2, 3)
        >>> targets = torch.tensor([[1, 0, -1], [-1, -1, 0]])
        >>> round(float(loss_fn(logits, targets)), 4)
        1.5596
    """

    prior: torch.Tensor | None
    ignored_classes: torch.Tensor | None

    def __init__(
        self,
        mode: str | LossMode = "selective",
        gamma_pos: float = 0.0,
        gamma_neg: float = 1.0,
        gamma_unann: float = 2.0,
        alpha_pos: float = 1.0,
        alpha_neg: float = 1.0,
        alpha_unann: float = 1.0,
        clip: float = 0.0,
        prior: Any = None,
        prior_threshold: float = 0.05,
        likelihood_topk: float = 5,
    ) -> None:
        super().__init__()
        self.mode = LossMode.from_str(mode)
        self.gamma_pos = _check_nonneg("gamma_pos", gamma_pos)
        self.gamma_neg = _check_nonneg("gamma_neg", gamma_neg)
        self.gamma_unann = _check_nonneg("gamma_unann", gamma_unann)
        self.alpha_pos = _check_nonneg("alpha_pos", alpha_pos)
        self.alpha_neg = _check_nonneg("alpha_neg", alpha_neg)
        self.alpha_unann = _check_nonneg("alpha_unann", alpha_unann)
        self.clip = _check_nonneg("clip", clip)
        if self.clip >= 1.0:
            raise ValueError(f"clip must be in [0, 1), got {clip}")
        self.prior_threshold = _check_nonneg("prior_threshold", prior_threshold)
        if self.prior_threshold > 1.0:
            raise ValueError(f"prior_threshold must be in [0, 1], got {prior_threshold}")
        self.likelihood_topk = _check_nonneg("likelihood_topk", likelihood_topk)
        self.register_buffer("prior", None, persistent=False)
        self.register_buffer("ignored_classes", None, persistent=False)
        self.set_prior(prior)
        self._ws = Workspace()

    def set_prior(self, prior: Any) -> None:
        """Set (or clear, with None) the class prior, shape ``(C,)``, values in [0, 1].

        The threshold comparison ``prior > prior_threshold`` is made here in float64.
        """
        if prior is None:
            self.prior = None
            self.ignored_classes = None
            return
        arr = check_prior(prior)
        self.prior = torch.from_numpy(arr)
        self.ignored_classes = torch.from_numpy(arr > self.prior_threshold)
        if self.mode is LossMode.SELECTIVE and self.prior_threshold > 0:
            logger.debug(
                "CSL prior rule ignores unknowns of %d of %d classes (threshold %.3g)",
                int(self.ignored_classes.sum()),
                arr.size,
                self.prior_threshold,
            )

    def annotated_part(self) -> ClassAwareSelectiveLoss:
        """This loss on annotated cells alone: an ``ignore``-mode loss with the same positive and
        negative terms (alpha, gamma, clip) and no prior, so it accepts ``(cells, 1)`` logits."""
        return ClassAwareSelectiveLoss(
            "ignore",
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            gamma_unann=self.gamma_unann,
            alpha_pos=self.alpha_pos,
            alpha_neg=self.alpha_neg,
            alpha_unann=self.alpha_unann,
            clip=self.clip,
        )

    def with_unknown_weight(self, scale: float) -> ClassAwareSelectiveLoss:
        """A copy whose unknown cells weigh ``scale`` times as much (``alpha_unann × scale``): the
        loss of a row sample of share ``1 / scale`` then estimates the unknown term of all rows."""
        copy = ClassAwareSelectiveLoss(
            self.mode,
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            gamma_unann=self.gamma_unann,
            alpha_pos=self.alpha_pos,
            alpha_neg=self.alpha_neg,
            alpha_unann=self.alpha_unann * scale,
            clip=self.clip,
            prior=None if self.prior is None else self.prior.cpu().numpy(),
            prior_threshold=self.prior_threshold,
            likelihood_topk=self.likelihood_topk,
        )
        return copy

    def set_epoch(self, epoch: int) -> None:
        """Accept the current epoch (0-based); this loss does not depend on it."""
        set_epoch_noop(epoch)

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode.value}, gamma=({self.gamma_pos:g}, {self.gamma_neg:g}, {self.gamma_unann:g}), "
            f"alpha=({self.alpha_pos:g}, {self.alpha_neg:g}, {self.alpha_unann:g}), clip={self.clip:g}, "
            f"prior={'none' if self.prior is None else len(self.prior)}, "
            f"prior_threshold={self.prior_threshold:g}, likelihood_topk={self.likelihood_topk:g}"
        )

    def unknown_weight(self, q: torch.Tensor, unknown: torch.Tensor) -> torch.Tensor:
        """W for every cell: 1 where an unknown is trained as a negative, else 0.

        Args:
            q: Shifted negative probability ``(B, C)``; the likelihood rule ignores the lowest.
            unknown: Bool mask of unknown cells ``(B, C)``.

        Returns:
            Bool tensor ``(B, C)``; False on every annotated cell.
        """
        with torch.no_grad():
            if self.mode is LossMode.IGNORE:
                return torch.zeros_like(unknown)
            if self.mode is LossMode.NEGATIVE:
                return unknown
            col_keep, drop = self._selection(-q, unknown)
            keep = (unknown if col_keep is None else unknown & col_keep).clone().contiguous()
            if drop is not None:
                keep.view(-1)[drop] = False
            return keep

    def _selection(
        self, score: torch.Tensor, unknown: torch.Tensor, ws: Workspace | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Selective mode's two rules: the prior rule's classes and the likelihood rule's K cells.

        Args:
            score: Float tensor ``(B, C)`` ordered like ``p`` (higher = more likely positive): the
                likelihood rule ignores the K highest unknowns. The forward pass uses the logits,
                which order the cells as ``q`` does (ascending) without ``q``'s float rounding ties;
                cells whose shifted ``q`` is clamped at 1 contribute 0 whichever of them are picked.
            unknown: Bool mask ``(B, C)`` of the unknown cells.
            ws: Where to take scratch buffers from.

        Returns:
            ``(col_keep, drop)``: bool ``(C,)``, False for the classes whose unknowns the prior rule
            ignores (None: it ignores none); and the row-major flat indices of the K unknown cells
            the likelihood rule ignores (None: K = 0), exact ties in ``score`` broken by class
            index, then row.
        """
        col_keep: torch.Tensor | None = None
        ignored = self.ignored_classes
        if ignored is not None and self.prior_threshold > 0 and bool(ignored.any()):
            col_keep = ~ignored.to(device=unknown.device)
        k = resolve_topk(self.likelihood_topk, unknown.shape[0], unknown.shape[1])
        drop = top_unknowns(score, unknown, k, ws=ws) if k > 0 else None
        return col_keep, drop

    @property
    def annotated_only(self) -> bool:
        """True when unknown cells add nothing to the loss or its gradient (``ignore`` mode).

        Then a trainer may compute the logits of the annotated cells alone (a list of them, as
        ``(nnz, 1)`` logits and targets) and get the same summed loss: O(annotated cells) instead
        of O(B × C) per batch (:func:`core.train.train_head` does with sparse labels).
        """
        return self.mode is LossMode.IGNORE

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Compute the summed loss.

        The value and the gradient come from one fused pass (:mod:`core.losses._bce`); the
        backward is a single multiply and cannot be differentiated again.

        Args:
            logits: Float tensor ``(B, C)`` of raw scores (any float dtype; fp16/bf16 upcast).
            targets: Tensor ``(B, C)``: 1 positive, 0 negative, -1 unknown (any numeric dtype).

        Returns:
            Scalar tensor (float32, or float64 for float64 logits): the summed loss.

        Raises:
            ValueError: On mismatched shapes, bad target values, or a prior of the wrong length.
        """
        prior_len = None if self.prior is None else int(self.prior.shape[0])
        x, t = prepare(logits, targets, prior_len)
        with full_precision(x.device):
            ws = self._ws
            pos, neg, unknown = target_masks(t, ws)
            col_keep: torch.Tensor | None = None
            drop: torch.Tensor | None = None
            if self.mode is LossMode.SELECTIVE:
                col_keep, drop = self._selection(x, unknown, ws)
            neg_w = (self.alpha_neg, self.gamma_neg)
            unk_w = (self.alpha_unann, self.gamma_unann)
            groups: list[Group]
            if self.mode is LossMode.IGNORE:
                groups = [(neg, *neg_w)]
            elif col_keep is not None or drop is not None:
                keep = unknown if col_keep is None else unknown & col_keep
                groups = [(neg, *neg_w), (keep, *unk_w)]
            elif neg_w == unk_w:  # every non-positive cell weighted alike
                groups = [(None, *unk_w)]
            else:
                groups = [(neg, *neg_w), (unknown, *unk_w)]

            def compute(z: torch.Tensor, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
                return weighted_bce(
                    z,
                    pos,
                    groups,
                    pos_alpha=self.alpha_pos,
                    pos_gamma=self.gamma_pos,
                    clip=self.clip,
                    log_floor=LOG_CLAMP,
                    drop=drop,
                    need_grad=need_grad,
                    ws=ws,
                )

            return summed_loss(x, compute)


def prior_as_array(prior: Any, num_classes: int) -> np.ndarray | None:
    """Validate an optional prior for ``num_classes`` classes (None passes through)."""
    return None if prior is None else check_prior(prior, num_classes)
