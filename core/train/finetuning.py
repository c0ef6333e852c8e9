"""Fine-tune a whole timm network on partially labelled images (single process or ``torchrun``).

One loop, top to bottom: per step set the one-cycle LR, forward (bf16 autocast and channels-last on
CUDA), loss in float32, backward, clip, step, EMA update; checkpoint (rank 0, atomic) at the end of
every epoch, every ``checkpoint_every`` steps and when stopped; resume from the checkpoint's own
config. Data order and augmentation are reseeded from (seed, epoch, rank) at each epoch, so a run
resumed at an epoch boundary reproduces the uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.optim import param_groups_weight_decay
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, Sampler

from core._validation import check_targets
from core.data import ImageDataset, ImageSource, SkipLog, create_loader, create_transform_for
from core.device import seed_everything
from core.models import CheckpointError, create_model, load_checkpoint, save_checkpoint
from core.train import _distributed as dist_util
from core.train._control import ProgressFn, StopFn, report
from core.train.config import FinetuneConfig, OptimizerName
from core.train.schedule import onecycle_lr

logger = logging.getLogger(__name__)

__all__ = ["FinetuneResult", "finetune", "load_finetuned", "make_optimizer", "resume_finetune"]

_FORMAT = "labelmend.finetune"
_VERSION = 1


@dataclass
class FinetuneResult:
    """What a fine-tuning call produced.

    Attributes:
        model: The weights to predict with (the EMA when EMA is on), in eval mode, on the training
            device, unwrapped (no DDP / compile).
        config: The config actually used (the checkpoint's own when resumed).
        epochs_done: Completed epochs.
        step: Optimiser steps taken in total (this process's count, equal on every rank).
        total_steps: Steps in the full run.
        epoch_losses: Mean batch loss of each completed epoch (averaged over ranks).
        skipped: Image id → reason for images that could not be read (all ranks, all epochs).
        stopped: True when ``should_stop`` ended the run early (a checkpoint was written).
        resumed_from_step: The step the run resumed from, or None for a fresh start.
        checkpoint_path: Where checkpoints were written, or None.
        seconds: Wall time of this call.
    """

    model: nn.Module
    config: FinetuneConfig
    epochs_done: int
    step: int
    total_steps: int
    epoch_losses: list[float]
    skipped: dict[str, str]
    stopped: bool
    resumed_from_step: int | None
    checkpoint_path: Path | None
    seconds: float

    @property
    def complete(self) -> bool:
        """True when every epoch ran."""
        return self.step >= self.total_steps


class _SkipFirst(Sampler[int]):
    """Yields a sampler's indices after dropping the first ``count`` (mid-epoch resume)."""

    def __init__(self, sampler: Sampler[int], count: int) -> None:
        self.sampler = sampler
        self.count = count

    def __iter__(self) -> Iterator[int]:
        for position, index in enumerate(self.sampler):
            if position >= self.count:
                yield index

    def __len__(self) -> int:
        return max(len(self.sampler) - self.count, 0)  # type: ignore[arg-type]


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def make_optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``model``'s parameters, weight decay off biases and norm weights."""
    skip = getattr(model, "no_weight_decay", None)
    no_decay = set(skip()) if callable(skip) else set()
    groups = param_groups_weight_decay(model, config.weight_decay, no_weight_decay_list=no_decay)
    if config.optimizer == OptimizerName.ADAMW:
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.Adam(groups, lr=config.lr)


def _check_targets(source: ImageSource, targets: np.ndarray, num_classes: int) -> None:
    if targets.shape != (len(source), num_classes):
        raise ValueError(
            f"targets must have shape (N, C) = ({len(source)}, {num_classes}), got {targets.shape}"
        )


def _read_checkpoint(path: Path) -> dict[str, Any]:
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != _FORMAT:
        raise CheckpointError(
            f"{path}: not a labelmend fine-tuning checkpoint (format {ckpt.get('format')!r}); "
            "pass another --checkpoint or start a new run"
        )
    return ckpt


def finetune(
    config: FinetuneConfig,
    source: ImageSource,
    targets: np.ndarray,
    loss: nn.Module,
    *,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = True,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> FinetuneResult:
    """Train the full network with ``loss`` on partially labelled images.

    Runs as one process, or as one of several under ``torchrun`` (DDP with a DistributedSampler;
    rank 0 writes checkpoints and reports progress; every rank returns the same weights).

    Args:
        config: The run's settings. When resuming, the checkpoint's saved config is used instead
            (a difference is logged).
        source: The N training images.
        targets: (N, C) int8 in {1, 0, -1}; passed to the loss as float32.
        loss: ``loss(logits (B, C) float32, targets (B, C) float32 in {1, 0, -1}) -> scalar``; its
            ``set_epoch(epoch)`` is called at each epoch start when it has one. Moved to the device.
        checkpoint_path: Checkpoint file, written atomically; None = no checkpoints.
        resume: Continue from ``checkpoint_path`` when it exists.
        on_progress: ``(fraction of the run, message)`` after every step (rank 0 only).
        should_stop: Polled before every step (rank 0 decides for all ranks); True writes a
            checkpoint and returns with ``stopped=True``.

    Returns:
        A ``FinetuneResult``.

    Raises:
        ValueError: ``targets`` does not match the images and classes.
        core.models.CheckpointError: The checkpoint cannot be used.
    """
    started = time.perf_counter()
    ckpt_path = Path(checkpoint_path) if checkpoint_path is not None else None
    ckpt: dict[str, Any] | None = None
    if ckpt_path is not None and resume and ckpt_path.is_file():
        ckpt = _read_checkpoint(ckpt_path)
        saved = FinetuneConfig.from_dict(ckpt["config"])
        if saved != config:
            logger.warning(
                "%s: resuming with the checkpoint's saved config, not the one passed in", ckpt_path
            )
        config = saved
    targets = check_targets(targets)
    _check_targets(source, targets, config.num_classes)
    info = dist_util.setup(config.device)
    try:
        return _train(config, source, targets, loss, ckpt, ckpt_path, info, on_progress, should_stop, started)
    finally:
        dist_util.teardown(info)


def resume_finetune(
    checkpoint_path: str | os.PathLike[str],
    source: ImageSource,
    targets: np.ndarray,
    loss: nn.Module,
    *,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> FinetuneResult:
    """Continue an interrupted run from its checkpoint, using only the config saved in it.

    Args:
        checkpoint_path: A checkpoint written by ``finetune``.
        source, targets, loss, on_progress, should_stop: As for ``finetune``.

    Returns:
        A ``FinetuneResult``.
    """
    config = FinetuneConfig.from_dict(_read_checkpoint(Path(checkpoint_path))["config"])
    return finetune(
        config,
        source,
        targets,
        loss,
        checkpoint_path=checkpoint_path,
        resume=True,
        on_progress=on_progress,
        should_stop=should_stop,
    )


def _train(
    config: FinetuneConfig,
    source: ImageSource,
    targets: np.ndarray,
    loss: nn.Module,
    ckpt: dict[str, Any] | None,
    ckpt_path: Path | None,
    info: dist_util.DistInfo,
    on_progress: ProgressFn | None,
    should_stop: StopFn | None,
    started: float,
) -> FinetuneResult:
    device = info.device
    use_amp = device.type == "cuda" if config.amp is None else config.amp
    channels_last = device.type == "cuda" if config.channels_last is None else config.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # --- model, EMA, optimiser (same initial weights on every rank) ---
    seed_everything(config.seed)
    pretrained = "none" if ckpt is not None else config.pretrained
    model = create_model(
        config.backbone, config.num_classes, pretrained=pretrained, drop_rate=config.drop_rate
    )
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    model.to(device=device, memory_format=memory_format)
    ema = ModelEmaV3(model, decay=config.ema_decay, use_warmup=True) if config.ema_decay > 0 else None
    if ema is not None and ckpt is not None and ckpt.get("ema") is not None:
        ema.module.load_state_dict(ckpt["ema"])
    optimizer = make_optimizer(model, config)
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    net: nn.Module = model
    if info.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    loss.to(device)

    # --- data: one DistributedSampler (also for a single process: seeded order per epoch) ---
    transform = create_transform_for(
        model,
        image_size=config.image_size,
        is_training=True,
        normalize=config.normalize,
        augment=config.augment(),
    )
    dataset = ImageDataset(source, targets, transform, max_pixels=config.max_pixels)
    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=config.seed, drop_last=False
    )
    per_rank = len(sampler)
    drop_last = per_rank >= config.batch_size
    steps_per_epoch = per_rank // config.batch_size if drop_last else 1
    total_steps = steps_per_epoch * config.epochs

    # --- where to start ---
    step = 0
    epoch_losses: list[float] = []
    partial = (0.0, 0)
    skipped = SkipLog()
    resumed_from: int | None = None
    if ckpt is not None:
        epoch_losses = [float(v) for v in ckpt.get("epoch_losses", [])]
        skipped.update(dict(ckpt.get("skipped", {})).items())
        if ckpt.get("steps_per_epoch") == steps_per_epoch:
            step = int(ckpt["step"])
            partial = (float(ckpt.get("partial_loss", 0.0)), int(ckpt.get("partial_batches", 0)))
        else:
            logger.warning(
                "%s: steps per epoch changed (images or processes); resuming at the last epoch end", ckpt_path
            )
            step = int(ckpt["epochs_done"]) * steps_per_epoch
        epoch_losses = epoch_losses[: step // steps_per_epoch]
        resumed_from = step
        logger.info("resuming at step %d of %d (epoch %d)", step, total_steps, step // steps_per_epoch + 1)

    def checkpoint(loss_sum: float, batches: int) -> None:
        if ckpt_path is None:
            return
        if info.is_main:
            save_checkpoint(
                ckpt_path,
                {
                    "format": _FORMAT,
                    "version": _VERSION,
                    "config": config.to_dict(),
                    "model": model.state_dict(),
                    "ema": ema.module.state_dict() if ema is not None else None,
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "epochs_done": step // steps_per_epoch,
                    "steps_per_epoch": steps_per_epoch,
                    "total_steps": total_steps,
                    "epoch_losses": list(epoch_losses),
                    "partial_loss": loss_sum,
                    "partial_batches": batches,
                    "skipped": skipped.as_dict(),
                    "world_size": info.world_size,
                },
            )
        dist_util.barrier(info)

    # --- the loop ---
    stopped = False
    start_epoch = step // steps_per_epoch
    for epoch in range(start_epoch, config.epochs):
        done_in_epoch = step - epoch * steps_per_epoch
        seed_everything(_epoch_seed(config.seed, epoch, info.rank))
        sampler.set_epoch(epoch)
        if callable(getattr(loss, "set_epoch", None)):
            loss.set_epoch(epoch)
        loader = create_loader(
            dataset,
            batch_size=config.batch_size,
            sampler=_SkipFirst(sampler, done_in_epoch * config.batch_size),
            num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
            drop_last=drop_last,
        )
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        loss_sum += partial[0] if epoch == start_epoch else 0.0
        batches = partial[1] if epoch == start_epoch else 0
        for batch in loader:
            skipped.update(batch.skipped)
            want_stop = bool(should_stop()) if should_stop is not None and info.is_main else False
            any_empty, want_stop = dist_util.any_flag(info, len(batch.indices) == 0, want_stop)
            if want_stop:
                stopped = True
                break
            lr = onecycle_lr(step, total_steps, config.lr, pct_start=config.pct_start)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if not any_empty:  # every rank skips together, or DDP's all-reduce would hang
                images = batch.images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                batch_targets = batch.targets.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = net(images)
                value = loss(logits.float(), batch_targets)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update(model, step=step)
                loss_sum += value.detach().double()
                batches += 1
            step += 1
            if info.is_main:
                report(
                    on_progress,
                    step / total_steps,
                    f"epoch {epoch + 1}/{config.epochs} step {step}/{total_steps} lr {lr:.2e}",
                )
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step % steps_per_epoch:
                checkpoint(float(loss_sum), batches)
        if stopped:
            checkpoint(float(loss_sum), batches)
            logger.info("stopped at step %d of %d; checkpoint written", step, total_steps)
            break
        total, count = dist_util.sum_values(info, float(loss_sum), float(batches))
        epoch_losses.append(total / count if count else float("nan"))
        logger.info("epoch %d/%d: mean batch loss %.4f", epoch + 1, config.epochs, epoch_losses[-1])
        checkpoint(0.0, 0)

    dist_util.broadcast_buffers(info, model)
    if ema is not None:
        dist_util.broadcast_buffers(info, ema.module)
    merged = SkipLog()
    for part in dist_util.gather_objects(info, skipped.as_dict()):
        merged.update(part.items())
    final = ema.module if ema is not None else model
    final.eval()
    return FinetuneResult(
        model=final,
        config=config,
        epochs_done=step // steps_per_epoch,
        step=step,
        total_steps=total_steps,
        epoch_losses=epoch_losses,
        skipped=merged.as_dict(),
        stopped=stopped,
        resumed_from_step=resumed_from,
        checkpoint_path=ckpt_path,
        seconds=time.perf_counter() - started,
    )


def load_finetuned(
    path: str | os.PathLike[str], *, use_ema: bool = True, device: str | torch.device = "cpu"
) -> tuple[nn.Module, FinetuneConfig]:
    """Rebuild a fine-tuned model from its checkpoint's saved config, for prediction.

    Args:
        path: A checkpoint written by ``finetune``.
        use_ema: Load the EMA weights when the checkpoint has them.
        device: Where to put the model.

    Returns:
        ``(model in eval mode, config)``.

    Raises:
        core.models.CheckpointError: Not a fine-tuning checkpoint, or refused.
    """
    ckpt = _read_checkpoint(Path(path))
    config = FinetuneConfig.from_dict(ckpt["config"])
    model = create_model(config.backbone, config.num_classes, pretrained="none", drop_rate=config.drop_rate)
    state = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(state)
    return model.to(device).eval(), config
