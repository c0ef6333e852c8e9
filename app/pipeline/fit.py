"""Train and apply the cycle's models in either mode, behind one small interface.

``head``: a linear head on the frozen backbone's cached embeddings (see
:mod:`app.pipeline.features`); it trains in seconds. ``finetune``: the whole network,
checkpointed every epoch under the cycle's work folder so an interrupted job resumes.

:class:`Scorer` holds what every model of a cycle shares (the dataset, its features, the work
folder); :func:`train_scorer` trains one model and returns a :class:`Fit` whose ``predict`` gives
probabilities for any rows of the dataset.
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
from core.losses import loss_from_name
from core.losses.catalog import LossName
from core.sparse_labels import SparseLabels
from core.train import (
    FinetuneConfig,
    HeadConfig,
    finetune,
    predict_head,
    predict_head_cells,
    predict_images,
    save_head,
    train_head,
)

log = logging.getLogger(__name__)

#: Peak learning rates when ``CycleConfig.lr`` is None.
HEAD_LR = 1e-2
FINETUNE_LR = 2e-4


class CycleStopped(Exception):
    """The cycle was asked to stop (job cancelled); nothing of the unfinished run is stored."""


@dataclass
class Scorer:
    """The images and features of one cycle, shared by its prior, target and fold models.

    Attributes:
        config: the cycle's settings.
        data: the dataset's labels as arrays (N images, C classes).
        work_dir: where this cycle's heads and checkpoints are written.
        cache_dir: ``$LABELMEND_HOME/cache`` (embeddings and converted packaged weights).
        should_stop: polled while training and embedding; True stops with :class:`CycleStopped`.
        skipped: image id → why it was unreadable, filled as images are read.
        features: (M, D) float16 (as cached) or float32 pooled embeddings (head mode, after the
            features stage); heads cast each batch to float32.
        feature_row: (N,) int64 row of each image in ``features``, -1 = no embedding (unreadable).
        weights: the resolved initial weights (``hub``, ``none`` or a checkpoint path).
    """

    config: CycleConfig
    data: DatasetArrays
    work_dir: Path
    cache_dir: Path
    should_stop: Callable[[], bool] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    features: np.ndarray | None = None
    feature_row: np.ndarray | None = None
    weights: str = "none"

    @property
    def mode(self) -> TrainMode:
        return self.config.mode

    @property
    def source(self) -> ImageSource:
        return ImageSource(self.data.image_root, tuple(self.data.external_ids), tuple(self.data.paths))

    def usable(self, idx: np.ndarray) -> np.ndarray:
        """The images of ``idx`` (row indices, int64) that can be used (head mode: those with an embedding)."""
        if self.feature_row is None:
            return idx
        return idx[self.feature_row[idx] >= 0]


@dataclass
class Fit:
    """A trained model of the cycle.

    Attributes:
        predict: ``predict(idx)`` → (len(idx), C) float32 probabilities in [0, 1] for dataset rows ``idx``.
        artifacts: JSON-safe: the head or checkpoint path and what ``labelmend predict`` needs.
        seconds: training wall time.
        predict_cells: ``predict_cells(idx, labels)`` → float32 (nnz,) probabilities of the cells
            of ``labels`` (rows of ``idx``) alone, O(cells × D); None when the model has no
            cheaper way than ``predict`` (fine-tuned networks).
    """

    predict: Callable[[np.ndarray], np.ndarray]
    artifacts: dict[str, Any]
    seconds: float
    predict_cells: Callable[[np.ndarray, SparseLabels], np.ndarray] | None = None


class PredictedRows:
    """A model's probabilities of dataset rows ``idx``, computed one row block at a time.

    A :class:`core.sparse_labels.RowBlocks`: ``shape`` is ``(len(idx), C)`` and
    ``self[start:stop]`` is ``predict(idx[start:stop])``, float32 in [0, 1]. Nothing is kept, so a
    pass over it holds one block: this is how the cycle gives core/ a model's (N, C) scores
    without ever building them.

    Args:
        predict: ``predict(rows)`` → (len(rows), C) probabilities (e.g. :attr:`Fit.predict`).
        idx: (n,) int64 dataset rows.
        n_classes: C.
        cells: :attr:`Fit.predict_cells`, when the model has it: then ``self.cells(labels)``
            scores ``labels``' cells alone (partial mAP reads only those).
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        idx: np.ndarray,
        n_classes: int,
        cells: Callable[[np.ndarray, SparseLabels], np.ndarray] | None = None,
    ) -> None:
        self._predict = predict
        self._idx = np.asarray(idx, dtype=np.int64)
        self.shape = (len(self._idx), int(n_classes))
        if cells is not None:  # the RowBlocks ``cells`` method: annotated cells alone
            self.cells = lambda labels: cells(self._idx, labels)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("PredictedRows reads contiguous row slices only (rows[start:stop])")
        sel = self._idx[rows]
        if len(sel) == 0:
            return np.zeros((0, self.shape[1]), dtype=np.float32)
        return np.asarray(self._predict(sel), dtype=np.float32)


