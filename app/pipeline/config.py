"""The configuration of one retrain cycle: a frozen dataclass of primitives.

It is stored with every run (``model_run.config``) and is the payload of a ``cycle`` job, so a
resumed or re-run cycle rebuilds from what was saved, never from today's flags.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any


class TrainMode(enum.StrEnum):
    HEAD = "head"  # frozen backbone, cached embeddings, head trains in seconds (CPU friendly)
    FINETUNE = "finetune"  # the whole network (GPU)


@dataclass(frozen=True)
class CycleConfig:
    """Settings of one cycle (prior model → priors → target model → evaluation → suggestions).

    Attributes:
        dataset: dataset name.
        backbone: any timm model name.
        pretrained: ``"hub"`` (timm download), ``"none"``, or a local checkpoint path.
        mode: ``head`` or ``finetune``.
        loss: a loss preset name (``core.losses.list_losses()``).
        prior: ``model`` (temporary ignore-mode model), ``naive`` (annotated positive rate) or
            ``file:PATH`` (a ``Classes,avg_pred`` CSV).
        epochs: training epochs of each model.
        image_size: input size in px.
        batch_size: images per step (fine-tune) — the head trains on cached embeddings.
        lr: peak learning rate; None = the mode's default (head 1e-2, fine-tune 2e-4).
        folds: cross-fitting folds for scoring unknown cells (1 = none: the target model scores
            its own training images). ``labelmend bench folds`` measured K = 2, 3, 5 against 1 on
            four protocols × 3 seeds: never better, K = 2 worst (paired AP −0.01 to −0.04), so 1.
        prior_folds: cross-fitting folds of the temporary ignore-mode model, so the prior is
            estimated on images each model did not train on (1 = none; 2 measured best).
        top_suggestions: how many suggestions to store.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        seed: random seed.
        workers: DataLoader worker processes.
    """

    dataset: str
    backbone: str = "resnet50"
    pretrained: str = "hub"
    mode: str = TrainMode.HEAD.value
    loss: str = "csl"
    prior: str = "model"
    epochs: int = 30
    image_size: int = 224
    batch_size: int = 64
    lr: float | None = None
    folds: int = 1
    prior_folds: int = 2
    top_suggestions: int = 5000
    device: str = "auto"
    seed: int = 0
    workers: int = 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CycleConfig:
        """Rebuild from a stored dict; unknown keys are an error (a payload from another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(data) - names)
        if extra:
            raise ValueError(
                f"unknown cycle setting(s) {', '.join(extra)}; valid: {', '.join(sorted(names))}"
            )
        return cls(**data)


__all__ = ["CycleConfig", "TrainMode"]
