"""Train and apply the cycle's models in either mode, behind one small interface.

``head``: a frozen backbone's pooled embeddings, computed once per (backbone, weights, image size)
and cached under ``$LABELMEND_HOME/cache``; heads train on them in seconds.
``finetune``: the whole network, checkpointed every epoch so an interrupted job resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn

from app.pipeline.config import CycleConfig, TrainMode
from app.pipeline.load import DatasetArrays
from common.progress import Progress
from core.data import ImageSource
from core.device import seed_everything
from core.embeddings import embed_images
from core.losses import loss_from_name
from core.models import create_model
from core.pretrain import StandInConfig, ensure_standin, standin_path
from core.train import (
    FinetuneConfig,
    HeadConfig,
    finetune,
    predict_head,
    predict_images,
    save_head,
    train_head,
)

log = logging.getLogger(__name__)

HEAD_LR = 1e-2
# Seconds between appends of computed embeddings to the cache: the most extraction work a killed
# worker loses (each append also rewrites the cache's id index, so not much more often than this).
EMBED_FLUSH_S = 10.0
STANDIN = "standin"  # --pretrained standin: the offline stand-in backbone (see core.pretrain)
FINETUNE_LR = 2e-4


class CycleStopped(Exception):
    """The cycle was asked to stop (job cancelled); nothing of the unfinished run is stored."""


@dataclass
class Scorer:
    """The images and features of one cycle, shared by its prior, target and fold models."""

    config: CycleConfig
    data: DatasetArrays
    work_dir: Path
    cache_dir: Path
    should_stop: Callable[[], bool] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    features: np.ndarray | None = None  # (M, D) float, head mode
    feature_row: np.ndarray | None = None  # (N,) int64 row in ``features`` or -1
    weights: str = "none"  # resolved ``pretrained`` (a path for the stand-in)

    @property
    def mode(self) -> TrainMode:
        return TrainMode(self.config.mode)

    @property
    def source(self) -> ImageSource:
        return ImageSource(self.data.image_root, tuple(self.data.external_ids), tuple(self.data.paths))

    def pretrained(self, report: Progress | None = None) -> str:
        """The weights to start from: ``hub``, ``none``, a path, or the offline stand-in (``standin``)."""
        if self.config.pretrained != STANDIN:
            return self.config.pretrained
        cfg = StandInConfig(backbone=self.config.backbone, image_size=self.config.image_size)
        if report is not None and not standin_path(self.cache_dir, cfg).is_file():
            report(0.0, "pretraining the offline stand-in backbone (once, a minute or two)")
        return str(ensure_standin(self.cache_dir, cfg, device=self.config.device))

    def prepare(self, report: Progress) -> None:
        """Head mode: embed every image (cached ones are read, not recomputed)."""
        self.weights = self.pretrained(report)
        if self.mode is not TrainMode.HEAD:
            report(1.0, "fine-tuning reads images while training")
            return
        seed_everything(self.config.seed)  # a randomly initialised backbone must hash the same each time
        backbone = create_model(self.config.backbone, self.data.n_classes, pretrained=self.weights)
        emb = embed_images(
            backbone,
            self.source,
            self.cache_dir,
            backbone=self.config.backbone,
            image_size=self.config.image_size,
            batch_size=self.config.batch_size,
            num_workers=self.config.workers,
            device=self.config.device,
            flush_seconds=EMBED_FLUSH_S,
            on_progress=report,
            should_stop=self.should_stop,
        )
        if not emb.complete:
            raise CycleStopped("stopped while computing embeddings (the computed ones are cached)")
        self.skipped.update(emb.skipped)
        self.features = np.asarray(emb.embeddings, dtype=np.float32)
        rows = np.full(self.data.n_images, -1, dtype=np.int64)
        rows[emb.indices] = np.arange(len(emb.indices))
        self.feature_row = rows
        report(1.0, f"{len(emb.indices)} images embedded ({emb.computed} new, {len(emb.skipped)} unreadable)")

    def usable(self, idx: np.ndarray) -> np.ndarray:
        """The images of ``idx`` that can be used (head mode: those with an embedding)."""
        if self.feature_row is None:
            return idx
        return idx[self.feature_row[idx] >= 0]


@dataclass
class Fit:
    """A trained model of the cycle: ``predict(idx)`` gives (len(idx), C) float32 probabilities."""

    predict: Callable[[np.ndarray], np.ndarray]
    artifacts: dict[str, Any]
    seconds: float


def train_scorer(
    scorer: Scorer,
    loss_name: str,
    idx: np.ndarray,
    prior: np.ndarray | None,
    tag: str,
    report: Progress,
) -> Fit:
    """Train a model with loss preset ``loss_name`` on images ``idx`` (row indices of the dataset)."""
    cfg, data = scorer.config, scorer.data
    loss = loss_from_name(loss_name, data.n_classes, prior=prior)
    targets = data.targets[idx]
    meta = {
        "backbone": cfg.backbone,
        "pretrained": scorer.weights,
        "image_size": cfg.image_size,
        "mode": cfg.mode,
        "class_keys": list(data.class_keys),
    }
    if scorer.mode is TrainMode.HEAD:
        assert scorer.features is not None and scorer.feature_row is not None
        feats, rows = scorer.features, scorer.feature_row
        head_cfg = HeadConfig(
            num_classes=data.n_classes,
            in_features=feats.shape[1],
            epochs=cfg.epochs,
            lr=cfg.lr or HEAD_LR,
            seed=cfg.seed,
        )
        result = train_head(
            feats[rows[idx]], targets, loss, head_cfg, on_progress=report, should_stop=scorer.should_stop
        )
        if result.stopped:
            raise CycleStopped(f"stopped while training the {tag} model")
        path = save_head(scorer.work_dir / f"{tag}-head.pt", result.head, head_cfg, meta=meta)
        head = result.head

        def predict(sel: np.ndarray) -> np.ndarray:
            return predict_head(head, feats[rows[sel]])

        return Fit(predict, {"head": str(path), **meta}, result.seconds)

    ft_cfg = FinetuneConfig(
        backbone=cfg.backbone,
        num_classes=data.n_classes,
        pretrained=scorer.weights,
        image_size=cfg.image_size,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr or FINETUNE_LR,
        seed=cfg.seed,
        device=cfg.device,
        num_workers=cfg.workers,
    )
    source = scorer.source
    ckpt = scorer.work_dir / f"{tag}.pt"
    ft = finetune(
        ft_cfg,
        source.subset(idx),
        targets,
        loss,
        checkpoint_path=ckpt,
        on_progress=report,
        should_stop=scorer.should_stop,
    )
    if ft.stopped:
        raise CycleStopped(f"stopped while fine-tuning the {tag} model (checkpoint kept)")
    scorer.skipped.update(ft.skipped)
    model: nn.Module = ft.model

    def predict_ft(sel: np.ndarray) -> np.ndarray:
        probs, skipped = predict_images(
            model,
            source.subset(sel),
            image_size=cfg.image_size,
            batch_size=cfg.batch_size,
            num_workers=cfg.workers,
            device=cfg.device,
        )
        scorer.skipped.update(skipped)
        return np.nan_to_num(probs, nan=0.0)  # an unreadable image is never suggested

    return Fit(predict_ft, {"checkpoint": str(ckpt), **meta}, ft.seconds)


__all__ = ["EMBED_FLUSH_S", "CycleStopped", "Fit", "Scorer", "train_scorer"]