def train_scorer(
    scorer: Scorer,
    loss_name: LossName | str,
    idx: np.ndarray,
    prior: np.ndarray | None,
    tag: str,
    report: Progress,
) -> Fit:
    """Train a model with loss preset ``loss_name`` on images ``idx`` (row indices of the dataset).

    Args:
        scorer: the cycle's shared images and features.
        loss_name: a loss preset (:class:`~core.losses.catalog.LossName`).
        idx: (n,) int64 dataset rows to train on.
        prior: (C,) float64 class priors in [0, 1] for the loss (``csl``), or None.
        tag: names the model's files in the work folder (``prior``, ``target``, ``fold0`` …); the same
            tag resumes a fine-tuning checkpoint.
        report: this model's progress (fraction of its training, message).

    Raises:
        CycleStopped: ``scorer.should_stop()`` became true while training.
    """
    loss = loss_from_name(LossName.from_str(loss_name).value, scorer.data.n_classes, prior=prior)
    meta = {
        "backbone": scorer.config.backbone,
        "pretrained": scorer.weights,
        "image_size": scorer.config.image_size,
        "normalize": scorer.config.pretrained.normalizes_inputs,
        "mode": scorer.mode.value,
        "class_keys": list(scorer.data.class_keys),
    }
    if scorer.mode is TrainMode.HEAD:
        return _train_head(scorer, loss, idx, tag, report, meta)
    return _finetune(scorer, loss, idx, tag, report, meta)


#: Heads score validation cells alone (:func:`core.train.predict_head_cells`) from this many classes.
CELLS_ONLY_MIN_CLASSES = 2_048


def _train_head(
    scorer: Scorer, loss: nn.Module, idx: np.ndarray, tag: str, report: Progress, meta: dict[str, Any]
) -> Fit:
    cfg = scorer.config
    if scorer.features is None or scorer.feature_row is None:
        raise RuntimeError(
            "head mode needs the features stage first (app.pipeline.features.prepare_features)"
        )
    feats, rows = scorer.features, scorer.feature_row
    head_cfg = HeadConfig(
        num_classes=scorer.data.n_classes,
        in_features=feats.shape[1],
        epochs=cfg.epochs,
        lr=cfg.lr or HEAD_LR,
        seed=cfg.seed,
    )
    result = train_head(
        feats,  # shared: batches gather rows[idx] (no (n, D) copy of the training rows)
        scorer.data.targets.take(idx),
        loss,
        head_cfg,
        rows=rows[idx],
        on_progress=report,
        should_stop=scorer.should_stop,
    )
    if result.stopped:
        raise CycleStopped(f"stopped while training the {tag} model")
    path = save_head(scorer.work_dir / f"{tag}-head.pt", result.head, head_cfg, meta=meta)
    head = result.head

    def predict(sel: np.ndarray) -> np.ndarray:
        return predict_head(head, feats[rows[sel]])

    def predict_cells(sel: np.ndarray, labels: SparseLabels) -> np.ndarray:
        return predict_head_cells(head, feats, labels, rows=rows[sel])

    # Scoring cells one by one pays only with many classes: at 600 (bench cycle) the dense pass is
    # 10x faster (evaluate 0.06 s vs 0.68 s); at 9,605 the cells alone are (evaluate 13.0 s vs 4.0 s).
    cells = predict_cells if scorer.data.n_classes >= CELLS_ONLY_MIN_CLASSES else None
    return Fit(predict, {"head": str(path), **meta}, result.seconds, cells)


def _finetune(
    scorer: Scorer, loss: nn.Module, idx: np.ndarray, tag: str, report: Progress, meta: dict[str, Any]
) -> Fit:
    cfg = scorer.config
    ft_cfg = FinetuneConfig(
        backbone=cfg.backbone,
        num_classes=scorer.data.n_classes,
        pretrained=scorer.weights,
        image_size=cfg.image_size,
        normalize=cfg.pretrained.normalizes_inputs,
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
        scorer.data.targets.take(idx).dense(),  # fine-tuning: thousands of images, not millions
        loss,
        checkpoint_path=ckpt,
        on_progress=report,
        should_stop=scorer.should_stop,
    )
    if ft.stopped:
        raise CycleStopped(f"stopped while fine-tuning the {tag} model (checkpoint kept)")
    scorer.skipped.update(ft.skipped)
    model: nn.Module = ft.model

    def predict(sel: np.ndarray) -> np.ndarray:
        probs, skipped = predict_images(
            model,
            source.subset(sel),
            image_size=cfg.image_size,
            normalize=ft_cfg.normalize,
            batch_size=cfg.batch_size,
            num_workers=cfg.workers,
            device=cfg.device,
        )
        scorer.skipped.update(skipped)
        return np.nan_to_num(probs, nan=0.0)  # an unreadable image is never suggested

    return Fit(predict, {"checkpoint": str(ckpt), **meta}, ft.seconds)


__all__ = ["FINETUNE_LR", "HEAD_LR", "CycleStopped", "Fit", "PredictedRows", "Scorer", "train_scorer"]
