"""Model runs, their per-class statistics, and their suggestions.

A run's suggestions are written in the same transaction that marks it succeeded, so they appear
all at once or not at all. Writing them supersedes older pending suggestions of the dataset and
leaves out cells that were labelled meanwhile (an annotator decided them while the model trained).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from db.bulk import create_temp_table, load_rows
from db.errors import NotFoundError
from db.models import (
    Image,
    LabelClass,
    ModelRun,
    RunClassStat,
    RunKind,
    RunStatus,
    Suggestion,
    SuggestionStatus,
    utcnow,
)


def create_run(
    session: Session,
    dataset_id: int,
    kind: RunKind,
    config: dict[str, Any],
    *,
    parent_id: int | None = None,
    job_id: int | None = None,
) -> ModelRun:
    """Start a run (status ``running``); its cycle number is one more than the dataset's last target run."""
    last = session.scalar(
        select(func.max(ModelRun.cycle)).where(
            ModelRun.dataset_id == dataset_id, ModelRun.kind == RunKind.TARGET
        )
    )
    cycle = (last or 0) + 1
    run = ModelRun(
        dataset_id=dataset_id, kind=kind, config=dict(config), cycle=cycle, parent_id=parent_id, job_id=job_id
    )
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: int) -> ModelRun:
    run = session.get(ModelRun, run_id)
    if run is None:
        raise NotFoundError(f"model run {run_id} does not exist")
    return run


def latest_run(session: Session, dataset_id: int, kind: RunKind = RunKind.TARGET) -> ModelRun | None:
    """The newest succeeded run of ``kind`` for the dataset."""
    return session.scalars(
        select(ModelRun)
        .where(
            ModelRun.dataset_id == dataset_id,
            ModelRun.kind == kind,
            ModelRun.status == RunStatus.SUCCEEDED,
        )
        .order_by(ModelRun.id.desc())
        .limit(1)
    ).first()


def list_runs(session: Session, dataset_id: int, limit: int = 100) -> list[ModelRun]:
    return list(
        session.scalars(
            select(ModelRun)
            .where(ModelRun.dataset_id == dataset_id)
            .order_by(ModelRun.id.desc())
            .limit(limit)
        )
    )


def finish_run(
    session: Session,
    run_id: int,
    *,
    metrics: dict[str, Any] | None = None,
    artifacts: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
) -> ModelRun:
    run = get_run(session, run_id)
    run.status = RunStatus.SUCCEEDED
    run.metrics = {**(run.metrics or {}), **(metrics or {})}
    run.artifacts = {**(run.artifacts or {}), **(artifacts or {})}
    run.timings = {**(run.timings or {}), **(timings or {})}
    run.finished_at = utcnow()
    session.flush()
    return run


def fail_run(session: Session, run_id: int, error: str) -> None:
    run = session.get(ModelRun, run_id)
    if run is not None and run.status == RunStatus.RUNNING:
        run.status = RunStatus.FAILED
        run.error = error[:4000]
        run.finished_at = utcnow()
        session.flush()


def fail_stale_runs(session: Session, job_id: int, error: str) -> list[int]:
    """Mark the ``running`` runs of job ``job_id`` failed with ``error``; returns their ids.

    A run stays ``running`` only when the process running its cycle died; the job's next attempt
    calls this before it starts new runs.
    """
    stale = list(
        session.scalars(
            select(ModelRun.id).where(ModelRun.job_id == job_id, ModelRun.status == RunStatus.RUNNING)
        )
    )
    for run_id in stale:
        fail_run(session, run_id, error)
    return stale


def write_class_stats(
    session: Session,
    run_id: int,
    class_ids: Sequence[int],
    *,
    prior_naive: Sequence[float] | None = None,
    prior_model: Sequence[float] | None = None,
    prior_used: Sequence[float] | None = None,
    ap: Sequence[float] | None = None,
) -> None:
    """Store per-class priors (probabilities in [0, 1]) and validation AP (0–1, NaN = not measurable)."""

    def val(seq: Sequence[float] | None, i: int) -> float | None:
        if seq is None:
            return None
        v = float(seq[i])
        return None if np.isnan(v) else v

    existing = {
        s.class_id: s for s in session.scalars(select(RunClassStat).where(RunClassStat.run_id == run_id))
    }
    for i, cid in enumerate(class_ids):
        row = existing.get(int(cid)) or RunClassStat(run_id=run_id, class_id=int(cid))
        for name, seq in (
            ("prior_naive", prior_naive),
            ("prior_model", prior_model),
            ("prior_used", prior_used),
            ("ap", ap),
        ):
            if seq is not None:
                setattr(row, name, val(seq, i))
        session.add(row)
    session.flush()


def class_stats(session: Session, run_id: int) -> list[RunClassStat]:
    return list(session.scalars(select(RunClassStat).where(RunClassStat.run_id == run_id)))


