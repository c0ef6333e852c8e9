"""Job kinds the worker runs: name → handler ``(store, job, progress, on_stage) -> result dict``."""

from __future__ import annotations

from typing import Any

from app.pipeline.cycle import cycle_job
from app.pipeline.stages import StageCallback
from app.store import Store
from app.worker import Handler
from common.progress import Progress
from db.models import Job


def _cycle(store: Store, job: Job, progress: Progress, on_stage: StageCallback) -> dict[str, Any]:
    return cycle_job(store, dict(job.payload), job.id, progress, on_stage)


HANDLERS: dict[str, Handler] = {"cycle": _cycle}

__all__ = ["HANDLERS"]
