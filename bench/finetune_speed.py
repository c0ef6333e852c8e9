"""`labelmend bench finetune`: fine-tuning throughput (images/s) of a timm backbone, as the loop runs it.

Each timed step is the body of :func:`core.train.finetuning.finetune`'s loop on a batch already on
the device: channels-last input, bf16 autocast forward, CSL loss in float32, backward, AdamW step
(weight decay off biases and norms, as ``make_optimizer`` sets it up) and the EMA update. Batches are random tensors,
so the number is the model's training speed without JPEG decoding (the data loader's speed depends
on the disk and CPU count, not on the accelerator). Each variant (``eager``, ``compile``) warms up
first (``torch.compile`` compiles in the warm-up), then times ``steps`` steps with the device
synchronised at both ends.

On a GPU: ``labelmend bench finetune --backbone resnet50 --image-size 224 --batch-size 128``.
On this CPU a small setting checks the path (bf16 off unless asked).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from timm.utils import ModelEmaV3

from core.device import select_device
from core.losses import loss_from_name
from core.models import create_model
from core.train.config import FinetuneConfig
from core.train.finetuning import make_optimizer


@dataclass(frozen=True)
class SpeedResult:
    """Throughput of one variant.

    Attributes:
        variant: ``eager`` or ``compile``.
        images_per_s: training images per second over the timed steps.
        step_ms: mean milliseconds per step.
        warmup_s: seconds of the warm-up steps (includes compilation for ``compile``).
        peak_memory_gib: peak device memory (CUDA only; 0 elsewhere).
    """

    variant: str
    images_per_s: float
    step_ms: float
    warmup_s: float
    peak_memory_gib: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    *,
    backbone: str,
    image_size: int,
    batch_size: int,
    num_classes: int = 600,
    steps: int = 20,
    warmup: int = 5,
    device: str = "auto",
    amp: bool | None = None,
    channels_last: bool | None = None,
    compile_model: bool = False,
    seed: int = 0,
) -> SpeedResult:
    """Time ``steps`` fine-tuning steps of ``backbone`` on random ``(batch_size, 3, S, S)`` batches.

    Args:
        amp / channels_last: None = on for CUDA only (the fine-tune loop's defaults).
        compile_model: wrap the model in ``torch.compile`` (warm-up includes compilation).

    Returns:
        The :class:`SpeedResult`.
    """
    dev = select_device(device)
    use_amp = dev.type == "cuda" if amp is None else amp
    cl = dev.type == "cuda" if channels_last is None else channels_last
    memory_format = torch.channels_last if cl else torch.contiguous_format
    torch.manual_seed(seed)
    model = create_model(backbone, num_classes, pretrained="none").to(device=dev, memory_format=memory_format)
    model.train()
    config = FinetuneConfig(backbone=backbone, num_classes=num_classes)
    optimizer = make_optimizer(model, config)
    ema = ModelEmaV3(model, decay=config.ema_decay, use_warmup=True)
    prior = np.full(num_classes, 0.05)
    loss = loss_from_name("csl", num_classes, prior=prior).to(dev)
    net = torch.compile(model) if compile_model else model
    gen = torch.Generator(device="cpu").manual_seed(seed)
    images = torch.rand((batch_size, 3, image_size, image_size), generator=gen).to(dev)
    images = images.contiguous(memory_format=memory_format)
    targets = torch.randint(-1, 2, (batch_size, num_classes), generator=gen, dtype=torch.int8).to(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = net(images)
        value = loss(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        ema.update(model)

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(dev)
    t1 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    t2 = time.perf_counter()
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else 0.0
    seconds = t2 - t1
    return SpeedResult(
        variant="compile" if compile_model else "eager",
        images_per_s=steps * batch_size / seconds,
        step_ms=1000 * seconds / steps,
        warmup_s=t1 - t0,
        peak_memory_gib=peak,
    )


def describe_device(device: str = "auto") -> str:
    """One line naming the device (GPU name and torch/CUDA versions, or the CPU thread count)."""
    dev = select_device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        return f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"{dev.type}, torch {torch.__version__}, {torch.get_num_threads()} threads"


__all__ = ["SpeedResult", "describe_device", "measure"]
