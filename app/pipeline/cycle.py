"""One retrain cycle: load → features → prior model → priors → target model → evaluation → suggestions.

Each stage commits its own unit of work, and the target run's suggestions are written in the same
transaction that marks it succeeded: a cycle killed at any point leaves no half-written run (at
most a ``running`` run that the next attempt marks failed; a cycle that fails marks its runs failed
itself). Re-running the same job resumes: image embeddings are cached on disk and fine-tuning
continues from its last checkpoint. Settings that can be checked before any work (``--prior``, a
prior file) are, and a disk that cannot be written becomes a one-line
:class:`~app.pipeline.home.HomeError`.

The steps live in their own modules (see :mod:`app.pipeline`); :func:`run_cycle` runs them in
order, one :class:`~app.pipeline.stages.Stage` each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.pipeline.config import CycleConfig, PriorSource
from app.pipeline.evaluate import evaluate
from app.pipeline.features import prepare_features
from app.pipeline.fit import Scorer, train_scorer
from app.pipeline.home import writing_home
from app.pipeline.load import DatasetArrays, load_dataset
from app.pipeline.priors import PRIOR_LOSS, estimate_priors, read_prior_file
from app.pipeline.stages import Stage, StageCallback, StageTimer
from app.pipeline.store import (
    fail_runs,
    json_number,
    mark_stale_runs_failed,
    start_run,
    store_prior_run,
    store_target_run,
)
from app.pipeline.suggest import suggest
from app.store import Store
from common.progress import Progress
from db.datasets import get_dataset
from db.models import RunKind, Split


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


def run_cycle(
    store: Store,
    config: CycleConfig,
    *,
    job_id: int | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_stage: StageCallback | None = None,
) -> CycleResult:
    """Run one cycle for ``config.dataset`` and store its runs, priors, metrics and suggestions.

    A failing cycle marks the runs it started failed; their suggestions were never written.

    Args:
        store: the label store; ``store.home`` holds the cache and the work folders.
        config: the cycle's settings.
        job_id: the worker's job (a re-run of the same job resumes and fails its stale runs).
        progress: the whole cycle's progress (fraction in [0, 1], ``"<stage>: <message>"``).
        should_stop: polled while embedding and training; True stops with ``CycleStopped``.
        on_stage: called with each :class:`~app.pipeline.stages.Stage` as it starts.

    Raises:
        ValueError: the dataset has no training images, no classes, or no annotated cell; or the
            prior file is not valid (the error names the file and line) — checked before anything
            is trained or stored.
        HomeError: ``LABELMEND_HOME`` cannot be written (disk full, read-only, not a folder).
    """
    started: list[int] = []
    try:
        with writing_home(store.home):
            return _run_cycle(store, config, job_id, StageTimer(progress, on_stage), should_stop, started)
    except BaseException as err:
        fail_runs(store, started, err)
        raise


def _run_cycle(
    store: Store,
    config: CycleConfig,
    job_id: int | None,
    timer: StageTimer,
    should_stop: Callable[[], bool] | None,
    started: list[int],
) -> CycleResult:
    """The steps of :func:`run_cycle`; appends the id of each run it creates to ``started``."""
    mark_stale_runs_failed(store, job_id)
    work_dir = _work_dir(store, job_id)
    report = timer.start(Stage.LOAD)
    data, train, val = _load(store, config)
    file_prior = read_prior_file(config.prior_file, data) if config.prior is PriorSource.FILE else None
    report(1.0, f"{data.n_images} images, {data.n_classes} classes")
    timer.end()

    scorer = Scorer(config, data, work_dir, store.home / "cache", should_stop=should_stop)
    prepare_features(scorer, timer.start(Stage.FEATURES))
    timer.end()
    train, val = scorer.usable(train), scorer.usable(val)

    report = timer.start(Stage.PRIOR)
    prior_config = {**config.to_dict(), "loss": PRIOR_LOSS.value}
    prior_run_id = start_run(store, data, RunKind.PRIOR, prior_config, job_id=job_id)
    started.append(prior_run_id)
    priors = estimate_priors(scorer, train, val, report, file_prior=file_prior)
    store_prior_run(store, prior_run_id, data, priors)
    timer.end()

    report = timer.start(Stage.TARGET)
    target_run_id = start_run(
        store, data, RunKind.TARGET, config.to_dict(), job_id=job_id, parent_id=prior_run_id
    )
    started.append(target_run_id)
    fit = train_scorer(scorer, config.loss, train, priors.used, "target", report)
    timer.end()

    report = timer.start(Stage.EVALUATE)
    validation = evaluate(fit, data, val)
    report(1.0, f"partial mAP {validation.map:.2f}")
    timer.end()

    # The run id seeds the audit sample: each run draws a fresh one, reproducibly.
    suggestions = suggest(
        scorer, fit, train, priors.used, timer.start(Stage.SUGGEST), audit_seed=(target_run_id,)
    )
    timer.end()

    report = timer.start(Stage.STORE, f"writing {len(suggestions)} suggestions")
    counts = {"n_train": len(train), "n_val": len(val), "skipped_images": len(scorer.skipped)}

    def end_timing() -> dict[str, float]:
        timer.end()
        return dict(timer.timings)

    n_stored, timings = store_target_run(store, target_run_id, data, fit=fit, priors=priors, validation=validation,
                                         suggestions=suggestions, counts=counts, end_timing=end_timing)  # fmt: skip
    report(1.0, f"{n_stored} suggestions stored")
    return CycleResult(prior_run_id, target_run_id, validation.map, priors.validation.map, n_stored, timings,
                       dict(scorer.skipped))  # fmt: skip


def _load(store: Store, config: CycleConfig) -> tuple[DatasetArrays, np.ndarray, np.ndarray]:
    """The dataset's labels and its training and validation rows (int64).

    Raises:
        ValueError: no classes, no training image, or no annotated cell in the training split.
    """
    with store.read() as s:
        data = load_dataset(s, get_dataset(s, config.dataset))
    train = np.flatnonzero(data.split_mask(Split.TRAIN))
    val = np.flatnonzero(data.split_mask(Split.VAL))
    if data.n_classes == 0 or len(train) == 0:
        raise ValueError(
            f"dataset {config.dataset!r} has {len(train)} training images and {data.n_classes} classes; "
            "import labels first"
        )
    if data.targets.take(train).nnz == 0:
        raise ValueError(f"dataset {config.dataset!r} has no annotated label in its training split")
    return data, train, val


def _work_dir(store: Store, job_id: int | None) -> Path:
    """The folder of this cycle's heads and checkpoints (a job's is reused when it resumes)."""
    name = f"job-{job_id}" if job_id is not None else f"cycle-{int(time.time())}"
    work_dir = store.home / "runs" / name
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir


def cycle_job(
    store: Store,
    payload: dict[str, Any],
    job_id: int,
    progress: Progress,
    on_stage: StageCallback | None = None,
) -> dict[str, Any]:
    """The worker's handler for a ``cycle`` job: the payload is a :meth:`CycleConfig.to_dict`."""
    result = run_cycle(
        store, CycleConfig.from_dict(payload), job_id=job_id, progress=progress, on_stage=on_stage
    )
    return {
        "prior_run_id": result.prior_run_id,
        "target_run_id": result.target_run_id,
        "partial_map": json_number(result.partial_map),
        "n_suggestions": result.n_suggestions,
        "timings": result.timings,
    }


__all__ = ["CycleResult", "cycle_job", "run_cycle"]
