"""The methods the quality benchmark compares, on one seed and one protocol.

Every model is a head trained on the cached embeddings (``core.train.train_head``) with a loss
preset; every one of them sees the same embeddings, the same partial labels and the same seed.
Out-of-fold probabilities come from the app's own :func:`app.pipeline.cross_fit.cross_fit` (the
cycle's fold split and split seed); each fold's head here is seeded ``seed + fold``.

* mAP on the fully labelled test split for every loss preset (and the fully supervised bound);
* class-prior error against the true training prevalence: ``naive`` (annotated positives / N),
  ``running`` (the reference code's running mean of training-time outputs of the ``ignore`` model),
  ``mean`` (the paper's clean-pass mean of that model), ``model`` (what the app ships: 2-fold
  cross-fitted ``ignore`` probabilities, ``core.priors.model_prior`` with its default method,
  ``auto``) and, on the same cross-fitted probabilities, the methods ``auto`` chooses between or
  replaced: ``adjusted``, ``random`` and ``shrunk`` (:class:`core.priors.PriorMethod`);
* rankings of the unknown cells against the hidden true positives: ``ours`` (what the app ships:
  :data:`core.ranking.DEFAULT_RANKER` on the ``csl`` model's probabilities, scored as the cycle
  scores them — in-sample, or cross-fitted when ``CycleConfig.folds`` > 1), ``csl-shift`` (the
  ``prior_shift`` ranker on the same probabilities with the estimated prior), ``csl-shift-true``
  (the same given the true prevalence: a diagnostic no user has, showing what the prior's error
  costs), ``ignore-shift`` (``prior_shift`` on the ``ignore`` model, the setting it was derived
  for), ``ignore-p`` / ``negative-p`` (raw probabilities of the ``ignore`` / ``negative`` models
  trained on all training images, as a user would sort them), ``cleanlab``
  (``get_label_quality_scores_per_class`` on 2-fold out-of-fold probabilities of a ``negative``
  model, unknown passed as negative: cleanlab's own assumption) and ``random``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from app.pipeline import cross_fit as pipeline_cross_fit
from app.pipeline.config import CycleConfig
from core.constants import POSITIVE, UNKNOWN
from core.losses import loss_from_name
from core.metrics import average_precision, full_map
from core.priors import PriorMethod, RunningPrior, model_prior, naive_prior
from core.ranking import Ranker, score_unknown
from core.train import HeadConfig, predict_head, train_head

#: Rankers of unknown cells, in report order.
RANKERS: tuple[str, ...] = (
    "ours",
    "csl-shift",
    "csl-shift-true",
    "ignore-shift",
    "ignore-p",
    "negative-p",
    "cleanlab",
    "random",
)
#: :class:`core.priors.PriorMethod` values also reported on the cross-fitted ``ignore`` probabilities.
PRIOR_METHODS: tuple[PriorMethod, ...] = (PriorMethod.ADJUSTED, PriorMethod.RANDOM, PriorMethod.SHRUNK)
#: Prior estimators, in report order (``model`` = the app's default method).
PRIOR_ESTIMATORS: tuple[str, ...] = ("naive", "running", "mean", "model", *(m.value for m in PRIOR_METHODS))
#: K labels of precision@K: 1 % of the unknown cells, then fixed counts.
K_LABELS: tuple[str, ...] = ("1%", "100", "1000")


@dataclass(frozen=True)
class HeadSettings:
    """How every head of the benchmark trains (``core.train.HeadConfig`` fields) and cross-fits.

    Attributes:
        epochs: passes over the training embeddings.
        batch_size: rows per Adam step (CSL's likelihood top-k works within a batch).
        lr: peak one-cycle learning rate.
        weight_decay: L2 on the weight matrix.
        folds: cross-fitting folds of the prior model and of cleanlab's out-of-fold
            probabilities (the app's ``CycleConfig.prior_folds``).
        score_folds: folds of the target model's scores of unknown cells (the app's
            ``CycleConfig.folds``; 1 = the model trained on all training images scores them).
        hidden: width of a hidden layer (0 = a linear head, as the app trains).
    """

    epochs: int = 40
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    folds: int = CycleConfig.prior_folds
    score_folds: int = CycleConfig.folds
    hidden: int = 0


@dataclass
class ProtocolResult:
    """Numbers of one (seed, protocol).

    Attributes:
        map: loss name → test mAP in [0, 100] (fully labelled test split).
        prior_mae: estimator → mean absolute error of the prior against the true prevalence.
        precision: ranker → K label → precision@K in [0, 1] over the unknown cells.
        ap: ranker → average precision in [0, 1] of the ranking over the hidden true positives.
        k_values: K label → the K used (capped at the number of unknown cells).
        n_unknown: unknown cells of the training images.
        n_hidden: unknown cells that are truly positive.
        seconds: wall time.
    """

    map: dict[str, float] = field(default_factory=dict)
    prior_mae: dict[str, float] = field(default_factory=dict)
    precision: dict[str, dict[str, float]] = field(default_factory=dict)
    ap: dict[str, float] = field(default_factory=dict)
    k_values: dict[str, int] = field(default_factory=dict)
    n_unknown: int = 0
    n_hidden: int = 0
    seconds: float = 0.0


class _RecordingLoss(nn.Module):
    """Wraps a loss and feeds each batch's sigmoid outputs to a :class:`RunningPrior`."""

    def __init__(self, inner: nn.Module, running: RunningPrior) -> None:
        super().__init__()
        self.inner = inner
        self.running = running

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Same as the wrapped loss; records ``sigmoid(logits)`` (B, C) without gradient."""
        self.running.update(torch.sigmoid(logits.detach()))
        return self.inner(logits, targets)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped loss."""
        self.inner.set_epoch(epoch)  # type: ignore[operator]


def fit_head(
    x: np.ndarray,
    targets: np.ndarray,
    loss_name: str,
    settings: HeadSettings,
    *,
    seed: int,
    prior: np.ndarray | None = None,
    running: RunningPrior | None = None,
) -> nn.Module:
    """Train a linear head with loss preset ``loss_name``.

    Args:
        x: float32 (N, D) embeddings.
        targets: int8 (N, C), 1 / 0 / -1.
        loss_name: a ``core.losses.list_losses()`` name.
        settings: training settings.
        seed: initialisation and batch-order seed.
        prior: float64 (C,) class prior, used by ``csl``.
        running: when given, receives every training batch's probabilities.

    Returns:
        The trained head (eval mode, CPU): (B, D) → (B, C) logits; use ``predict_head``.
    """
    c = targets.shape[1]
    loss: nn.Module = loss_from_name(loss_name, c, prior=prior)
    if running is not None:
        loss = _RecordingLoss(loss, running)
    config = HeadConfig(
        num_classes=c,
        in_features=x.shape[1],
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        hidden=settings.hidden,
        seed=seed,
    )
    return train_head(x, targets, loss, config).head


def cross_fit(
    x: np.ndarray,
    targets: np.ndarray,
    loss_name: str,
    settings: HeadSettings,
    *,
    seed: int,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold probabilities: each image scored by a head that never trained on it.

    Returns:
        float32 (N, C) probabilities in [0, 1].
    """
    return _cross_fit(x, targets, loss_name, settings, settings.folds, seed=seed, prior=prior)


def suggestion_probs(
    x: np.ndarray,
    targets: np.ndarray,
    loss_name: str,
    settings: HeadSettings,
    head: nn.Module,
    *,
    seed: int,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """The target model's probabilities of the training cells, as the cycle computes them.

    ``settings.score_folds`` ≤ 1: ``head`` (trained on all of ``x``) scores them; else each image
    is scored by a head trained on the other folds.

    Returns:
        float32 (N, C) probabilities in [0, 1].
    """
    if settings.score_folds <= 1:
        return predict_head(head, x)
    return _cross_fit(x, targets, loss_name, settings, settings.score_folds, seed=seed, prior=prior)


@dataclass
class _HeadOn:
    """A trained head applied to rows of the embeddings ``x`` (a cross-fitting ``Predictor``)."""

    head: nn.Module
    x: np.ndarray

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), C) float32 probabilities of rows ``rows`` of ``x``."""
        return predict_head(self.head, self.x[rows])


def _cross_fit(
    x: np.ndarray,
    targets: np.ndarray,
    loss_name: str,
    settings: HeadSettings,
    folds: int,
    *,
    seed: int,
    prior: np.ndarray | None,
) -> np.ndarray:
    """The app's :func:`app.pipeline.cross_fit.cross_fit` over the rows of ``x``; fold f's head seeds ``seed + f``."""

    def fit(rows: np.ndarray, f: int) -> _HeadOn:
        return _HeadOn(fit_head(x[rows], targets[rows], loss_name, settings, seed=seed + f, prior=prior), x)

    return pipeline_cross_fit.cross_fit(fit, np.arange(len(targets)), folds, seed=seed).probs


def cleanlab_scores(oof_probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """cleanlab's per-cell label-quality, turned into a missing-positive score.

    cleanlab has no unknown state: it is given the annotated positives as each image's label list,
    so every other cell (annotated negative or unknown) is a negative. A low quality on such a cell
    means a likely missing positive.

    Args:
        oof_probs: float (N, C) out-of-fold probabilities (cleanlab's requirement).
        targets: int8 (N, C), 1 / 0 / -1.

    Returns:
        float64 (N, C): ``1 - quality``, higher = more likely a missing positive.
    """
    from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class

    labels = [np.flatnonzero(row == POSITIVE).tolist() for row in targets]
    quality = get_label_quality_scores_per_class(labels, np.asarray(oof_probs, dtype=np.float64))
    if isinstance(quality, list):  # the docstring promises K arrays of (N,); 2.9 returns (N, K)
        quality = np.stack(quality, axis=1)
    return 1.0 - np.asarray(quality, dtype=np.float64)


def k_values(n_unknown: int) -> dict[str, int]:
    """K for each label of :data:`K_LABELS`: 1 % of the unknown cells (at least 1), 100 and 1000, capped."""
    wanted = {"1%": max(1, round(0.01 * n_unknown)), "100": 100, "1000": 1000}
    return {label: min(k, n_unknown) for label, k in wanted.items()}


def ranking_quality(
    scores: np.ndarray, unknown: np.ndarray, truth: np.ndarray, ks: dict[str, int]
) -> tuple[dict[str, float], float]:
    """Precision@K and AP of a ranking of the unknown cells against the hidden truth.

    Args:
        scores: float (N, C), higher = more likely a missing positive (only unknown cells count).
        unknown: bool (N, C), the cells being ranked.
        truth: int8 (N, C), 1 present / 0 absent.
        ks: K label → K (≤ number of unknown cells).

    Returns:
        ``({K label: precision@K}, AP)``; ties are broken by cell order (row-major), AP treats
        tied scores as one threshold (``core.metrics.average_precision``).
    """
    s = scores[unknown].astype(np.float64)
    y = truth[unknown] == POSITIVE
    order = np.lexsort((np.arange(s.size), -s))
    hits = np.cumsum(y[order])
    precision = {label: float(hits[k - 1] / k) if k > 0 else float("nan") for label, k in ks.items()}
    ap = average_precision(s, y) if y.any() else float("nan")
    return precision, ap


def _test_map(head: nn.Module, x_test: np.ndarray, y_test: np.ndarray) -> float:
    return full_map(predict_head(head, x_test), y_test).map


def supervised_map(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    settings: HeadSettings,
    seed: int,
) -> float:
    """Test mAP of the fully supervised bound: every training label known, plain BCE."""
    head = fit_head(x_train, y_train.astype(np.int8), "negative", settings, seed=seed)
    return _test_map(head, x_test, y_test)


def evaluate_protocol(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    targets: np.ndarray,
    losses: Sequence[str],
    settings: HeadSettings,
    *,
    seed: int,
) -> ProtocolResult:
    """Train every loss, estimate the priors and rank the unknown cells for one (seed, protocol).

    Args:
        x_train: float32 (N, D) training embeddings; y_train: int8 (N, C) their full truth.
        x_test: float32 (M, D) test embeddings; y_test: int8 (M, C) their full truth.
        targets: int8 (N, C) the partial labels (1 / 0 / -1) under the protocol.
        losses: loss presets to train (``ignore``, ``negative`` and ``csl`` are always trained:
            the priors and rankers need them).
        settings: head training settings.
        seed: training seed (the same for every method).

    Returns:
        The :class:`ProtocolResult` (``seconds`` left at 0 for the caller to fill).
    """
    out = ProtocolResult()
    truth_prev = y_train.mean(axis=0, dtype=np.float64)

    # Priors: the temporary ignore-mode model, cross-fitted (what the app uses) and in-sample.
    cf_ignore = cross_fit(x_train, targets, "ignore", settings, seed=seed)
    prior = model_prior(cf_ignore, targets)
    running = RunningPrior(targets.shape[1])
    heads: dict[str, nn.Module] = {
        "ignore": fit_head(x_train, targets, "ignore", settings, seed=seed, running=running)
    }
    ignore_p = predict_head(heads["ignore"], x_train)
    estimates = {
        "naive": naive_prior(targets),
        "running": running.value,
        "mean": model_prior(ignore_p, method="mean"),
        "model": prior,
        **{m.value: model_prior(cf_ignore, targets, method=m) for m in PRIOR_METHODS},
    }
    out.prior_mae = {name: float(np.abs(est - truth_prev).mean()) for name, est in estimates.items()}

    # Every loss on all training images, scored on the fully labelled test split.
    for name in dict.fromkeys([*losses, "negative", "csl"]):
        if name not in heads:
            heads[name] = fit_head(x_train, targets, name, settings, seed=seed, prior=prior)
    out.map = {name: _test_map(heads[name], x_test, y_test) for name in losses}

    # Rankings of the unknown cells.
    unknown = targets == UNKNOWN
    csl_p = suggestion_probs(x_train, targets, "csl", settings, heads["csl"], seed=seed, prior=prior)
    cf_negative = cross_fit(x_train, targets, "negative", settings, seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    shift = Ranker.PRIOR_SHIFT
    scores = {
        "ours": score_unknown(csl_p, targets, prior),
        "csl-shift": score_unknown(csl_p, targets, prior, ranker=shift),
        "csl-shift-true": score_unknown(csl_p, targets, truth_prev, ranker=shift),
        "ignore-shift": score_unknown(ignore_p, targets, prior, ranker=shift),
        "ignore-p": ignore_p,
        "negative-p": predict_head(heads["negative"], x_train),
        "cleanlab": cleanlab_scores(cf_negative, targets),
        "random": rng.random(targets.shape),
    }
    out.n_unknown = int(unknown.sum())
    out.n_hidden = int((unknown & (y_train == POSITIVE)).sum())
    out.k_values = k_values(out.n_unknown)
    for name in RANKERS:
        out.precision[name], out.ap[name] = ranking_quality(scores[name], unknown, y_train, out.k_values)
    return out


__all__ = [
    "K_LABELS",
    "PRIOR_ESTIMATORS",
    "PRIOR_METHODS",
    "RANKERS",
    "HeadSettings",
    "ProtocolResult",
    "cleanlab_scores",
    "cross_fit",
    "evaluate_protocol",
    "fit_head",
    "k_values",
    "ranking_quality",
    "suggestion_probs",
    "supervised_map",
]
