"""The job queue the worker runs: enqueue, claim atomically, heartbeat, finish, requeue stale jobs.

Claiming is atomic on both backends: PostgreSQL selects with ``FOR UPDATE SKIP LOCKED``; SQLite
write transactions start with ``BEGIN IMMEDIATE`` (see ``db.engine``), so only one worker at a time
can run the select-then-update. Functions take ``session`` first and never commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.errors import NotFoundError
from db.models import Job, JobStatus, utcnow

DEFAULT_STALE_S = 120.0


def _note(job: Job, what: str) -> None:
    job.history = [*(job.history or []), {"at": utcnow().isoformat(timespec="seconds"), "event": what}]


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    dataset_id: int | None = None,
    *,
    created_by: str | None = None,
) -> Job:
    """Add a queued job of ``kind``; ``created_by`` is the name of the user who asked for it."""
    job = Job(
        kind=kind,
        payload=dict(payload),
        dataset_id=dataset_id,
        status=JobStatus.QUEUED,
        created_by=created_by,
    )
    _note(job, f"queued by {created_by}" if created_by else "queued")
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    return job


def claim(session: Session, worker: str, kinds: tuple[str, ...] | None = None) -> Job | None:
    """Take the oldest queued job for ``worker``; None when there is none."""
    q = select(Job).where(Job.status == JobStatus.QUEUED).order_by(Job.id).limit(1)
    if kinds:
        q = q.where(Job.kind.in_(kinds))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    job = session.scalars(q).first()
    if job is None:
        return None
    now = utcnow()
    job.status = JobStatus.RUNNING
    job.worker = worker
    job.attempts = (job.attempts or 0) + 1
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    job.error = None
    _note(job, f"started by {worker} (attempt {job.attempts})")
    session.flush()
    return job


def heartbeat(
    session: Session, job_id: int, worker: str, progress: float | None = None, message: str | None = None
) -> bool:
    """Refresh the job's heartbeat (and progress in [0, 1]); False if the job is no longer ours."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    if message is not None:
        values["message"] = message[:2000]
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.RUNNING)
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    return done == 1


def finish(session: Session, job_id: int, result: dict[str, Any] | None = None) -> Job:
    job = get_job(session, job_id)
    job.status = JobStatus.SUCCEEDED
    job.progress = 1.0
    job.result = dict(result or {})
    job.finished_at = utcnow()
    _note(job, "succeeded")
    session.flush()
    return job


def fail(session: Session, job_id: int, error: str) -> Job:
    job = get_job(session, job_id)
    job.status = JobStatus.FAILED
    job.error = error[:4000]
    job.finished_at = utcnow()
    _note(job, f"failed: {error.splitlines()[0][:200] if error else ''}")
    session.flush()
    return job


def cancel(session: Session, job_id: int) -> Job:
    job = get_job(session, job_id)
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        job.status = JobStatus.CANCELLED
        job.finished_at = utcnow()
        _note(job, "cancelled")
        session.flush()
    return job


def requeue_stale(session: Session, stale_s: float = DEFAULT_STALE_S) -> list[int]:
    """Put running jobs whose heartbeat is older than ``stale_s`` seconds back in the queue."""
    cutoff = utcnow() - dt.timedelta(seconds=stale_s)
    stale = list(
        session.scalars(select(Job).where(Job.status == JobStatus.RUNNING, Job.heartbeat_at < cutoff))
    )
    for job in stale:
        _note(job, f"requeued: worker {job.worker} silent since {job.heartbeat_at}")
        job.status = JobStatus.QUEUED
        job.worker = None
    session.flush()
    return [j.id for j in stale]


def recent_jobs(session: Session, limit: int = 20, dataset_id: int | None = None) -> list[Job]:
    q = select(Job).order_by(Job.id.desc()).limit(limit)
    if dataset_id is not None:
        q = q.where(Job.dataset_id == dataset_id)
    return list(session.scalars(q))


__all__ = [
    "DEFAULT_STALE_S",
    "cancel",
    "claim",
    "enqueue",
    "fail",
    "finish",
    "get_job",
    "heartbeat",
    "recent_jobs",
    "requeue_stale",
]
