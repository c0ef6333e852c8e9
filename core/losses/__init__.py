"""Losses for partially annotated multi-label data (targets: 1 positive, 0 negative, -1 unknown).

Every loss is an ``nn.Module`` called as ``loss(logits, targets)`` on ``(B, C)`` tensors and
returning the summed scalar loss; every loss has ``set_epoch(epoch)``. Build presets by name with
:func:`loss_from_name` (names from :func:`list_losses`).

The preset names and descriptions (:mod:`core.losses.catalog`) import without torch; the loss
modules behind the other names are imported on first use, so ``from core.losses.catalog import
loss_names`` (the app's Train page) never loads torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core.losses.catalog import LOSS_DESCRIPTIONS, LossName, describe_loss, loss_names

if TYPE_CHECKING:
    from core.losses.baselines import HillLoss, LargeLossRejection, WeakAssumeNegativeLoss
    from core.losses.registry import CSL_GAMMA_NEG, is_loss, list_losses, loss_from_name, register_loss
    from core.losses.selective import ClassAwareSelectiveLoss, LossMode, likelihood_topk_for, resolve_topk

#: Public name → the module defining it (imported, with torch, on first access).
_LAZY = {
    "HillLoss": "core.losses.baselines",
    "LargeLossRejection": "core.losses.baselines",
    "WeakAssumeNegativeLoss": "core.losses.baselines",
    "CSL_GAMMA_NEG": "core.losses.registry",
    "is_loss": "core.losses.registry",
    "list_losses": "core.losses.registry",
    "loss_from_name": "core.losses.registry",
    "register_loss": "core.losses.registry",
    "ClassAwareSelectiveLoss": "core.losses.selective",
    "LossMode": "core.losses.selective",
    "likelihood_topk_for": "core.losses.selective",
    "resolve_topk": "core.losses.selective",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "CSL_GAMMA_NEG",
    "LOSS_DESCRIPTIONS",
    "ClassAwareSelectiveLoss",
    "HillLoss",
    "LargeLossRejection",
    "LossMode",
    "LossName",
    "WeakAssumeNegativeLoss",
    "describe_loss",
    "is_loss",
    "likelihood_topk_for",
    "list_losses",
    "loss_from_name",
    "loss_names",
    "register_loss",
    "resolve_topk",
]
