"""Simple competitors to CSL from the missing-label literature, adapted to {1, 0, -1} targets.

All three train annotated positives and annotated negatives as such and differ only in how they
treat unknown (-1) cells. Like :class:`~core.losses.selective.ClassAwareSelectiveLoss` they return
the plain **sum** over the batch (the reference WAN and LL-R code divides by ``B * C``; a sum keeps
one learning rate valid across all our losses), and they are computed in float32 with autocast off.
Like CSL they compute the value and the gradient in one pass without autograd (WAN and LL-R through
:func:`core.losses._bce.weighted_bce`); the backward is one multiply.

* :class:`HillLoss` — Zhang et al. 2021, "Simple and Robust Loss Design for Multi-Label Learning
  with Missing Labels": positives use the focal margin loss, every negative (annotated or
  assumed) the Hill loss.
* :class:`WeakAssumeNegativeLoss` — Cole et al. 2021, "Multi-Label Learning from Single Positive
  Labels": unknowns are negatives weighted by ``1 / (C - 1)``.
* :class:`LargeLossRejection` — Kim et al. 2022, "Large Loss Matters in Weakly Supervised
  Multi-Label Classification" (LL-R): unknowns are negatives, except the largest of those losses,
  which are rejected at a rate that grows each epoch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.losses._bce import power, summed_loss, weighted_bce
from core.losses._common import (
    Workspace,
    full_precision,
    prepare,
    set_epoch_noop,
    target_masks,
    top_unknowns,
)

__all__ = ["HillLoss", "LargeLossRejection", "WeakAssumeNegativeLoss"]


def _check_nonneg(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class HillLoss(nn.Module):
    """Hill loss for negatives, focal margin loss for positives (Zhang et al. 2021).

    With ``p = sigmoid(x)`` and ``p_m = sigmoid(x - margin)``::

        l = - (1 - p_m)^gamma * log p_m     if t =  1      (focal margin; the weight is differentiated,
                                                            as in focal loss and the reference code)
            (lamb - p) * p^2                if t in {0, -1} (Hill: bounded, small for confident p)

    This is the paper's loss: every negative, annotated (0) or assumed (-1), gets the Hill term
    (the paper has no annotated negatives; an annotated one is a negative like the others).
    ``hill_verified_negatives=False`` instead keeps the exact BCE ``-log(1 - p)`` for annotated
    negatives, since they are known to be negative, and uses Hill only for unknowns.

    Args:
        lamb: The Hill weight ``lambda`` (paper: 1.5).
        margin: Logit margin ``m`` of the positive term (paper: 1.0).
        gamma: Focusing exponent of the positive term (paper: 2.0).
        hill_verified_negatives: Hill term (True, the paper) or BCE (False) for annotated negatives.
    """

    def __init__(
        self,
        lamb: float = 1.5,
        margin: float = 1.0,
        gamma: float = 2.0,
        hill_verified_negatives: bool = True,
    ) -> None:
        super().__init__()
        self.lamb = _check_nonneg("lamb", lamb)
        self.margin = _check_nonneg("margin", margin)
        self.gamma = _check_nonneg("gamma", gamma)
        if not isinstance(hill_verified_negatives, bool):
            raise ValueError(
                f"hill_verified_negatives must be True or False, got {hill_verified_negatives!r}"
            )
        self.hill_verified_negatives = hill_verified_negatives
        self._ws = Workspace()

    def set_epoch(self, epoch: int) -> None:
        """Accept the current epoch (0-based); this loss does not depend on it."""
        set_epoch_noop(epoch)

    def extra_repr(self) -> str:
        return (
            f"lamb={self.lamb:g}, margin={self.margin:g}, gamma={self.gamma:g}, "
            f"hill_verified_negatives={self.hill_verified_negatives}"
        )

    def _compute(
        self, x: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, need_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Value and gradient: the Hill term over the batch, the sparse cells by index.

        d/dx of ``(lamb - p) p^2`` is ``p^2 (2 lamb - 3 p) (1 - p)``; of the focal margin term
        ``(1 - p_m)^gamma (gamma p_m log p_m - (1 - p_m))``; of BCE ``-log(1 - p)`` it is ``p``.
        """
        x = x.contiguous()
        special = pos if self.hill_verified_negatives else pos | neg
        idx = torch.nonzero(special.reshape(-1)).squeeze(1)  # positives (and BCE negatives)
        xs = x.view(-1)[idx]
        is_pos = pos.reshape(-1)[idx]
        # The sparse cells, with the reference's own formulas.
        xm = xs - self.margin
        pm = torch.sigmoid(xm)
        log_pm = F.logsigmoid(xm)
        focus = power(1.0 - pm, self.gamma)
        special_val = torch.where(is_pos, -focus * log_pm, F.softplus(xs))
        # The Hill term on every other cell.
        ws = self._ws
        p = torch.sigmoid(x, out=ws.get("p", x))
        pp = torch.mul(p, p, out=ws.get("pp", x))
        buf = torch.mul(p, -1.0, out=ws.get("buf", x)).add_(self.lamb).mul_(pp)  # (lamb - p) p^2
        buf.view(-1).index_fill_(0, idx, 0.0)
        value = buf.sum() + special_val.sum()
        if not need_grad:
            return value, None
        pp.mul_(torch.mul(p, -1.0, out=buf).add_(1.0))  # p^2 (1 - p)
        grad = torch.mul(p, -3.0).add_(2.0 * self.lamb).mul_(pp)
        special_grad = torch.where(is_pos, focus * (self.gamma * pm * log_pm - (1.0 - pm)), torch.sigmoid(xs))
        grad.view(-1).index_copy_(0, idx, special_grad)
        return value, grad

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed loss for logits ``(B, C)`` and targets ``(B, C)`` in {1, 0, -1}; returns a scalar."""
        x, t = prepare(logits, targets)
        with full_precision(x.device):
            pos, neg, _ = target_masks(t, self._ws)
            return summed_loss(x, lambda z, need_grad: self._compute(z, pos, neg, need_grad))


class WeakAssumeNegativeLoss(nn.Module):
    """BCE with unknowns assumed negative and down-weighted ("WAN")::

        l = - log p            if t =  1
            - log(1 - p)       if t =  0
            - w * log(1 - p)   if t = -1,   w = 1 / (C - 1) by default (1 when C = 1)

    Args:
        unknown_weight: ``w``; None for ``1 / (C - 1)`` computed from the logits' class count.
    """

    def __init__(self, unknown_weight: float | None = None) -> None:
        super().__init__()
        self.unknown_weight = (
            None if unknown_weight is None else _check_nonneg("unknown_weight", unknown_weight)
        )
        self._ws = Workspace()

    def set_epoch(self, epoch: int) -> None:
        """Accept the current epoch (0-based); this loss does not depend on it."""
        set_epoch_noop(epoch)

    def extra_repr(self) -> str:
        return f"unknown_weight={'1/(C-1)' if self.unknown_weight is None else self.unknown_weight}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed loss for logits ``(B, C)`` and targets ``(B, C)`` in {1, 0, -1}; returns a scalar."""
        x, t = prepare(logits, targets)
        c = x.shape[1]
        w = self.unknown_weight if self.unknown_weight is not None else (1.0 / (c - 1) if c > 1 else 1.0)
        with full_precision(x.device):
            ws = self._ws
            pos, neg, unknown = target_masks(t, ws)
            groups = [(neg, 1.0, 0.0), (unknown, w, 0.0)]
            return summed_loss(
                x, lambda z, need_grad: weighted_bce(z, pos, groups, need_grad=need_grad, ws=ws)
            )


