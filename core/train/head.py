"""Train a linear (or small MLP) head on cached backbone embeddings — the interactive retrain path.

The backbone is frozen and its pooled embeddings come from ``core.embeddings`` (computed once per
backbone / weights / image size). The head trains with Adam and a one-cycle schedule on large
mini-batches of the in-memory embeddings: seconds for 100k × 512 on two CPU cores.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core._validation import check_targets
from core.device import fast_bfloat16, seed_everything, select_device
from core.models import CheckpointError, load_checkpoint, save_checkpoint
from core.sparse_labels import SparseLabels
from core.train._control import ProgressFn, StopFn, report
from core.train.config import HeadConfig, HeadSolver
from core.train.schedule import onecycle_lr

logger = logging.getLogger(__name__)

__all__ = [
    "FeatureNorm",
    "HeadResult",
    "create_head",
    "load_head",
    "predict_head",
    "predict_head_cells",
    "save_head",
    "train_head",
]

_FORMAT = "labelmend.head"
_VERSION = 1


class FeatureNorm(nn.Module):
    """Standardise features with stored statistics: ``(x - mean) / std``.

    Args:
        dim: D.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B, D) float32."""
        return (x - self.mean) / self.std


def create_head(config: HeadConfig) -> nn.Sequential:
    """The head module: ``FeatureNorm`` then a linear layer, or Linear-GELU-Linear when ``hidden > 0``.

    Args:
        config: Sizes and dropout.

    Returns:
        ``nn.Sequential`` mapping (B, D) float32 embeddings to (B, C) logits.
    """
    layers: list[nn.Module] = [FeatureNorm(config.in_features)]
    if config.dropout > 0:
        layers.append(nn.Dropout(config.dropout))
    if config.hidden > 0:
        layers += [nn.Linear(config.in_features, config.hidden), nn.GELU()]
        if config.dropout > 0:
            layers.append(nn.Dropout(config.dropout))
        layers.append(nn.Linear(config.hidden, config.num_classes))
    else:
        layers.append(nn.Linear(config.in_features, config.num_classes))
    return nn.Sequential(*layers)


@dataclass
class HeadResult:
    """What ``train_head`` produced.

    Attributes:
        head: The trained head, eval mode, on the CPU.
        config: The config used.
        epoch_losses: Adam: mean batch loss of each completed epoch; L-BFGS: loss after each round.
        steps: Adam steps taken.
        stopped: True when ``should_stop`` ended training early.
        seconds: Wall time of the call.
    """

    head: nn.Sequential
    config: HeadConfig
    epoch_losses: list[float]
    steps: int
    stopped: bool
    seconds: float


def _as_float_tensor(embeddings: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(embeddings, torch.Tensor):
        return embeddings.detach().to(torch.float32)
    return torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))


def _as_stored_tensor(embeddings: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The embeddings as a CPU tensor, float16 kept as float16 (half the memory; batches are cast)."""
    if isinstance(embeddings, torch.Tensor):
        x = embeddings.detach()
        return x if x.dtype in (torch.float16, torch.float32) else x.to(torch.float32)
    dtype = np.float16 if np.asarray(embeddings[:0]).dtype == np.float16 else np.float32
    array = np.ascontiguousarray(embeddings, dtype=dtype)
    with warnings.catch_warnings():  # a read-only memory map of the cache: shared, never written
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


#: Rows per block when feature statistics are summed (float64 temporaries of this many rows × D).
_STATS_BLOCK = 8_192


def _feature_stats(x: torch.Tensor | _Features) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std (population), float32 (D,), summed in float64 blocks."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.float32 and len(x) <= _STATS_BLOCK:
        var, mean = torch.var_mean(x, dim=0, correction=0)
        return mean, var.sqrt().clamp_min(1e-6)
    total = torch.zeros(x[0:1].shape[1], dtype=torch.float64)
    for start in range(0, len(x), _STATS_BLOCK):
        total += x[start : start + _STATS_BLOCK].to(torch.float64).sum(dim=0)
    mean64 = total / max(len(x), 1)
    m2 = torch.zeros_like(total)
    for start in range(0, len(x), _STATS_BLOCK):
        m2 += ((x[start : start + _STATS_BLOCK].to(torch.float64) - mean64) ** 2).sum(dim=0)
    std = (m2 / max(len(x), 1)).sqrt().clamp_min(1e-6)
    return mean64.to(torch.float32), std.to(torch.float32)


