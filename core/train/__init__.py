"""Training: full fine-tuning (GPU / torchrun) and the cached-embedding head (fast CPU retrain).

Public surface::

    finetune(config, source, targets, loss, *, checkpoint_path=None, resume=True,
             on_progress=None, should_stop=None) -> FinetuneResult
    resume_finetune(checkpoint_path, source, targets, loss, *, on_progress=None, should_stop=None)
    load_finetuned(path, *, use_ema=True, device="cpu") -> (model, FinetuneConfig)
    train_head(embeddings, targets, loss, config, *, on_progress=None, should_stop=None) -> HeadResult
    predict_head(head, embeddings) -> probs (N, C) float32
    predict_head_cells(head, embeddings, labels, *, rows=None) -> probs (nnz,) of labels' cells
    save_head(path, head, config, *, meta=None) / load_head(path) -> (head, HeadConfig, meta)
    predict_probs(model, loader) -> probs (N, C) float32;  predict_images(model, source, ...)
    onecycle_lr(step, total_steps, max_lr, *, pct_start=0.2, ...) -> float
"""

from core.train._control import ProgressFn, StopFn
from core.train.config import FinetuneConfig, HeadConfig, OptimizerName
from core.train.finetuning import FinetuneResult, finetune, load_finetuned, resume_finetune
from core.train.head import (
    HeadResult,
    create_head,
    load_head,
    predict_head,
    predict_head_cells,
    save_head,
    train_head,
)
from core.train.predict import predict_images, predict_probs
from core.train.schedule import onecycle_lr

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "HeadConfig",
    "HeadResult",
    "OptimizerName",
    "ProgressFn",
    "StopFn",
    "create_head",
    "finetune",
    "load_finetuned",
    "load_head",
    "onecycle_lr",
    "predict_head",
    "predict_head_cells",
    "predict_images",
    "predict_probs",
    "resume_finetune",
    "save_head",
    "train_head",
]