class LargeLossRejection(nn.Module):
    """BCE with unknowns assumed negative, rejecting the largest unknown losses (LL-R).

    In epoch ``e`` (0-based, set with :meth:`set_epoch`) the rejection rate is
    ``r = min(rate_step * e, 1)``; in each batch the ``ceil(B * C * r)`` unknown cells with the
    largest assumed-negative loss (equivalently the highest logits) get no loss. Epoch 0 rejects
    nothing, epoch 1 rejects 0.2 % of the cells (by default), and so on. Exact ties are broken
    by class index, then row.

    Args:
        rate_step: Rate increase per epoch (paper: 0.002).
    """

    def __init__(self, rate_step: float = 0.002) -> None:
        super().__init__()
        self.rate_step = _check_nonneg("rate_step", rate_step)
        self.epoch = 0
        self._ws = Workspace()

    def set_epoch(self, epoch: int) -> None:
        """Set the current epoch (0-based), which sets the rejection rate."""
        set_epoch_noop(epoch)
        self.epoch = epoch

    @property
    def rate(self) -> float:
        """Fraction of the batch's ``B * C`` cells rejected in the current epoch."""
        return min(self.rate_step * self.epoch, 1.0)

    def num_rejected(self, batch_size: int, num_classes: int) -> int:
        """Number of unknown cells rejected in a ``(B, C)`` batch this epoch (before capping)."""
        return math.ceil(batch_size * num_classes * self.rate - 1e-9)

    def extra_repr(self) -> str:
        return f"rate_step={self.rate_step:g}, epoch={self.epoch}"

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed loss for logits ``(B, C)`` and targets ``(B, C)`` in {1, 0, -1}; returns a scalar."""
        x, t = prepare(logits, targets)
        with full_precision(x.device):
            ws = self._ws
            pos, _, unknown = target_masks(t, ws)
            k = self.num_rejected(x.shape[0], x.shape[1])
            drop = top_unknowns(x, unknown, k, ws=ws) if k > 0 else None
            groups = [(None, 1.0, 0.0)]
            return summed_loss(
                x, lambda z, need_grad: weighted_bce(z, pos, groups, drop=drop, need_grad=need_grad, ws=ws)
            )
