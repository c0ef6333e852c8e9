"""An offline stand-in for pretrained weights.

Real users start from ImageNet (or larger) weights, which cannot be downloaded on a machine without
internet. For the demo and the quality benchmark we pretrain a small timm backbone once, fully
supervised, on a *disjoint* generated image set (other images, other seed, flatter class
prevalence than the data it is later used on), and pass the checkpoint as ``--pretrained PATH``.
Like ImageNet features for photos, its features know the visual vocabulary (shapes, colours) but
have never seen the images or the partial labels they will be used with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.losses import loss_from_name
from core.models import save_checkpoint
from core.synthetic import SceneConfig, generate_dataset, write_dataset
from core.train import FinetuneConfig, ProgressFn, finetune

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StandInConfig:
    """How the stand-in backbone is pretrained (part of its cache key).

    Attributes:
        backbone: timm model name.
        image_size: px; use the size the backbone will embed at.
        n_images: generated, fully labelled training images.
        epochs: passes over them.
        batch_size: images per step.
        lr: peak learning rate (Adam, one-cycle).
        seed: generator and training seed (the demo and benchmark data use other seeds).
        num_classes: classes of the generated vocabulary.
    """

    backbone: str = "resnet10t"
    image_size: int = 64
    n_images: int = 2400
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 90_210
    num_classes: int = 24

    def key(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def standin_path(cache_dir: str | Path, config: StandInConfig) -> Path:
    """Where the stand-in checkpoint for ``config`` lives under ``cache_dir``."""
    return Path(cache_dir) / f"standin-{config.backbone}-{config.image_size}px-{config.key()}.pth"


def ensure_standin(
    cache_dir: str | Path,
    config: StandInConfig | None = None,
    *,
    device: str = "auto",
    on_progress: ProgressFn | None = None,
) -> Path:
    """The stand-in checkpoint, pretrained now if it is not cached yet (a minute or two on a CPU).

    Returns:
        Path of a ``.pth`` file with ``{"model": state_dict, "config": {...}}``, loadable by
        ``core.models.create_model(name, C, pretrained=path)`` (its classifier is replaced).
    """
    cfg = config or StandInConfig()
    path = standin_path(cache_dir, cfg)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scenes = SceneConfig(
        num_classes=cfg.num_classes,
        image_size=cfg.image_size,
        head_prevalence=0.4,
        tail_prevalence=0.12,
        layout_seed=cfg.seed,
    )
    data = generate_dataset(cfg.n_images, seed=cfg.seed, config=scenes, split_fractions=(1.0, 0.0, 0.0))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        written = write_dataset(data, tmp, annotations=data.truth)
        from core.data import ImageSource

        source = ImageSource(
            written.images_dir, tuple(data.image_ids), tuple(f"{i}.jpg" for i in data.image_ids)
        )
        ft = FinetuneConfig(
            backbone=cfg.backbone,
            num_classes=cfg.num_classes,
            image_size=cfg.image_size,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            ema_decay=0.0,
            auto_augment=None,
            re_prob=0.0,
            crop_scale_min=0.7,
            seed=cfg.seed,
            device=device,
        )
        result = finetune(
            ft, source, data.truth, loss_from_name("negative", cfg.num_classes), on_progress=on_progress
        )
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    save_checkpoint(path, {"model": state, "config": dataclasses.asdict(cfg)})
    log.info("stand-in backbone %s pretrained in %.0f s: %s", cfg.backbone, result.seconds, path)
    return path


__all__ = ["StandInConfig", "ensure_standin", "standin_path"]