class _Features:
    """Training embeddings, optionally picked by a row map from a larger array without copying it.

    ``self[idx]`` is the (B, D) embeddings of training rows ``idx`` (a tensor of positions
    0 … N-1), in the stored dtype; with ``rows`` given it is ``x[rows[idx]]``, so an (M, D)
    feature store is shared, not copied into an (N, D) training array.
    """

    def __init__(self, x: torch.Tensor, rows: torch.Tensor | None) -> None:
        self.x, self.rows = x, rows

    def __len__(self) -> int:
        return len(self.x) if self.rows is None else len(self.rows)

    def numel(self) -> int:
        return len(self) * int(self.x.shape[1])

    def to(self, device: torch.device) -> _Features:
        return _Features(self.x.to(device), None if self.rows is None else self.rows.to(device))

    def __getitem__(self, idx: torch.Tensor | slice) -> torch.Tensor:
        if self.rows is None:
            return self.x[idx]
        return self.x[self.rows[idx]]

    def all(self) -> torch.Tensor:
        """(N, D) every training row (a copy when picked by ``rows``)."""
        return self.x if self.rows is None else self.x[self.rows]


class _Targets:
    """Training targets behind one interface: a dense int8 tensor, or sparse labels densified per batch."""

    def __init__(self, targets: np.ndarray | SparseLabels) -> None:
        self.sparse = targets if isinstance(targets, SparseLabels) else None
        self.dense = (
            None
            if self.sparse is not None
            else torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int8))
        )

    def __len__(self) -> int:
        return len(self.sparse) if self.sparse is not None else len(self.dense)  # type: ignore[arg-type]

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """int8 (B, C) targets of rows ``idx`` (on ``idx``'s device when dense)."""
        if self.sparse is not None:
            return torch.from_numpy(self.sparse.take(idx.cpu().numpy()).dense())
        return self.dense[idx]  # type: ignore[index]

    def all(self) -> torch.Tensor:
        """int8 (N, C): every row (the full-batch solver, small problems only)."""
        return torch.from_numpy(self.sparse.dense()) if self.sparse is not None else self.dense  # type: ignore[return-value]


