"""The configuration of one retrain cycle: a frozen dataclass of enums, numbers and paths.

It is stored with every run (``model_run.config``) and is the payload of a ``cycle`` job, so a
resumed or re-run cycle rebuilds from what was saved, never from today's flags. :meth:`to_dict`
writes JSON-safe primitives (enum values, paths as text); :meth:`CycleConfig.from_dict` reads
those and the spellings of the previous version (``"prior": "file:/x.csv"``, ``"pretrained":
"/path/ckpt.pt"``), so queued jobs and stored runs stay readable.

This module is torch-free: the Train page imports it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.choice import Choice
from core.losses.catalog import LossName

#: The spelling of a prior file in ``--prior`` and in configs stored before ``prior_file`` existed.
PRIOR_FILE_PREFIX = "file:"


class TrainMode(Choice, kind="training mode", plural="modes"):
    """How the cycle's models train."""

    HEAD = "head"  #: frozen backbone, cached embeddings, a linear head trains in seconds (CPU friendly)
    FINETUNE = "finetune"  #: the whole network (GPU)


class PriorSource(Choice, kind="prior source", plural="prior sources"):
    """Where the class priors of the target model's loss and of the ranking come from."""

    MODEL = "model"  #: the temporary ignore-mode model's cross-fitted probabilities (``core.priors``)
    NAIVE = "naive"  #: the annotated positive rate of each class
    FILE = "file"  #: a ``Classes,avg_pred`` CSV given as ``prior_file``


class WeightsSource(Choice, kind="weights source", plural="weights sources"):
    """Where the backbone's initial weights come from (``core.models.PretrainedSource`` plus two)."""

    HUB = "hub"  #: timm's download (needs internet or a warm Hugging Face cache)
    PACKAGED = "packaged"  #: ImageNet weights from a pip package, offline, converted once into the cache
    NONE = "none"  #: random initialisation
    FILE = "file"  #: a local checkpoint given as ``pretrained_file``

    @property
    def normalizes_inputs(self) -> bool:
        """Whether images are mean/std normalised for these weights (``core.data.data_config_for``).

        ImageNet weights (``hub``, ``packaged``) expect the model's own normalisation (timm's
        ``pretrained_cfg``: mean = std = 0.5 for EfficientNet-Lite); fed [0, 1] inputs instead,
        their features lose much of their quality. Random weights and our own checkpoints train on
        [0, 1] inputs (the CSL reference recipe), so they get none.
        """
        return self in (WeightsSource.HUB, WeightsSource.PACKAGED)


def parse_prior(text: str) -> tuple[PriorSource, Path | None]:
    """``model`` / ``naive`` / ``file`` / ``file:PATH`` → (source, file or None).

    Raises:
        ValueError: anything else, or ``file:`` with no path (one line naming the valid values).
    """
    if text.strip().casefold().startswith(PRIOR_FILE_PREFIX):
        path = text.strip()[len(PRIOR_FILE_PREFIX) :].strip()
        if not path:
            raise ValueError(f"prior {text!r} names no file; write file:PATH (a Classes,avg_pred CSV)")
        return PriorSource.FILE, Path(path)
    try:
        return PriorSource.from_str(text), None
    except ValueError:
        raise ValueError(
            f"unknown prior {text!r}; valid: {', '.join(PriorSource.values())} (file with a path: file:PATH)"
        ) from None


#: Weights sources of older versions that no longer exist → the error saying what to use instead.
REMOVED_WEIGHTS: dict[str, str] = {
    "standin": "pretrained 'standin' (the offline stand-in backbone) was removed; use 'packaged' "
    "(ImageNet weights from a pip package, offline)",
}


def parse_weights(text: str) -> tuple[WeightsSource, Path | None]:
    """A :class:`WeightsSource` value, or any other text as a checkpoint path → (source, file or None).

    Raises:
        ValueError: a source of an older version (:data:`REMOVED_WEIGHTS`, e.g. ``standin``), naming
            its replacement.
    """
    removed = REMOVED_WEIGHTS.get(text.strip().casefold())
    if removed is not None:
        raise ValueError(removed)
    try:
        return WeightsSource.from_str(text), None
    except ValueError:
        return WeightsSource.FILE, Path(text.strip()).expanduser()


def _path_or_none(value: object, name: str) -> Path | None:
    if value is None or value == "":
        return None
    if isinstance(value, (str, Path)):
        return Path(value)
    raise ValueError(f"{name} must be a path, got {value!r}")


