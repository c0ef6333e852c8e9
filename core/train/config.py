"""Training configs: frozen dataclasses of primitives, saved in every checkpoint as a plain dict.

Resume and predict rebuild the model from the saved config, never from today's options.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from common.choice import Choice
from core.data import AugmentConfig

logger = logging.getLogger(__name__)

__all__ = [
    "BFLOAT16_MIN_CELLS",
    "LBFGS_MAX_MACS",
    "FinetuneConfig",
    "HeadConfig",
    "HeadPrecision",
    "HeadSolver",
    "OptimizerName",
]

#: ``HeadSolver.AUTO`` picks L-BFGS while one full pass costs at most this many multiply-adds
#: (N × D × C): about 0.2 s per iteration on two CPU cores, so ~100 iterations stay in seconds.
LBFGS_MAX_MACS: float = 1e9


class HeadSolver(Choice, kind="head solver", plural="solvers"):
    """How a head on frozen embeddings is optimised.

    ``lbfgs`` solves the L2-regularised problem to convergence on the whole training set at once
    (full batch, from a zero-initialised last layer), like a linear probe. Mini-batch Adam stops
    far from that optimum on high-dimensional features with few annotated cells per class and
    lands on solutions that fit the annotated cells and extrapolate noise to the unknown ones
    (Adam's sign-like steps use every feature direction alike); ``labelmend bench quality`` and
    the README measure the difference. ``adam`` (mini-batch, one-cycle) scales to any N.
    ``auto``: ``lbfgs`` for linear heads without dropout while N × D × C ≤ :data:`LBFGS_MAX_MACS`,
    else ``adam``.
    """

    AUTO = "auto"
    LBFGS = "lbfgs"
    ADAM = "adam"


class HeadPrecision(Choice, kind="head precision", plural="precisions"):
    """The dtype of a head's matrix products while it trains on mini-batches (Adam).

    ``bfloat16`` runs the products under ``torch.autocast`` (weights, optimiser state, loss and
    predictions stay float32). ``auto``: ``bfloat16`` when the problem is large, N × C ≥
    :data:`BFLOAT16_MIN_CELLS`, and bfloat16 is fast on the device
    (:func:`core.device.fast_bfloat16`: AMX CPUs, Ampere+ GPUs), else ``float32`` — so small
    problems (every study and quality benchmark) train exactly as in float32. L-BFGS heads are
    always float32 (the line search needs an exact objective).
    """

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"


#: ``HeadPrecision.AUTO`` switches to bfloat16 at this many training cells (images × classes).
BFLOAT16_MIN_CELLS: float = 1e9


class OptimizerName(StrEnum):
    """Optimisers for fine-tuning; weight decay is never applied to biases and norm weights."""

    ADAM = "adam"  #: Adam with L2 weight decay (the CSL reference recipe).
    ADAMW = "adamw"  #: AdamW, decoupled weight decay.


class _FromDict:
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Rebuild from ``dataclasses.asdict`` output; unknown keys are logged and ignored."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - names)
        if unknown:
            logger.warning("%s: ignoring unknown saved settings %s", cls.__name__, ", ".join(unknown))
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """Primitives only, for checkpoints and model rows."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class FinetuneConfig(_FromDict):
    """Everything that decides a fine-tuning run (defaults: the CSL reference recipe, scaled down).

    Attributes:
        backbone: timm model name.
        num_classes: C.
        pretrained: ``"none"``, ``"hub"`` or a local checkpoint path (used only when a run starts,
            never on resume).
        image_size: Square input size in px.
        epochs: Passes over the training images.
        batch_size: Images per step per process.
        lr: Peak learning rate of the one-cycle schedule.
        weight_decay: Weight decay (not on biases or norm weights).
        optimizer: ``"adam"`` or ``"adamw"`` (``OptimizerName``).
        pct_start: Warm-up fraction of the one-cycle schedule.
        ema_decay: EMA decay of the weights (timm ``ModelEmaV3`` with warm-up); 0 turns EMA off.
        drop_rate: Dropout before the classifier.
        normalize: Mean/std normalise inputs (False: inputs in [0, 1], as in the reference recipe).
        auto_augment: timm auto-augment policy (RandAugment by default); None turns it off.
        re_prob: Random-erasing (Cutout-style) probability.
        re_mode: Random-erasing fill, ``"const"``, ``"rand"`` or ``"pixel"``.
        crop_scale_min: Smallest area fraction of the random resized crop.
        hflip: Horizontal flip probability.
        amp: bf16 autocast; None = on for CUDA only.
        channels_last: channels-last memory format; None = on for CUDA only.
        compile: Wrap the model in ``torch.compile``.
        grad_clip: Clip the gradient norm to this value; 0 = off.
        seed: Seed for weights, data order and augmentation.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        num_workers: DataLoader worker processes per training process.
        max_pixels: Largest accepted image in pixels; None = Pillow's limit.
        checkpoint_every: Also checkpoint every this many steps (0 = only at the end of each epoch).
    """

    backbone: str
    num_classes: int
    pretrained: str = "none"
    image_size: int = 224
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 1e-4
    optimizer: str = OptimizerName.ADAM.value
    pct_start: float = 0.2
    ema_decay: float = 0.9997
    drop_rate: float = 0.0
    normalize: bool = False
    auto_augment: str | None = "rand-m9-mstd0.5"
    re_prob: float = 0.5
    re_mode: str = "const"
    crop_scale_min: float = 0.5
    hflip: float = 0.5
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    grad_clip: float = 0.0
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    max_pixels: int | None = None
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        for name in ("image_size", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.optimizer not in {o.value for o in OptimizerName}:
            raise ValueError(
                f"optimizer must be one of {[o.value for o in OptimizerName]}, got {self.optimizer!r}"
            )
        if self.checkpoint_every < 0 or self.num_workers < 0 or self.grad_clip < 0:
            raise ValueError("checkpoint_every, num_workers and grad_clip must not be negative")

    def augment(self) -> AugmentConfig:
        """The training augmentation part of this config."""
        return AugmentConfig(
            auto_augment=self.auto_augment,
            re_prob=self.re_prob,
            re_mode=self.re_mode,
            crop_scale_min=self.crop_scale_min,
            hflip=self.hflip,
        )


@dataclass(frozen=True)
class HeadConfig(_FromDict):
    """A linear (or one-hidden-layer MLP) head trained on cached embeddings.

    Attributes:
        num_classes: C.
        in_features: D, the embedding width.
        hidden: Width of the hidden layer; 0 = a linear head.
        dropout: Dropout on the head's input (and hidden layer), in [0, 1).
        epochs: Passes over the embeddings (Adam); L-BFGS restarts its memory ``min(epochs, 4)``
            times and calls the loss's ``set_epoch`` at each restart.
        batch_size: Rows per Adam step.
        lr: Peak learning rate of the one-cycle schedule (Adam).
        weight_decay: L2 weight decay on the weight matrices (not biases), Adam.
        pct_start: Warm-up fraction (Adam).
        solver: ``HeadSolver`` value: ``auto``, ``lbfgs`` or ``adam``.
        l2: L-BFGS: the penalty ``l2 / 2 · ||W||²`` on the weight matrices, added to the summed
            loss (so its weight relative to the data shrinks as N grows, as in scikit-learn's
            ``LogisticRegression`` with ``C = 1 / l2``).
        lbfgs_iters: L-BFGS iterations in all (each one or more full passes).
        standardize: Standardise features with the training mean/std (stored in the head).
        seed: Seed for initialisation and row order.
        device: Where the head trains; ``"cpu"`` by default (it takes seconds there).
        precision: ``HeadPrecision`` value: ``auto``, ``float32`` or ``bfloat16`` (Adam's products).
        max_dense_cells: Adam with sparse labels and a loss that trains unknown cells (CSL): at
            most this many (image × class) cells an epoch get dense logits. Above it, each batch
            computes every row's annotated cells but the unknown cells of a uniform row share
            ``max_dense_cells / (N × C)`` only, weighted up by the inverse share (an unbiased
            estimate of the summed unknown term). 0: always dense.
    """

    num_classes: int
    in_features: int
    hidden: int = 0
    dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 4096
    lr: float = 1e-2
    weight_decay: float = 1e-4
    pct_start: float = 0.2
    solver: str = HeadSolver.AUTO.value
    l2: float = 100.0
    lbfgs_iters: int = 100
    standardize: bool = True
    seed: int = 0
    device: str = "cpu"
    precision: str = HeadPrecision.AUTO.value
    max_dense_cells: float = 2e9

    def __post_init__(self) -> None:
        object.__setattr__(self, "solver", HeadSolver.from_str(self.solver).value)
        object.__setattr__(self, "precision", HeadPrecision.from_str(self.precision).value)
        if self.max_dense_cells < 0:
            raise ValueError(f"max_dense_cells must be >= 0 (0: always dense), got {self.max_dense_cells}")
        if self.l2 < 0 or self.lbfgs_iters < 1:
            raise ValueError(f"l2 must be >= 0 and lbfgs_iters >= 1, got {self.l2} and {self.lbfgs_iters}")
        for name in ("num_classes", "in_features", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"hidden must be >= 0 and dropout in [0, 1), got {self.hidden}, {self.dropout}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")

    def resolved_solver(self, n_rows: int) -> HeadSolver:
        """The solver used for ``n_rows`` training rows (``auto`` resolved; see :class:`HeadSolver`)."""
        solver = HeadSolver(self.solver)
        if solver is not HeadSolver.AUTO:
            return solver
        macs = float(n_rows) * self.in_features * self.num_classes
        linear = self.hidden == 0 and self.dropout == 0
        return HeadSolver.LBFGS if linear and macs <= LBFGS_MAX_MACS else HeadSolver.ADAM

    def bfloat16_products(self, n_rows: int, fast: bool) -> bool:
        """Whether Adam's products run in bfloat16 for ``n_rows`` rows (``fast``: the device's
        bfloat16 is fast, :func:`core.device.fast_bfloat16`); see :class:`HeadPrecision`."""
        precision = HeadPrecision(self.precision)
        if precision is not HeadPrecision.AUTO:
            return precision is HeadPrecision.BFLOAT16
        return fast and float(n_rows) * self.num_classes >= BFLOAT16_MIN_CELLS
