"""One retrain cycle: load → prior model → priors → target model → evaluation → suggestions.

Each stage commits its own unit of work, and the target run's suggestions are written in the same
transaction that marks it succeeded: a cycle killed at any point leaves no half-written run (at
most a ``running`` run that the next attempt marks failed; a cycle that fails marks its runs failed
itself). Re-running the same job resumes: image embeddings are cached on disk and fine-tuning
continues from its last checkpoint. Settings that can be checked before any work (``--prior``) are,
and a disk that cannot be written becomes a one-line :class:`~app.pipeline.home.HomeError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.pipeline.config import CycleConfig
from app.pipeline.home import writing_home
from app.pipeline.load import DatasetArrays, load_dataset
from app.pipeline.models import Fit, Scorer, train_scorer
from app.store import Store
from common.progress import Progress
from core.constants import UNKNOWN
from core.metrics import partial_map
from core.priors import model_prior, naive_prior, read_prior_csv
from core.ranking import kfold_split, top_unknown
from db import runs
from db.datasets import get_dataset
from db.models import ModelRun, RunKind, RunStatus

log = logging.getLogger(__name__)


# Share of the whole cycle each stage takes on the progress bar. Progress messages start with the
# stage name ("store: writing 5000 suggestions"); the worker records each new stage at once.
_STAGES = {
    "load": 0.03,
    "features": 0.42,
    "prior": 0.15,
    "target": 0.2,
    "evaluate": 0.05,
    "suggest": 0.12,
    "store": 0.03,
}


@dataclass
class CycleResult:
    """What a cycle produced: run ids, validation partial mAP (0–100), suggestions stored, timings (s)."""

    prior_run_id: int
    target_run_id: int
    partial_map: float
    prior_partial_map: float
    n_suggestions: int
    timings: dict[str, float] = field(default_factory=dict)
    skipped_images: dict[str, str] = field(default_factory=dict)


class _Stages:
    """Maps each stage's own progress (0–1) onto the whole cycle, and times the stages."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0.0
        self.timings: dict[str, float] = {}
        self._name = ""
        self._t0 = 0.0

    def start(self, name: str, message: str = "starting") -> Progress:
        self._name, self._t0 = name, time.perf_counter()
        share = _STAGES[name]
        base = self.done

        def report(fraction: float, message: str) -> None:
            if self.progress is not None:
                self.progress(min(1.0, base + share * max(0.0, min(1.0, fraction))), f"{name}: {message}")

        report(0.0, message)
        return report

    def end(self) -> None:
        self.timings[self._name] = round(time.perf_counter() - self._t0, 3)
        self.done += _STAGES[self._name]


def _fail_runs(store: Store, run_ids: list[int], err: BaseException) -> None:
    """Mark the runs this cycle started and did not finish failed, with the error's first line."""
    if not run_ids:
        return
    lines = str(err).strip().splitlines()
    why = f"{type(err).__name__}: {lines[0] if lines else ''}"
    try:
        with store.write() as s:
            for run_id in run_ids:
                runs.fail_run(s, run_id, why)
    except Exception:  # the store itself may be what failed; the next attempt marks them
        log.exception("could not mark runs %s failed", run_ids)


def _mark_stale_runs_failed(store: Store, job_id: int | None) -> None:
    if job_id is None:
        return
    from sqlalchemy import select

    with store.write() as s:
        for run in s.scalars(
            select(ModelRun).where(ModelRun.job_id == job_id, ModelRun.status == RunStatus.RUNNING.value)
        ):
            runs.fail_run(s, run.id, "interrupted: its worker stopped; the job was restarted")


def _check_prior_option(prior: str) -> None:
    if prior not in ("model", "naive") and not (prior.startswith("file:") and len(prior) > 5):
        raise ValueError(f"--prior must be model, naive or file:PATH, got {prior!r}")


def _prior_from_file(spec: str, data: DatasetArrays) -> np.ndarray:
    """(C,) float64 prior in [0, 1] from a ``Classes,avg_pred`` CSV, in the dataset's class order.

    Raises:
        ValueError: one line naming the file (and line): NaN, outside [0, 1], missing classes, ….
    """
    path = spec.removeprefix("file:")
    table = read_prior_csv(path, data.class_keys)
    return np.asarray(table.prior, dtype=np.float64)


