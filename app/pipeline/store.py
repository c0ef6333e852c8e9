"""The cycle's writes to the store, each one unit of work (one transaction).

A run is created ``running``; the prior run's class statistics are written in the transaction that
marks it succeeded, and the target run's suggestions, class statistics and metrics in the one that
marks it succeeded, so a run's results appear all at once or not at all. Runs that a cycle started
and did not finish are marked failed, by the cycle itself (:func:`fail_runs`) or, when its process
died, by the job's next attempt (:func:`mark_stale_runs_failed`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.pipeline.evaluate import Validation
from app.pipeline.fit import Fit
from app.pipeline.load import DatasetArrays
from app.pipeline.priors import Priors
from app.pipeline.suggest import Suggestions
from app.store import Store
from db import runs
from db.models import RunKind

log = logging.getLogger(__name__)

#: Why a run left ``running`` by a dead worker is failed when its job starts again.
INTERRUPTED = "interrupted: its worker stopped; the job was restarted"


def json_number(x: float | None) -> float | None:
    """``x`` rounded to 4 decimals for a JSON column; None for None or NaN."""
    return None if x is None or math.isnan(x) else round(float(x), 4)


def mark_stale_runs_failed(store: Store, job_id: int | None) -> None:
    """Mark failed the runs a previous attempt of job ``job_id`` left ``running`` (None: nothing to do)."""
    if job_id is None:
        return
    with store.write() as s:
        runs.fail_stale_runs(s, job_id, INTERRUPTED)


def fail_runs(store: Store, run_ids: list[int], err: BaseException) -> None:
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


def start_run(
    store: Store,
    data: DatasetArrays,
    kind: RunKind,
    config: dict[str, Any],
    *,
    job_id: int | None,
    parent_id: int | None = None,
) -> int:
    """Create a ``running`` run of ``kind`` with ``config`` (JSON-safe) and return its id."""
    with store.write() as s:
        return runs.create_run(s, data.dataset_id, kind, config, parent_id=parent_id, job_id=job_id).id


def _write_class_stats(
    s: Session, run_id: int, data: DatasetArrays, priors: Priors, ap: np.ndarray | None = None
) -> None:
    """The run's per-class priors (naive, model, used) and, for a target run, its AP (C,) in [0, 1]."""
    runs.write_class_stats(s, run_id, data.class_ids.tolist(), prior_naive=priors.naive,
                           prior_model=priors.model, prior_used=priors.used, ap=ap)  # fmt: skip


def store_prior_run(store: Store, run_id: int, data: DatasetArrays, priors: Priors) -> None:
    """One transaction: the prior run's per-class priors, metrics and artifacts, the run succeeded."""
    with store.write() as s:
        _write_class_stats(s, run_id, data, priors)
        runs.finish_run(
            s,
            run_id,
            metrics={"partial_map": json_number(priors.validation.map), "prior_method": priors.method},
            artifacts=priors.fit.artifacts,
            timings={"train": priors.fit.seconds},
        )


def audit_metrics(data: DatasetArrays, suggestions: Suggestions) -> dict[str, Any]:
    """``{"audit": {"drawn": k, "unknown_cells": {class id (text): n}}}`` for a queue with an audit
    sample, else ``{}``: the cells drawn and the population per class they were drawn from (the
    training images' unknown cells), which turns a class's audit rate into its estimated missing
    positives (Models page).
    """
    if len(suggestions.unknown_cells) == 0:
        return {}
    unknown = {
        str(int(cid)): int(n) for cid, n in zip(data.class_ids, suggestions.unknown_cells, strict=True) if n
    }
    return {"audit": {"drawn": int(suggestions.audit.sum()), "unknown_cells": unknown}}


def store_target_run(
    store: Store,
    run_id: int,
    data: DatasetArrays,
    *,
    fit: Fit,
    priors: Priors,
    validation: Validation,
    suggestions: Suggestions,
    counts: dict[str, int],
    end_timing: Callable[[], dict[str, float]],
) -> tuple[int, dict[str, float]]:
    """One transaction: the suggestions, the per-class statistics and the target run marked succeeded.

    The run's metrics get ``audit`` (:func:`audit_metrics`) when the queue has an audit sample.

    Args:
        counts: extra metrics (``n_train``, ``n_val``, ``skipped_images``).
        end_timing: called once the suggestions are written, before the run is finished: ends the
            store stage's timing and returns every stage's seconds (stored with the run).

    Returns:
        (suggestions stored — cells labelled or decided meanwhile are left out, the stage timings).
    """
    with store.write() as s:
        n_stored = runs.write_suggestions(
            s,
            run_id,
            image_ids=data.image_ids[suggestions.rows],
            class_ids=data.class_ids[suggestions.cls_idx],
            scores=suggestions.score,
            probs=suggestions.probs,
            priors=suggestions.priors,
            audit=suggestions.audit,
        )
        _write_class_stats(s, run_id, data, priors, ap=validation.per_class_ap)
        timings = end_timing()
        metrics = {
            "partial_map": json_number(validation.map),
            "prior_partial_map": json_number(priors.validation.map),
            "n_suggestions": n_stored,
            **counts,
            **audit_metrics(data, suggestions),
        }
        runs.finish_run(s, run_id, metrics=metrics, artifacts=fit.artifacts, timings=timings)
    return n_stored, timings


__all__ = [
    "INTERRUPTED",
    "audit_metrics",
    "fail_runs",
    "json_number",
    "mark_stale_runs_failed",
    "start_run",
    "store_prior_run",
    "store_target_run",
]
