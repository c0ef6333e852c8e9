"""The job worker: runs queued jobs (a cycle, an export) from the job table.

One worker process runs one job at a time. While a job runs, a background thread refreshes its
heartbeat every ``heartbeat_s`` seconds; a worker that finds a running job whose heartbeat is
older than ``stale_s`` (its worker died) puts it back in the queue, and the job resumes from its
checkpoints — up to ``max_attempts`` starts, after which a job that keeps killing its worker (out of
memory, a crashing library) is marked failed instead of being requeued forever. A failing job is
marked failed with a one-line error; the store stays consistent because each job step commits its
own unit of work. Progress is written at most once a second, and at once when the job reports a new
stage (a handler's ``on_stage(stage)``, e.g. a cycle's :class:`~app.pipeline.stages.Stage`): the
first progress report of a stage is written without waiting, so the job row's message always
names the current stage. Nothing is parsed out of the message text.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.pipeline.home import HomeError
from app.pipeline.stages import Stage, StageCallback
from app.store import Store
from common.progress import Progress
from db import jobs
from db.errors import StoreError
from db.models import Job

log = logging.getLogger(__name__)

#: ``handler(store, job, progress, on_stage)`` runs one job and returns its JSON-safe result; it
#: calls ``on_stage`` as each of its stages starts, then reports that stage's progress.
Handler = Callable[[Store, Job, Progress, StageCallback], dict[str, Any]]


class JobCancelled(Exception):
    """Raised inside a job when its row was cancelled or taken over by another worker."""


def _handlers() -> dict[str, Handler]:
    from app.jobs import HANDLERS  # imported late: handlers pull in torch

    return HANDLERS


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Worker:
    """Runs jobs from ``store``'s queue.

    Args:
        heartbeat_s: seconds between heartbeats of a running job.
        stale_s: a running job silent for longer is requeued (its worker is presumed dead).
        max_attempts: a stale job that was started this many times is failed, not requeued.
    """

    store: Store
    name: str = ""
    heartbeat_s: float = 5.0
    stale_s: float = 60.0
    poll_s: float = 2.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        self.name = self.name or worker_name()

    def requeue_stale(self) -> list[int]:
        """Requeue running jobs whose worker went silent; returns their ids (those given up on excluded)."""
        requeued: list[int] = []
        with self.store.write() as s:
            for job_id in jobs.requeue_stale(s, self.stale_s):
                job = jobs.get_job(s, job_id)
                if job.attempts >= self.max_attempts:
                    jobs.fail(
                        s,
                        job_id,
                        f"its worker died during each of {job.attempts} attempts (out of memory? killed?); "
                        "see the worker's log, fix the cause and queue the job again",
                    )
                    log.error(
                        "job %d failed: its worker died during each of %d attempts", job_id, job.attempts
                    )
                else:
                    requeued.append(job_id)
                    log.warning("job %d requeued: its worker stopped sending heartbeats", job_id)
        return requeued

    def run_once(self) -> int | None:
        """Claim and run one job; returns its id, or None when the queue is empty."""
        self.requeue_stale()
        with self.store.write() as s:
            job = jobs.claim(s, self.name)
            if job is None:
                return None
            s.expunge(job)
        self._run(job)
        return job.id

    def run_forever(self, *, stop: threading.Event | None = None, max_jobs: int | None = None) -> int:
        """Run jobs until ``stop`` is set (or ``max_jobs`` ran); returns how many ran."""
        done = 0
        stop = stop or threading.Event()
        while not stop.is_set() and (max_jobs is None or done < max_jobs):
            job_id = self.run_once()
            if job_id is None:
                stop.wait(self.poll_s)
            else:
                done += 1
        return done

    def _run(self, job: Job) -> None:
        handler = _handlers().get(job.kind)
        if handler is None:
            with self.store.write() as s:
                jobs.fail(
                    s, job.id, f"unknown job kind {job.kind!r}; this worker runs {', '.join(_handlers())}"
                )
            return
        lost = threading.Event()
        stop_beat = threading.Event()
        state: dict[str, Any] = {"progress": None, "message": None}
        lock = threading.Lock()

        def beat() -> None:
            while not stop_beat.wait(self.heartbeat_s):
                with lock:
                    progress, message = state["progress"], state["message"]
                try:
                    with self.store.write() as s:
                        if not jobs.heartbeat(s, job.id, self.name, progress, message):
                            lost.set()
                except Exception:  # a failed heartbeat must not kill the job; the next one retries
                    log.exception("heartbeat of job %d failed", job.id)

        last_write = [0.0]
        new_stage = [False]

        def on_stage(stage: Stage) -> None:
            log.info("job %d: %s", job.id, stage.value)
            new_stage[0] = True

        def progress(fraction: float, message: str) -> None:
            if lost.is_set():
                raise JobCancelled(f"job {job.id} was cancelled or taken over by another worker")
            with lock:
                state["progress"], state["message"] = fraction, message
            now = time.monotonic()
            # progress rows at most once a second, but the first report of a new stage at once
            if now - last_write[0] >= 1.0 or new_stage[0]:
                last_write[0], new_stage[0] = now, False
                with self.store.write() as s:
                    if not jobs.heartbeat(s, job.id, self.name, fraction, message):
                        lost.set()

        thread = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        thread.start()
        try:
            result = handler(self.store, job, progress, on_stage)
        except JobCancelled as err:
            log.warning("%s", err)
            return
        except Exception as err:
            log.error("job %d (%s) failed: %s", job.id, job.kind, err, exc_info=not _is_user_error(err))
            with self.store.write() as s:
                jobs.fail(s, job.id, error_line(err))
            return
        finally:
            stop_beat.set()
            thread.join()
        with self.store.write() as s:
            jobs.finish(s, job.id, result)


def _is_user_error(err: BaseException) -> bool:
    """Errors whose message already says what, where and what to do (no traceback needed)."""
    return isinstance(err, (StoreError, ValueError, HomeError)) and bool(str(err).strip())


def error_line(err: BaseException) -> str:
    """The job's one-line error: the message of a user error, else ``Type: message``."""
    text = str(err) if _is_user_error(err) else "".join(traceback.format_exception_only(type(err), err))
    return " ".join(text.split())


__all__ = ["JobCancelled", "Worker", "error_line", "worker_name"]