def _prior_model_probs(
    scorer: Scorer, config: CycleConfig, train: np.ndarray, val: np.ndarray, report: Progress
) -> tuple[np.ndarray, np.ndarray, Fit]:
    """Probabilities of the temporary ignore-mode model: cross-fitted on ``train``, averaged on ``val``.

    Returns:
        (probs (len(train), C) — each image scored by a model that did not train on it,
        val probs (len(val), C), the last model fitted).
    """
    c = scorer.data.n_classes
    k = config.prior_folds if len(train) >= 2 * max(config.prior_folds, 1) else 1
    if k <= 1:
        fit = train_scorer(scorer, "ignore", train, None, "prior", report)
        return fit.predict(train), fit.predict(val), fit
    probs = np.zeros((len(train), c), dtype=np.float32)
    val_probs = np.zeros((len(val), c), dtype=np.float32)
    for f, fold in enumerate(kfold_split(len(train), k, seed=config.seed)):

        def fold_report(fraction: float, message: str, f: int = f) -> None:
            report((f + fraction) / k, f"fold {f + 1}/{k}: {message}")

        fit = train_scorer(scorer, "ignore", train[fold.train], None, f"prior{f}", fold_report)
        probs[fold.held] = fit.predict(train[fold.held])
        if len(val):
            val_probs += fit.predict(val) / k
    return probs, val_probs, fit


