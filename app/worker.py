"""The job worker: runs queued jobs (a cycle, an export) from the job table.

One worker process runs one job at a time. While a job runs, a background thread refreshes its
heartbeat every ``heartbeat_s`` seconds; a worker that finds a running job whose heartbeat is
older than ``stale_s`` (its worker died) puts it back in the queue, and the job resumes from its
checkpoints. A failing job is marked failed with a one-line error; the store stays consistent
because each job step commits its own unit of work.
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

from app.store import Store
from db import jobs
from db.models import Job

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
Handler = Callable[[Store, Job, Progress], dict[str, Any]]


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
    """

    store: Store
    name: str = ""
    heartbeat_s: float = 5.0
    stale_s: float = 60.0
    poll_s: float = 2.0

    def __post_init__(self) -> None:
        self.name = self.name or worker_name()

    def requeue_stale(self) -> list[int]:
        with self.store.write() as s:
            ids = jobs.requeue_stale(s, self.stale_s)
        for job_id in ids:
            log.warning("job %d requeued: its worker stopped sending heartbeats", job_id)
        return ids

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

        def progress(fraction: float, message: str) -> None:
            if lost.is_set():
                raise JobCancelled(f"job {job.id} was cancelled or taken over by another worker")
            with lock:
                state["progress"], state["message"] = fraction, message
            now = time.monotonic()
            if now - last_write[0] >= 1.0:  # progress rows at most once a second
                last_write[0] = now
                with self.store.write() as s:
                    if not jobs.heartbeat(s, job.id, self.name, fraction, message):
                        lost.set()

        thread = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        thread.start()
        try:
            result = handler(self.store, job, progress)
        except JobCancelled as err:
            log.warning("%s", err)
            return
        except Exception as err:
            log.error("job %d (%s) failed: %s", job.id, job.kind, err)
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            with self.store.write() as s:
                jobs.fail(s, job.id, detail)
            return
        finally:
            stop_beat.set()
            thread.join()
        with self.store.write() as s:
            jobs.finish(s, job.id, result)


__all__ = ["JobCancelled", "Worker", "worker_name"]
