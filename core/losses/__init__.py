"""Losses for partially annotated multi-label data (targets: 1 positive, 0 negative, -1 unknown).

Every loss is an ``nn.Module`` called as ``loss(logits, targets)`` on ``(B, C)`` tensors and
returning the summed scalar loss; every loss has ``set_epoch(epoch)``. Build presets by name with
:func:`loss_from_name` (names from :func:`list_losses`).
"""

from core.losses.baselines import HillLoss, LargeLossRejection, WeakAssumeNegativeLoss
from core.losses.registry import CSL_GAMMA_NEG, LossName, is_loss, list_losses, loss_from_name, register_loss
from core.losses.selective import ClassAwareSelectiveLoss, LossMode, likelihood_topk_for, resolve_topk

__all__ = [
    "CSL_GAMMA_NEG",
    "ClassAwareSelectiveLoss",
    "HillLoss",
    "LargeLossRejection",
    "LossMode",
    "LossName",
    "WeakAssumeNegativeLoss",
    "is_loss",
    "likelihood_topk_for",
    "list_losses",
    "loss_from_name",
    "register_loss",
    "resolve_topk",
]
