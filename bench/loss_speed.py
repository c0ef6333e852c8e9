"""Micro benchmark: forward + backward time of every loss preset on one large batch (CPU).

Mirrors what ``core.train.head.train_head`` does per step: float32 logits ``(B, C)`` that require
grad and are not a leaf (there they come out of the head), float32 targets in {1, 0, -1},
``loss(logits, targets).backward()``. Targets follow the OpenImages-like sparsity of the cycle
benchmark (about 10 annotated cells per image, the rest unknown); ``ll-r`` is timed in epoch 5 so
that its rejection is active. Each preset runs once untimed (its scratch buffers are allocated
then), then ``repeats`` times; the best time is reported with the median, because on a shared
machine the best is the one least disturbed by other processes (``timeit``'s advice).

Run: ``labelmend bench loss-speed [--batch 4096] [--classes 600] [--repeats 5] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch

from core.losses import list_losses, loss_from_name

__all__ = ["loss_speed", "main"]


def _batch(batch: int, classes: int, annotated: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(B, C)`` float32 around -3 (most classes absent) and float32 targets in {1, 0, -1}."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=gen) * 2.0 - 3.0
    targets = torch.full((batch, classes), -1.0)
    k = min(annotated, classes)
    cols = torch.rand(batch, classes, generator=gen).argsort(dim=1)[:, :k]
    truth = (torch.rand(batch, k, generator=gen) < 0.4).float()  # verified cells: ~40 % positive
    targets.scatter_(1, cols, truth)
    return logits, targets


def loss_speed(
    batch: int = 4096,
    classes: int = 600,
    repeats: int = 5,
    *,
    annotated: int = 10,
    seed: int = 0,
    names: Sequence[str] | None = None,
    threads: int | None = None,
) -> dict[str, float]:
    """Time forward + backward of each loss preset and print one line per preset.

    Args:
        batch: B, rows per batch.
        classes: C, classes.
        repeats: Timed repetitions per preset (after one untimed warm-up); the median is reported.
        annotated: Annotated cells per row (the rest are unknown, -1).
        seed: Seed of the generated batch.
        names: Presets to time (default: all of :func:`core.losses.list_losses`).
        threads: Torch intra-op threads for the run (default: leave as is), restored afterwards.

    Returns:
        Preset name -> best forward + backward time in milliseconds.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _time_presets(batch, classes, repeats, annotated, seed, names)
    finally:
        torch.set_num_threads(previous_threads)


def _time_presets(
    batch: int, classes: int, repeats: int, annotated: int, seed: int, names: Sequence[str] | None
) -> dict[str, float]:
    logits, targets = _batch(batch, classes, annotated, seed)
    prior = np.clip(0.5 / np.arange(1, classes + 1) ** 0.8 * 1.5, 0.0, 1.0)  # a few classes above 0.5
    out: dict[str, float] = {}
    for name in names or list_losses():
        loss_fn = loss_from_name(name, classes, prior=prior)
        loss_fn.set_epoch(5)
        leaf = logits.clone().requires_grad_(True)
        times: list[float] = []
        for i in range(repeats + 1):
            leaf.grad = None
            x = leaf.view_as(leaf)  # not a leaf, like a head's output
            t0 = time.perf_counter()
            loss_fn(x, targets).backward()
            if i:
                times.append(time.perf_counter() - t0)
        out[name] = 1000.0 * min(times)
        print(
            f"{name:>9s}  best {out[name]:7.1f} ms  median {1000.0 * statistics.median(times):7.1f} ms"
            f"  fwd+bwd ({batch} x {classes}, {repeats} runs)"
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--loss", action="append", dest="names", help="preset to time (repeatable)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, 1-min load average {load:.2f}")
    loss_speed(args.batch, args.classes, args.repeats, names=args.names, threads=args.threads)


if __name__ == "__main__":
    main()