@dataclass(frozen=True)
class CycleConfig:
    """Settings of one cycle (prior model → priors → target model → evaluation → suggestions).

    Enum fields also accept their values as text (``loss="csl"``), and the previous version's
    spellings are still read: ``pretrained`` as any text that is not a :class:`WeightsSource` value
    is a checkpoint path (``file`` + ``pretrained_file``), ``prior="file:PATH"`` is ``file`` +
    ``prior_file``; a removed source (``standin``) is an error naming its replacement.
    ``__post_init__`` converts them and checks the combination, raising a one-line ``ValueError``.

    Attributes:
        dataset: dataset name.
        backbone: any timm model name.
        pretrained: where the initial weights come from (:class:`WeightsSource`).
        pretrained_file: the checkpoint when ``pretrained`` is ``file`` (None otherwise).
        mode: ``head`` or ``finetune`` (:class:`TrainMode`).
        loss: the target model's loss preset (:class:`core.losses.catalog.LossName`).
        prior: where the class priors come from (:class:`PriorSource`).
        prior_file: the ``Classes,avg_pred`` CSV when ``prior`` is ``file`` (None otherwise).
        epochs: training epochs of each model.
        image_size: input size in px.
        batch_size: images per step (fine-tune) — the head trains on cached embeddings.
        lr: peak learning rate; None = the mode's default (head 1e-2, fine-tune 2e-4).
        folds: cross-fitting folds for scoring unknown cells: each training image is scored by a
            target model trained on the other folds (K more models). 1 = none: the target model
            scores its own training images. ``labelmend bench folds`` measured the default; the
            README's "Cross-fitted scoring" section has the numbers.
        prior_folds: cross-fitting folds of the temporary ignore-mode model, so the prior is
            estimated on images each model did not train on (1 = none). The quality benchmark
            (``labelmend bench quality``) measures the prior estimate with this default.
        top_suggestions: how many suggestions to store.
        audit_share: the share of the review queue, in [0, 0.5], drawn uniformly at random from
            the training images' unknown cells instead of by score (the audit sample; stored with
            ``Suggestion.audit`` set, interleaved with the ranked ones, shown like them). Their
            decisions measure the ranking's precision and each class's missing-positive rate on the
            user's own data (the Models page). 0 = no audit sample.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        seed: random seed.
        workers: DataLoader worker processes.
    """

    dataset: str
    backbone: str = "tf_efficientnet_lite0"
    pretrained: WeightsSource = WeightsSource.PACKAGED
    pretrained_file: Path | None = None
    mode: TrainMode = TrainMode.HEAD
    loss: LossName = LossName.CSL
    prior: PriorSource = PriorSource.MODEL
    prior_file: Path | None = None
    epochs: int = 30
    image_size: int = 224
    batch_size: int = 64
    lr: float | None = None
    folds: int = 1
    prior_folds: int = 2
    top_suggestions: int = 5000
    audit_share: float = 0.05
    device: str = "auto"
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        pretrained, pretrained_file = self.pretrained, _path_or_none(self.pretrained_file, "pretrained_file")
        if not isinstance(pretrained, WeightsSource) and pretrained_file is None:
            pretrained, pretrained_file = parse_weights(str(pretrained))  # the previous "hub | … | PATH"
        prior, prior_file = self.prior, _path_or_none(self.prior_file, "prior_file")
        if (
            isinstance(prior, str)
            and prior.strip().casefold().startswith(PRIOR_FILE_PREFIX)
            and prior_file is None
        ):
            prior, prior_file = parse_prior(prior)  # the previous "file:PATH"
        convert = {
            "pretrained": WeightsSource.from_str(pretrained),
            "pretrained_file": pretrained_file,
            "mode": TrainMode.from_str(self.mode),
            "loss": LossName.from_str(self.loss),
            "prior": PriorSource.from_str(prior),
            "prior_file": prior_file,
        }
        for name, value in convert.items():
            object.__setattr__(self, name, value)
        self._check_files()
        self._check_numbers()

    def _check_files(self) -> None:
        for source, file, enum_name, field in (
            (self.prior, self.prior_file, "prior", "prior_file"),
            (self.pretrained, self.pretrained_file, "pretrained", "pretrained_file"),
        ):
            if source == "file" and file is None:
                raise ValueError(f"{enum_name} is 'file' but no {field} is given; pass the file's path")
            if source != "file" and file is not None:
                raise ValueError(
                    f"{field} {str(file)!r} is given but {enum_name} is {source.value!r}, not 'file'"
                )

    def _check_numbers(self) -> None:
        minimum = {"epochs": 1, "image_size": 16, "batch_size": 1, "folds": 1, "prior_folds": 1,
                   "top_suggestions": 0, "workers": 0}  # fmt: skip
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be a whole number ≥ {low}, got {value!r}")
        share = self.audit_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 0.5:
            raise ValueError(f"audit_share must be a number in [0, 0.5] (0.05 = 5 %), got {share!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive (or None for the mode's default), got {self.lr!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe primitives: enum values as text, paths as text or None."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, (Choice, Path)) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CycleConfig:
        """Rebuild from a stored dict (this version's or the previous one's spellings).

        Raises:
            ValueError: an unknown key (a payload from another version) or an invalid value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(data) - names)
        if extra:
            raise ValueError(
                f"unknown cycle setting(s) {', '.join(extra)}; valid: {', '.join(sorted(names))}"
            )
        return cls(**data)


__all__ = [
    "PRIOR_FILE_PREFIX",
    "REMOVED_WEIGHTS",
    "CycleConfig",
    "PriorSource",
    "TrainMode",
    "WeightsSource",
    "parse_prior",
    "parse_weights",
]
