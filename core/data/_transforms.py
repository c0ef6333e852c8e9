"""timm data config and transforms for a model (eval, and training with RandAugment + random erasing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config
from torch import nn


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (defaults follow the CSL reference recipe: RandAugment + Cutout).

    Attributes:
        auto_augment: timm auto-augment policy string; ``None`` turns it off.
        re_prob: Probability of random erasing (Cutout-style), in [0, 1].
        re_mode: Erased-pixel fill: ``"const"`` (zeros), ``"rand"`` or ``"pixel"`` (per-pixel normal).
        crop_scale_min: Smallest area fraction kept by the random resized crop, in (0, 1].
        hflip: Probability of a horizontal flip.
    """

    auto_augment: str | None = "rand-m9-mstd0.5"
    re_prob: float = 0.5
    re_mode: str = "const"
    crop_scale_min: float = 0.5
    hflip: float = 0.5


def data_config_for(model: nn.Module, *, image_size: int, normalize: bool = False) -> dict[str, Any]:
    """timm data config for ``model`` at ``image_size``, optionally without mean/std normalisation.

    Args:
        model: A timm model (its ``pretrained_cfg`` gives interpolation and crop_pct).
        image_size: Square input size in px.
        normalize: ``False`` keeps inputs in [0, 1] (the CSL reference recipe: mean 0, std 1);
            ``True`` uses the model's mean/std.

    Returns:
        A dict with ``input_size``, ``interpolation``, ``mean``, ``std``, ``crop_pct`` and ``crop_mode``.
    """
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 px, got {image_size}")
    cfg = resolve_data_config({"input_size": (3, image_size, image_size)}, model=model)
    cfg["input_size"] = (3, image_size, image_size)
    if not normalize:
        cfg["mean"] = (0.0, 0.0, 0.0)
        cfg["std"] = (1.0, 1.0, 1.0)
    return cfg


def create_transform_for(
    model: nn.Module,
    *,
    image_size: int,
    is_training: bool,
    normalize: bool = False,
    augment: AugmentConfig | None = None,
) -> Callable[[Image.Image], torch.Tensor]:
    """timm transform: eval (resize + centre crop) or train (random resized crop, flip,
    RandAugment, random erasing).

    Args:
        model: The timm model the inputs are for.
        image_size: Square input size in px.
        is_training: Build the augmenting training transform.
        normalize: See ``data_config_for``.
        augment: Training augmentation; ``None`` uses ``AugmentConfig()``. Ignored for eval.

    Returns:
        A callable mapping an RGB Pillow image to a (3, image_size, image_size) float32 tensor.
    """
    cfg = data_config_for(model, image_size=image_size, normalize=normalize)
    if not is_training:
        return create_transform(**cfg, is_training=False)
    aug = augment or AugmentConfig()
    return create_transform(
        input_size=cfg["input_size"],
        is_training=True,
        scale=(aug.crop_scale_min, 1.0),
        hflip=aug.hflip,
        auto_augment=aug.auto_augment,
        interpolation=cfg["interpolation"],
        mean=cfg["mean"],
        std=cfg["std"],
        re_prob=aug.re_prob,
        re_mode=aug.re_mode,
    )