def write_suggestions(
    session: Session,
    run_id: int,
    *,
    image_ids: np.ndarray,
    class_ids: np.ndarray,
    scores: np.ndarray,
    probs: np.ndarray,
    priors: np.ndarray | None = None,
    audit: np.ndarray | None = None,
) -> int:
    """Store a run's ranked suggestions as pending, superseding older pending ones of the dataset.

    Args:
        image_ids, class_ids: database ids, shape (K,), in queue order (``rank`` = position + 1).
        scores: queue key, shape (K,), non-increasing: the class-aware likelihood of a ranked cell
            (higher = more likely a missing positive), a key between its neighbours' for an audit
            cell.
        probs: model probability, shape (K,); priors: class prior per suggestion, shape (K,).
        audit: bool, shape (K,): True for a cell of the random audit sample (``Suggestion.audit``);
            None or all False = none (the column keeps its default, false).

    Returns:
        The number of suggestions stored: cells that got a label meanwhile, or that a reviewer
        already decided for this cell in an earlier run, are left out.
    """
    run = get_run(session, run_id)
    k = len(image_ids)
    if not (len(class_ids) == len(scores) == len(probs) == k):
        raise ValueError("image_ids, class_ids, scores and probs must have the same length")
    pri = priors if priors is not None else np.full(k, np.nan)
    if audit is not None and len(audit) != k:
        raise ValueError(f"audit has {len(audit)} flags for {k} suggestions; give one per suggestion")
    with_audit = audit is not None and bool(np.any(audit))
    flags = np.asarray(audit, dtype=bool) if with_audit else np.zeros(k, dtype=bool)
    session.execute(
        update(Suggestion)
        .where(Suggestion.dataset_id == run.dataset_id, Suggestion.status == SuggestionStatus.PENDING)
        .values(status=SuggestionStatus.SUPERSEDED, claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    create_temp_table(
        session,
        "stage_suggestion",
        [
            ("image_id", "BIGINT"),
            ("class_id", "BIGINT"),
            ("score", "DOUBLE PRECISION"),
            ("prob", "DOUBLE PRECISION"),
            ("prior", "DOUBLE PRECISION"),
            ("rnk", "INTEGER"),
            ("audit", "BOOLEAN"),
        ],
    )
    rows = (
        (int(i), int(c), float(s), float(p), None if np.isnan(q) else float(q), r + 1, bool(a))
        for r, (i, c, s, p, q, a) in enumerate(
            zip(image_ids, class_ids, scores, probs, pri, flags, strict=True)
        )
    )
    columns = ["image_id", "class_id", "score", "prob", "prior", "rnk", "audit"]
    load_rows(session, "stage_suggestion", columns, rows)
    # Without an audit sample the column is not named: it keeps its server default (false).
    audit_column, audit_value = (", audit", ", s.audit") if with_audit else ("", "")
    result = session.execute(
        text(
            f"""
            INSERT INTO suggestion (run_id, dataset_id, image_id, class_id, score, prob, prior, rank,
                                    status, version{audit_column})
            SELECT :run_id, :dataset_id, s.image_id, s.class_id, s.score, s.prob, s.prior, s.rnk,
                   :pending, 1{audit_value}
            FROM stage_suggestion s
            WHERE NOT EXISTS (SELECT 1 FROM label l WHERE l.image_id = s.image_id AND l.class_id = s.class_id)
              AND NOT EXISTS (SELECT 1 FROM suggestion d WHERE d.image_id = s.image_id
                              AND d.class_id = s.class_id AND d.status IN (:accepted, :rejected))
            ORDER BY s.rnk
            """
        ),
        {
            "run_id": run_id,
            "dataset_id": run.dataset_id,
            "pending": SuggestionStatus.PENDING.value,
            "accepted": SuggestionStatus.ACCEPTED.value,
            "rejected": SuggestionStatus.REJECTED.value,
        },
    )
    session.connection().exec_driver_sql("DROP TABLE IF EXISTS stage_suggestion")
    return int(result.rowcount or 0)


def suggestion_scores(session: Session, run_id: int) -> list[tuple[str, str, float]]:
    """Every suggestion of ``run_id`` as (image external id, class key, score), any status, any order."""
    stmt = (
        select(Image.external_id, LabelClass.key, Suggestion.score)
        .join(Image, Image.id == Suggestion.image_id)
        .join(LabelClass, LabelClass.id == Suggestion.class_id)
        .where(Suggestion.run_id == run_id)
    )
    return [(ext, key, float(score)) for ext, key, score in session.execute(stmt)]


__all__ = [
    "class_stats",
    "create_run",
    "fail_run",
    "fail_stale_runs",
    "finish_run",
    "get_run",
    "latest_run",
    "list_runs",
    "suggestion_scores",
    "write_class_stats",
    "write_suggestions",
]
