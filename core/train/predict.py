"""Inference helpers: class probabilities of images from a (fine-tuned) model."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from core.data import Batch, ImageDataset, ImageSource, SkipLog, create_loader, create_transform_for
from core.device import select_device
from core.train._control import ProgressFn, report

logger = logging.getLogger(__name__)

__all__ = ["predict_images", "predict_probs"]


def predict_probs(
    model: nn.Module,
    loader: DataLoader | Iterable[Batch],
    *,
    amp: bool | None = None,
    skipped: SkipLog | None = None,
    on_progress: ProgressFn | None = None,
) -> np.ndarray:
    """Sigmoid probabilities of ``model`` for every image a loader yields.

    Args:
        model: Any module mapping (B, 3, H, W) to (B, C) logits; run on the device of its parameters,
            in eval mode (its train/eval mode is restored afterwards).
        loader: Yields ``core.data.Batch`` objects (``create_loader`` over an ``ImageDataset``); its
            ``dataset`` gives N.
        amp: bf16 autocast; None = on for CUDA only.
        skipped: Receives ``(image id, reason)`` of every skipped image when given.
        on_progress: ``(fraction, message)`` after every batch.

    Returns:
        (N, C) float32 probabilities in [0, 1], row i ↔ dataset item i; rows of skipped images are NaN.
    """
    device = next(model.parameters()).device
    use_amp = device.type == "cuda" if amp is None else amp
    total = len(loader.dataset)  # type: ignore[attr-defined, arg-type]
    num_batches = len(loader)  # type: ignore[arg-type]
    out: np.ndarray | None = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for b, batch in enumerate(loader):
                if skipped is not None:
                    skipped.update(batch.skipped)
                if len(batch.indices):
                    images = batch.images.to(device, non_blocking=True)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                        logits = model(images)
                    probs = torch.sigmoid(logits.float()).cpu().numpy()
                    if out is None:
                        out = np.full((total, probs.shape[1]), np.nan, dtype=np.float32)
                    out[batch.indices.numpy()] = probs
                report(on_progress, (b + 1) / max(num_batches, 1), f"predicting: batch {b + 1}/{num_batches}")
    finally:
        model.train(was_training)
    if out is None:
        classes = getattr(model, "num_classes", 0)
        out = np.full((total, int(classes)), np.nan, dtype=np.float32)
    return out


def predict_images(
    model: nn.Module,
    source: ImageSource,
    *,
    image_size: int,
    normalize: bool = False,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "auto",
    max_pixels: int | None = None,
    on_progress: ProgressFn | None = None,
) -> tuple[np.ndarray, dict[str, str]]:
    """Probabilities for every image of ``source`` with the eval transform (resize + centre crop).

    Args:
        model: A timm model (moved to ``device``).
        source: The N images.
        image_size: Square input size in px (use the training config's).
        normalize: Mean/std normalisation (use the training config's).
        batch_size: Images per forward pass.
        num_workers: DataLoader worker processes.
        device: See ``core.device.select_device``.
        max_pixels: See ``core.data.load_image``.
        on_progress: ``(fraction, message)`` after every batch.

    Returns:
        ``(probs, skipped)``: (N, C) float32 with NaN rows for unreadable images, and image id → reason.
    """
    dev = device if isinstance(device, torch.device) else select_device(device)
    model.to(dev)
    transform = create_transform_for(model, image_size=image_size, is_training=False, normalize=normalize)
    loader = create_loader(
        ImageDataset(source, None, transform, max_pixels=max_pixels),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )
    log = SkipLog()
    probs = predict_probs(model, loader, skipped=log, on_progress=on_progress)
    return probs, log.as_dict()
