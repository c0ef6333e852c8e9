"""Job kinds the worker runs: name → handler ``(store, job, progress) -> result dict``."""

from __future__ import annotations

from typing import Any

from app.pipeline.cycle import cycle_job
from app.store import Store
from db.models import Job


def _cycle(store: Store, job: Job, progress: Any) -> dict[str, Any]:
    return cycle_job(store, dict(job.payload), job.id, progress)


HANDLERS = {"cycle": _cycle}

__all__ = ["HANDLERS"]
