"""Simple competitors to CSL from the missing-label literature, adapted to {1, 0, -1} targets.

All three train annotated positives and annotated negatives as such and differ only in how they
treat unknown (-1) cells. Like :class:`~core.losses.selective.ClassAwareSelectiveLoss` they return
the plain **sum** over the batch (the reference WAN and LL-R code divides by ``B * C``; a sum keeps
one learning rate valid across all our losses), and they are computed in float32 with autocast off.

* :class:`HillLoss` — Zhang et al. 2021, "Simple and Robust Loss Design for Multi-Label Learning
  with Missing Labels": positives use the focal margin loss, unknowns the Hill loss.
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

from core.losses._common import full_precision, lowest_unknowns, prepare, set_epoch_noop

__all__ = ["HillLoss", "LargeLossRejection", "WeakAssumeNegativeLoss"]


def _check_nonneg(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class HillLoss(nn.Module):
    """Hill loss for unknowns, focal margin loss for positives, BCE for annotated negatives.

    With ``p = sigmoid(x)`` and ``p_m = sigmoid(x - margin)``::

        l = - (1 - p_m)^gamma * log p_m     if t =  1   (focal margin; the weight is differentiated,
                                                         as in focal loss and the reference code)
            - log(1 - p)                    if t =  0   (verified negatives: BCE; or Hill, see below)
            (lamb - p) * p^2                if t = -1   (Hill: bounded, small for confident p)

    The paper has no verified negatives (every non-positive gets the Hill term); by default ours
    keep their exact BCE because they are known to be negative. ``hill_verified_negatives=True``
    gives them the Hill term too, as in the paper.

    Args:
        lamb: The Hill weight ``lambda`` (paper: 1.5).
        margin: Logit margin ``m`` of the positive term (paper: 1.0).
        gamma: Focusing exponent of the positive term (paper: 2.0).
        hill_verified_negatives: Use the Hill term (not BCE) for annotated negatives too.
    """

    def __init__(
        self,
        lamb: float = 1.5,
        margin: float = 1.0,
        gamma: float = 2.0,
        hill_verified_negatives: bool = False,
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

    def set_epoch(self, epoch: int) -> None:
        """Accept the current epoch (0-based); this loss does not depend on it."""
        set_epoch_noop(epoch)

    def extra_repr(self) -> str:
        return (
            f"lamb={self.lamb:g}, margin={self.margin:g}, gamma={self.gamma:g}, "
            f"hill_verified_negatives={self.hill_verified_negatives}"
        )

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed loss for logits ``(B, C)`` and targets ``(B, C)`` in {1, 0, -1}; returns a scalar."""
        x, t = prepare(logits, targets)
        with full_precision(x.device):
            zero = torch.zeros((), dtype=x.dtype, device=x.device)
            xm = x - self.margin
            pos = -((1.0 - torch.sigmoid(xm)) ** self.gamma) * F.logsigmoid(xm)
            p = torch.sigmoid(x)
            hill = (self.lamb - p) * p * p
            neg = hill if self.hill_verified_negatives else F.softplus(x)  # softplus(x) = -log(1 - p)
            out = torch.where(t == 1, pos, zero) + torch.where(t == 0, neg, zero)
            return (out + torch.where(t == -1, hill, zero)).sum()


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
            zero = torch.zeros((), dtype=x.dtype, device=x.device)
            pos = F.softplus(-x)
            neg = F.softplus(x)
            out = torch.where(t == 1, pos, zero) + torch.where(t == 0, neg, zero)
            return (out + torch.where(t == -1, w * neg, zero)).sum()


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
            zero = torch.zeros((), dtype=x.dtype, device=x.device)
            unknown = t == -1
            k = self.num_rejected(x.shape[0], x.shape[1])
            if k > 0:
                with torch.no_grad():
                    unknown = unknown & ~lowest_unknowns(-x.detach(), unknown, k)
            pos = F.softplus(-x)
            neg = F.softplus(x)
            out = torch.where(t == 1, pos, zero) + torch.where(t == 0, neg, zero)
            return (out + torch.where(unknown, neg, zero)).sum()