def run_cycle(
    store: Store,
    config: CycleConfig,
    *,
    job_id: int | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CycleResult:
    """Run one cycle for ``config.dataset`` and store its runs, priors, metrics and suggestions.

    A failing cycle marks the runs it started failed; their suggestions were never written.

    Raises:
        ValueError: the dataset has no training images, no classes, or no annotated cell; or
            ``--prior`` is not valid (a prior file's error names the file and line) — checked
            before anything is trained or stored.
        HomeError: ``LABELMEND_HOME`` cannot be written (disk full, read-only, not a folder).
    """
    started: list[int] = []
    try:
        with writing_home(store.home):
            return _run_cycle(store, config, job_id, progress, should_stop, started)
    except BaseException as err:
        _fail_runs(store, started, err)
        raise


def _run_cycle(
    store: Store,
    config: CycleConfig,
    job_id: int | None,
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
    started: list[int],
) -> CycleResult:
    """The body of :func:`run_cycle`; appends the id of each run it creates to ``started``."""
    stages = _Stages(progress)
    _check_prior_option(config.prior)
    _mark_stale_runs_failed(store, job_id)
    work_dir = store.home / "runs" / (f"job-{job_id}" if job_id is not None else f"cycle-{int(time.time())}")
    work_dir.mkdir(parents=True, exist_ok=True)

    report = stages.start("load")
    with store.read() as s:
        data = load_dataset(s, get_dataset(s, config.dataset))
    train = np.flatnonzero(data.split_mask("train"))
    val = np.flatnonzero(data.split_mask("val"))
    if data.n_classes == 0 or len(train) == 0:
        raise ValueError(
            f"dataset {config.dataset!r} has {len(train)} training images and {data.n_classes} classes; "
            "import labels first"
        )
    if not (data.targets[train] != UNKNOWN).any():
        raise ValueError(f"dataset {config.dataset!r} has no annotated label in its training split")
    prior_file = _prior_from_file(config.prior, data) if config.prior.startswith("file:") else None
    report(1.0, f"{data.n_images} images, {data.n_classes} classes")
    stages.end()

    scorer = Scorer(config, data, work_dir, store.home / "cache", should_stop=should_stop)
    report = stages.start("features")
    scorer.prepare(report)
    stages.end()
    train = scorer.usable(train)
    val = scorer.usable(val)

    # 1. The temporary ignore-mode model and the class priors.
    report = stages.start("prior")
    t_train = data.targets[train]
    prior_naive = naive_prior(t_train)
    with store.write() as s:
        prior_run = runs.create_run(
            s, data.dataset_id, RunKind.PRIOR.value, {**config.to_dict(), "loss": "ignore"}, job_id=job_id
        )
        prior_run_id = prior_run.id
    started.append(prior_run_id)
    prior_probs, prior_val_probs, prior_fit = _prior_model_probs(scorer, config, train, val, report)
    prior_model = model_prior(prior_probs, t_train)
    prior_val_map = partial_map(prior_val_probs, data.targets[val]).map if len(val) else float("nan")
    if prior_file is not None:
        prior_used = prior_file
    elif config.prior == "naive":
        prior_used = prior_naive
    else:
        prior_used = prior_model
    with store.write() as s:
        runs.write_class_stats(
            s,
            prior_run_id,
            data.class_ids.tolist(),
            prior_naive=prior_naive,
            prior_model=prior_model,
            prior_used=prior_used,
        )
        runs.finish_run(
            s,
            prior_run_id,
            metrics={"partial_map": _num(prior_val_map)},
            artifacts=prior_fit.artifacts,
            timings={"train": prior_fit.seconds},
        )
    stages.end()

    # 2. The target model with the chosen loss and prior.
    report = stages.start("target")
    with store.write() as s:
        target_run = runs.create_run(
            s, data.dataset_id, RunKind.TARGET.value, config.to_dict(), parent_id=prior_run_id, job_id=job_id
        )
        target_run_id = target_run.id
    started.append(target_run_id)
    fit = train_scorer(scorer, config.loss, train, prior_used, "target", report)
    stages.end()

    # 3. Partial mAP on the validation split (annotated cells only).
    report = stages.start("evaluate")
    if len(val):
        result = partial_map(fit.predict(val), data.targets[val])
        val_map, per_class_ap = result.map, result.per_class_ap / 100.0
    else:
        val_map, per_class_ap = float("nan"), np.full(data.n_classes, np.nan)
    report(1.0, f"partial mAP {val_map:.2f}")
    stages.end()

    # 4. Score every unknown cell of the training images (cross-fitted over folds) and rank them.
    report = stages.start("suggest")
    probs = np.zeros((len(train), data.n_classes), dtype=np.float32)
    if config.folds <= 1:
        probs[:] = fit.predict(train)
    else:
        for f, fold in enumerate(kfold_split(len(train), config.folds, seed=config.seed)):
            fold_fit = train_scorer(
                scorer, config.loss, train[fold.train], prior_used, f"fold{f}", lambda *_: None
            )
            probs[fold.held] = fold_fit.predict(train[fold.held])
            report((f + 1) / (config.folds + 1), f"fold {f + 1}/{config.folds}")
    top = top_unknown(probs, t_train, prior_used, config.top_suggestions)
    rows = train[top.img_idx]
    stages.end()

    # 5. One transaction: the suggestions, the per-class statistics and the run marked succeeded.
    report = stages.start("store", f"writing {len(rows)} suggestions")
    with store.write() as s:
        n_stored = runs.write_suggestions(
            s,
            target_run_id,
            image_ids=data.image_ids[rows],
            class_ids=data.class_ids[top.cls_idx],
            scores=top.score.astype(np.float64),
            probs=probs[top.img_idx, top.cls_idx].astype(np.float64),
            priors=prior_used[top.cls_idx],
        )
        runs.write_class_stats(
            s,
            target_run_id,
            data.class_ids.tolist(),
            prior_naive=prior_naive,
            prior_model=prior_model,
            prior_used=prior_used,
            ap=per_class_ap,
        )
        stages.end()
        timings = dict(stages.timings)
        runs.finish_run(
            s,
            target_run_id,
            metrics={
                "partial_map": _num(val_map),
                "prior_partial_map": _num(prior_val_map),
                "n_suggestions": n_stored,
                "n_train": len(train),
                "n_val": len(val),
                "skipped_images": len(scorer.skipped),
            },
            artifacts=fit.artifacts,
            timings=timings,
        )
    report(1.0, f"{n_stored} suggestions stored")
    return CycleResult(
        prior_run_id=prior_run_id,
        target_run_id=target_run_id,
        partial_map=val_map,
        prior_partial_map=prior_val_map,
        n_suggestions=n_stored,
        timings=timings,
        skipped_images=dict(scorer.skipped),
    )


def _num(x: float) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 4)


def cycle_job(store: Store, payload: dict[str, Any], job_id: int, progress: Progress) -> dict[str, Any]:
    """The worker's handler for a ``cycle`` job."""
    result = run_cycle(store, CycleConfig.from_dict(payload), job_id=job_id, progress=progress)
    return {
        "prior_run_id": result.prior_run_id,
        "target_run_id": result.target_run_id,
        "partial_map": _num(result.partial_map),
        "n_suggestions": result.n_suggestions,
        "timings": result.timings,
    }


__all__ = ["CycleResult", "cycle_job", "run_cycle"]