def train_head(
    embeddings: np.ndarray | torch.Tensor,
    targets: np.ndarray | SparseLabels,
    loss: nn.Module,
    config: HeadConfig,
    *,
    rows: np.ndarray | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> HeadResult:
    """Train a head on fixed embeddings with Adam, one-cycle LR and shuffled mini-batches.

    Args:
        embeddings: (N, D) float features (float16/float32 array, memmap or tensor); copied once
            to a tensor of the same precision (float16 stays float16; each batch is cast to float32).
        targets: (N, C) int8 in {1, 0, -1}, or :class:`~core.sparse_labels.SparseLabels`
            (densified one batch at a time: memory O(annotated cells + batch × C)); passed to the
            loss per batch as float32.
        loss: ``loss(logits (B, C) float32, targets (B, C) float32) -> scalar``; ``set_epoch(epoch)``
            is called at each epoch start when it exists.
        config: Sizes and optimisation settings (D and C must match the arrays).
        rows: (N,) int64 row of ``embeddings`` of each training row, or None when ``embeddings``
            is the (N, D) training rows itself. With it ``embeddings`` may be any (M, D) store
            (e.g. every image's cached vector) and is shared, not copied: batches gather their rows.
        on_progress: ``(fraction, message)`` after every epoch.
        should_stop: Polled before every step; True ends training early (the head so far is kept).

    Returns:
        A ``HeadResult``.

    Raises:
        ValueError: Shapes do not match each other or the config, or targets hold other values.
    """
    started = time.perf_counter()
    if not isinstance(targets, SparseLabels):
        targets = check_targets(targets)
    n = len(targets)
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.shape != (n,) or (n and (rows.min() < 0 or rows.max() >= embeddings.shape[0])):
            raise ValueError(f"rows must be (N,) = ({n},) indices into the {embeddings.shape[0]} embeddings")
        if embeddings.shape[1] != config.in_features:
            raise ValueError(
                f"embeddings must have D = {config.in_features} columns, got {embeddings.shape[1]}"
            )
    elif embeddings.shape != (n, config.in_features):
        raise ValueError(
            f"embeddings must have shape (N, D) = ({n}, {config.in_features}), got {tuple(embeddings.shape)}"
        )
    if targets.shape[1] != config.num_classes:
        raise ValueError(f"targets must have shape (N, C) with C = {config.num_classes}, got {targets.shape}")
    if n == 0:
        raise ValueError("no training rows: embeddings and targets are empty")
    device = select_device(config.device)
    seed_everything(config.seed)
    x = _Features(_as_stored_tensor(embeddings), None if rows is None else torch.from_numpy(rows))
    y = _Targets(targets)
    head = create_head(config)
    if config.standardize:
        mean, std = _feature_stats(x)
        head[0].mean.copy_(mean)
        head[0].std.copy_(std)
    head.to(device).train()
    loss.to(device)
    solver = config.resolved_solver(n)
    fit = _fit_lbfgs if solver is HeadSolver.LBFGS else _fit_adam
    epoch_losses, step, stopped = fit(head, x, y, loss, config, device, on_progress, should_stop)
    head.to("cpu").eval()
    seconds = time.perf_counter() - started
    logger.info(
        "head (%s): %d rows, %d rounds, %d steps in %.2f s", solver, n, len(epoch_losses), step, seconds
    )
    return HeadResult(head, config, epoch_losses, step, stopped, seconds)


_Fit = tuple[list[float], int, bool]  # (loss per epoch or round, optimiser steps, stopped early)


def _decay_split(head: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(weight matrices, everything else): L2 applies to the first only."""
    decay = [p for name, p in head.named_parameters() if name.endswith("weight") and p.ndim > 1]
    no_decay = [p for name, p in head.named_parameters() if not (name.endswith("weight") and p.ndim > 1)]
    return decay, no_decay


def _fit_adam(
    head: nn.Module,
    x: _Features,
    y: _Targets,
    loss: nn.Module,
    config: HeadConfig,
    device: torch.device,
    on_progress: ProgressFn | None,
    should_stop: StopFn | None,
) -> _Fit:
    """Mini-batch Adam with a one-cycle LR over ``config.epochs`` shuffled passes."""
    n = len(y)
    decay, no_decay = _decay_split(head)
    optimizer = torch.optim.Adam(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    batch = min(config.batch_size, n)
    steps_per_epoch = -(-n // batch)
    total_steps = steps_per_epoch * config.epochs
    generator = torch.Generator().manual_seed(config.seed)
    on_device = device.type != "cpu" and x.numel() * 4 < 8 * 2**30
    if on_device:
        x = x.to(device)
        if y.dense is not None:
            y.dense = y.dense.to(device)
    cells_only = _annotated_cells_only(head, y, loss)
    share = 1.0 if cells_only else _dense_row_share(head, y, loss, config)
    sampled = _SampledUnknowns(loss, share) if share < 1.0 else None
    if sampled is not None:
        logger.info(
            "head: unknown cells scored on %.3g of each batch's rows (%d rows × %d classes)",
            share,
            n,
            config.num_classes,
        )
    low = config.bfloat16_products(n, fast_bfloat16(device.type))
    if low:
        logger.info("head: bfloat16 products (%d rows × %d classes)", n, config.num_classes)
    step = 0
    epoch_losses: list[float] = []
    stopped = False
    for epoch in range(config.epochs):
        if callable(getattr(loss, "set_epoch", None)):
            loss.set_epoch(epoch)
        order = torch.randperm(n, generator=generator)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, n, batch):
            if should_stop is not None and should_stop():
                stopped = True
                break
            idx = order[start : start + batch]
            if on_device:
                idx = idx.to(device)
            xb = x[idx].to(device, non_blocking=True).float()
            for group in optimizer.param_groups:
                group["lr"] = onecycle_lr(step, total_steps, config.lr, pct_start=config.pct_start)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
                if cells_only:
                    value = _annotated_cells_loss(head, xb, y.sparse.take(idx.cpu().numpy()), loss, device)  # type: ignore[union-attr]
                elif sampled is not None:
                    value = sampled.loss(head, xb, y, idx, device)
                else:
                    yb = y.batch(idx).to(device, non_blocking=True).float()
                    logits = head(xb)
                    with torch.autocast(device.type, enabled=False):
                        value = loss(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            loss_sum += value.detach().double()
            step += 1
        if stopped:
            break
        epoch_losses.append(float(loss_sum) / steps_per_epoch)
        report(
            on_progress,
            (epoch + 1) / config.epochs,
            f"head epoch {epoch + 1}/{config.epochs} loss {epoch_losses[-1]:.4f}",
        )
    return epoch_losses, step, stopped


#: The annotated-cells path pays off when classes / annotated cells per row is at least this: it
#: gathers (cells × D) rows instead of one dense (B × C × D) product, and a gather costs far more
#: per element than a GEMM. Measured on 2 CPU cores, 2 epochs of an ignore-mode head: 600 classes
#: with 10 cells a row (ratio 60) 4.38 s vs 1.21 s dense; 9,605 classes with 8 (ratio 1,200) 1.84 s
#: vs 6.35 s dense.
_CELLS_PATH_MIN_RATIO = 256


def _annotated_cells_only(head: nn.Module, y: _Targets, loss: nn.Module) -> bool:
    """True when a batch's loss can come from its annotated cells' logits alone.

    Sparse labels, a loss that ignores unknown cells (``loss.annotated_only``, the ``ignore``
    mode), a head ending in a linear layer, and many classes per annotated cell
    (:data:`_CELLS_PATH_MIN_RATIO`): the logit of cell (i, c) is then ``h_i · W_c + b_c``
    with ``h`` the features before the last layer, and the summed loss and its gradient equal the
    full ``(B, C)`` computation's (unknown cells contribute zero to both), at O(annotated cells × D)
    per batch instead of O(B × C × D).
    """
    if y.sparse is None or not getattr(loss, "annotated_only", False) or not isinstance(head[-1], nn.Linear):
        return False
    per_row = y.sparse.nnz / max(len(y.sparse), 1)
    return y.sparse.n_classes >= _CELLS_PATH_MIN_RATIO * max(per_row, 1.0)


def _annotated_cells_loss(
    head: nn.Module, xb: torch.Tensor, labels: SparseLabels, loss: nn.Module, device: torch.device
) -> torch.Tensor:
    """The summed loss of a batch's annotated cells (``labels``: its rows), computing only their logits."""
    h = head[:-1](xb)  # (B, D') features before the last layer
    last = head[-1]
    rows = torch.from_numpy(labels.row_of_cell()).to(device)
    cols = torch.from_numpy(labels.indices.astype(np.int64)).to(device)
    z = (h[rows].float() * last.weight[cols].float()).sum(dim=1) + last.bias[cols].float()  # (nnz,) logits
    if labels.nnz == 0:
        return z.sum()  # zero, with a graph: the optimiser still steps, as the dense path does
    target = torch.from_numpy(labels.values).to(device).float()
    with torch.autocast(z.device.type, enabled=False):
        return loss(z[:, None], target[:, None])


def _dense_row_share(head: nn.Module, y: _Targets, loss: nn.Module, config: HeadConfig) -> float:
    """Share of each batch's rows whose unknown cells are scored (1.0: all, the dense path).

    Below 1 only for sparse labels, a head ending in a linear layer, a loss that can split into
    its annotated and unknown parts (``with_unknown_weight`` / ``annotated_part``: CSL and
    ``negative``) and N × C above ``config.max_dense_cells``.
    """
    if y.sparse is None or not isinstance(head[-1], nn.Linear) or config.max_dense_cells <= 0:
        return 1.0
    if getattr(loss, "annotated_only", False):  # nothing to sample: unknown cells add nothing
        return 1.0
    if not (
        callable(getattr(loss, "with_unknown_weight", None))
        and callable(getattr(loss, "annotated_part", None))
    ):
        return 1.0
    cells = float(len(y.sparse)) * y.sparse.n_classes
    return 1.0 if cells <= config.max_dense_cells else config.max_dense_cells / cells


class _SampledUnknowns:
    """The batch loss when only a row share of the unknown cells is scored (see ``max_dense_cells``).

    The batch's rows come in random order, so its first ``m = ceil(share × B)`` rows are a uniform
    sample: they get dense (m, C) logits and the loss with unknown cells weighted ``B / m``; the
    other rows contribute their annotated cells' terms only (O(cells × D)). In expectation over
    the sample this is the dense batch loss; the annotated terms are exact.
    """

    def __init__(self, loss: nn.Module, share: float) -> None:
        self.base, self.share = loss, share
        self.annotated = loss.annotated_part()  # type: ignore[operator]
        self._weighted: dict[tuple[int, int], nn.Module] = {}

    def loss(
        self, head: nn.Module, xb: torch.Tensor, y: _Targets, idx: torch.Tensor, device: torch.device
    ) -> torch.Tensor:
        b = len(idx)
        m = min(b, max(1, math.ceil(self.share * b)))
        if (b, m) not in self._weighted:
            self._weighted[(b, m)] = self.base.with_unknown_weight(b / m).to(device)  # type: ignore[operator]
        yb = y.batch(idx[:m]).to(device, non_blocking=True).float()
        logits = head(xb[:m])
        with torch.autocast(device.type, enabled=False):
            value = self._weighted[(b, m)](logits.float(), yb)
        if m < b:
            rest = y.sparse.take(idx[m:].cpu().numpy())  # type: ignore[union-attr]
            value = value + _annotated_cells_loss(head, xb[m:], rest, self.annotated, device)
        return value


class _Stopped(Exception):
    """Raised inside the L-BFGS closure when ``should_stop`` says so."""


#: L-BFGS restarts (fresh curvature memory, ``loss.set_epoch`` advanced) at most this many times.
_LBFGS_ROUNDS = 4


def _fit_lbfgs(
    head: nn.Module,
    x: _Features,
    y: _Targets,
    loss: nn.Module,
    config: HeadConfig,
    device: torch.device,
    on_progress: ProgressFn | None,
    should_stop: StopFn | None,
) -> _Fit:
    """Full-batch L-BFGS (strong Wolfe line search) on ``loss + l2/2 · ||W||²``, last layer from zero.

    A loss whose weights depend on the predictions (CSL's selection, focusing) is a fixed function
    only between restarts: the iterations are split into ``min(epochs, 4)`` rounds, each a fresh
    L-BFGS whose line search sees one consistent objective.
    """
    last = head[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    head.eval()  # no dropout: L-BFGS needs a deterministic objective
    x, yf = x.all().to(device).float(), y.all().to(device).float()
    decay, _ = _decay_split(head)
    params = [p for p in head.parameters() if p.requires_grad]
    rounds = min(config.epochs, _LBFGS_ROUNDS)
    losses: list[float] = []
    steps = 0

    def objective() -> torch.Tensor:
        nonlocal steps
        if should_stop is not None and should_stop():
            raise _Stopped
        value = loss(head(x).float(), yf)
        if config.l2 > 0:
            value = value + 0.5 * config.l2 * sum((w * w).sum() for w in decay)
        steps += 1
        return value

    try:
        for r in range(rounds):
            if callable(getattr(loss, "set_epoch", None)):
                loss.set_epoch(r * config.epochs // rounds)
            iters = max(config.lbfgs_iters // rounds + (r < config.lbfgs_iters % rounds), 1)
            start, end = _lbfgs_round(params, objective, iters)
            if end >= start - 1e-6 * abs(start):
                # A loss whose weights move with the predictions can leave the line search no
                # consistent descent (CSL from the all-0.5 start, where every unknown ties): a few
                # plain gradient steps break the tie, then L-BFGS gets the round again.
                _adam_nudge(params, objective, steps=_NUDGE_STEPS)
                start, end = _lbfgs_round(params, objective, iters)
            losses.append(end)
            report(on_progress, (r + 1) / rounds, f"head L-BFGS round {r + 1}/{rounds} loss {end:.4f}")
    except _Stopped:
        return losses, steps, True
    return losses, steps, False


#: Full-batch Adam steps taken when an L-BFGS round makes no progress (see ``_fit_lbfgs``).
_NUDGE_STEPS = 20


def _lbfgs_round(
    params: list[nn.Parameter], objective: Callable[[], torch.Tensor], iters: int
) -> tuple[float, float]:
    """One fresh L-BFGS run of at most ``iters`` iterations; (objective before, objective after)."""
    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        value = objective()
        value.backward()
        return value

    start = float(optimizer.step(closure).detach())
    with torch.no_grad():
        end = float(objective())
    return start, end


def _adam_nudge(params: list[nn.Parameter], objective: Callable[[], torch.Tensor], *, steps: int) -> None:
    """``steps`` full-batch Adam steps (lr 1e-2) on ``objective``."""
    optimizer = torch.optim.Adam(params, lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        objective().backward()
        optimizer.step()


def predict_head(
    head: nn.Module,
    embeddings: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 65536,
) -> np.ndarray:
    """Sigmoid probabilities of a head on embeddings.

    Args:
        head: A head from ``train_head`` / ``load_head``.
        embeddings: (N, D) float features (any float dtype, memmap allowed).
        batch_size: Rows per forward pass.

    Returns:
        (N, C) float32 probabilities in [0, 1] (higher = more likely present).
    """
    device = next(head.parameters()).device
    was_training = head.training
    head.eval()
    n = embeddings.shape[0]
    out_features = [m for m in head.modules() if isinstance(m, nn.Linear)][-1].out_features
    out = np.empty((n, out_features), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            block = _as_float_tensor(embeddings[start : start + batch_size]).to(device)
            logits = head(block).float()
            if logits.device.type == "cpu":  # the sigmoid written straight into the result
                torch.sigmoid(logits, out=torch.from_numpy(out[start : start + len(block)]))
            else:
                out[start : start + len(block)] = torch.sigmoid(logits).cpu().numpy()
    head.train(was_training)
    return out


def predict_head_cells(
    head: nn.Module,
    embeddings: np.ndarray | torch.Tensor,
    labels: SparseLabels,
    *,
    rows: np.ndarray | None = None,
    block_rows: int = 8_192,
) -> np.ndarray:
    """Sigmoid probabilities of ``labels``' cells alone: O(cells × D), no (N, C) logits.

    The logit of cell (i, c) is ``h_i · W_c + b_c`` with ``h`` the features before the last
    linear layer, so partial mAP and other annotated-cell figures need only these.

    Args:
        head: a head from ``train_head`` / ``load_head`` ending in ``nn.Linear``.
        embeddings: (M, D) float features; row i of ``labels`` is ``embeddings[rows[i]]``
            (``embeddings[i]`` without ``rows``).
        labels: (N, C) the cells to score (their values are not read).
        rows: (N,) int64 rows of ``embeddings``, or None.
        block_rows: rows of ``labels`` per forward pass.

    Returns:
        float32 (nnz,) in [0, 1], the cells in ``labels``' CSR order.

    Raises:
        ValueError: the head does not end in a linear layer.
    """
    last = head[-1] if isinstance(head, nn.Sequential) else None
    if not isinstance(last, nn.Linear):
        raise ValueError("predict_head_cells needs a head ending in nn.Linear (a train_head head)")
    device = last.weight.device
    was_training = head.training
    head.eval()
    out = np.empty(labels.nnz, dtype=np.float32)
    n = len(labels)
    with torch.inference_mode():
        for start in range(0, n, block_rows):
            stop = min(n, start + block_rows)
            lo, hi = int(labels.indptr[start]), int(labels.indptr[stop])
            if hi == lo:
                continue
            sel = np.arange(start, stop) if rows is None else rows[start:stop]
            h = head[:-1](_as_float_tensor(embeddings[sel]).to(device))
            r = torch.from_numpy(np.repeat(np.arange(stop - start), np.diff(labels.indptr[start : stop + 1])))
            c = torch.from_numpy(labels.indices[lo:hi].astype(np.int64))
            z = (h[r.to(device)] * last.weight[c.to(device)]).sum(dim=1) + last.bias[c.to(device)]
            out[lo:hi] = torch.sigmoid(z.float()).cpu().numpy()
    head.train(was_training)
    return out


def save_head(
    path: str | os.PathLike[str],
    head: nn.Module,
    config: HeadConfig,
    *,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a head checkpoint atomically: config, weights and optional primitive ``meta``.

    Args:
        path: Destination file.
        head: The trained head.
        config: Its config (saved as a dict, so ``load_head`` can rebuild it).
        meta: Primitives to keep alongside (e.g. backbone name, embedding key, class ids).

    Returns:
        The path written.
    """
    state = {k: v.detach().cpu() for k, v in head.state_dict().items()}
    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "config": config.to_dict(),
        "model": state,
        "meta": dict(meta or {}),
    }
    return save_checkpoint(path, payload)


def load_head(path: str | os.PathLike[str]) -> tuple[nn.Sequential, HeadConfig, dict[str, Any]]:
    """Rebuild a head from its checkpoint (``weights_only`` load).

    Args:
        path: A file written by ``save_head``.

    Returns:
        ``(head in eval mode on the CPU, config, meta)``.

    Raises:
        core.models.CheckpointError: Not a head checkpoint, or refused.
    """
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != _FORMAT:
        raise CheckpointError(f"{path}: not a labelmend head checkpoint (format {ckpt.get('format')!r})")
    config = HeadConfig.from_dict(ckpt["config"])
    head = create_head(config)
    head.load_state_dict(ckpt["model"])
    return head.eval(), config, dict(ckpt.get("meta") or {})
