"""The job worker: runs queued cycles, fails cleanly, and recovers from a killed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import jobs as job_kinds
from app.pipeline.config import CycleConfig
from app.pipeline.stages import Stage
from app.store import Store, open_store
from app.worker import Worker
from common.progress import Progress
from db import jobs
from db.models import Job, JobStatus, ModelRun, RunKind, RunStatus, Suggestion, SuggestionStatus
from tests.app.seed import seed_store


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    return open_store(db_url)


def _payload(**kw: object) -> dict[str, object]:
    cfg = dict(dataset="toy", backbone="resnet10t", pretrained="none", image_size=40, epochs=5,
               batch_size=32, workers=0, top_suggestions=40, device="cpu")  # fmt: skip
    cfg.update(kw)
    return CycleConfig(**cfg).to_dict()  # type: ignore[arg-type]


def test_worker_runs_a_queued_cycle(store: Store, tmp_path: Path) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=80)
    with store.write() as s:
        job_id = jobs.enqueue(s, "cycle", _payload(), dataset_id=seeded.dataset_id).id
    assert Worker(store, heartbeat_s=0.5).run_once() == job_id
    with store.read() as s:
        job = jobs.get_job(s, job_id)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.progress == 1.0 and job.attempts == 1
        assert job.result["n_suggestions"] == 40
        run = s.get(ModelRun, job.result["target_run_id"])
        assert run is not None and run.job_id == job_id
    assert Worker(store).run_once() is None


def test_failing_job_gets_a_one_line_error_and_store_stays_consistent(store: Store, tmp_path: Path) -> None:
    seed_store(store, tmp_path / "data", n_images=40)
    with store.write() as s:
        bad = jobs.enqueue(s, "cycle", _payload(dataset="missing")).id
        unknown = jobs.enqueue(s, "teleport", {}).id
    w = Worker(store)
    w.run_once()
    w.run_once()
    with store.read() as s:
        job = jobs.get_job(s, bad)
        assert job.status == JobStatus.FAILED
        assert "dataset 'missing' does not exist" in (job.error or "")
        assert "\n" not in (job.error or "")
        assert "unknown job kind 'teleport'" in (jobs.get_job(s, unknown).error or "")
        assert s.scalar(select(func.count()).select_from(ModelRun)) == 0


def test_killed_worker_job_is_requeued_and_finished_by_another(store: Store, tmp_path: Path) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=160)
    with store.write() as s:
        # Enough epochs that the worker is still training when it is killed, even on an idle machine.
        job_id = jobs.enqueue(s, "cycle", _payload(epochs=2000), dataset_id=seeded.dataset_id).id
    env = {**os.environ, "LABELMEND_HOME": str(store.home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--once", "--db", store.url, "--heartbeat-s", "0.5"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait until it is training (past the features stage)
            with store.read() as s:
                job = jobs.get_job(s, job_id)
                assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING), (
                    f"job ended before the kill: {job.status}"
                )
                if job.status == JobStatus.RUNNING and job.progress >= 0.5:
                    break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        else:
            pytest.fail("the worker never reached the training stage")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with store.read() as s:
        assert jobs.get_job(s, job_id).status == JobStatus.RUNNING  # the dead worker still "holds" it
    time.sleep(1.2)
    survivor = Worker(store, stale_s=1.0, heartbeat_s=0.5)
    assert survivor.run_once() == job_id
    with store.read() as s:
        job = jobs.get_job(s, job_id)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.attempts == 2
        assert any("requeued" in h["event"] for h in job.history)
        statuses = [r.status for r in s.scalars(select(ModelRun).where(ModelRun.kind == RunKind.TARGET))]
        assert statuses.count(RunStatus.SUCCEEDED) == 1
        assert set(statuses) <= {RunStatus.SUCCEEDED, RunStatus.FAILED}
        assert all(r.status != RunStatus.RUNNING for r in s.scalars(select(ModelRun)))
        pending_runs = set(
            s.scalars(select(Suggestion.run_id).where(Suggestion.status == SuggestionStatus.PENDING))
        )
        assert pending_runs == {job.result["target_run_id"]}
    assert isinstance(job, Job)


def test_a_new_stage_is_written_at_once_other_progress_at_most_once_a_second(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[float, str]] = []

    def row(job_id: int) -> tuple[float, str]:
        with store.read() as s:
            job = jobs.get_job(s, job_id)
            return job.progress, job.message

    def staged(_store: Store, job: Job, progress: Progress, on_stage: object) -> dict[str, object]:
        assert callable(on_stage)
        on_stage(Stage.LOAD)
        progress(0.01, "load: starting")  # the first report of a stage: written at once
        progress(0.02, "load: 3 images")  # a moment later, same stage: waits for the next second
        seen.append(row(job.id))
        on_stage(Stage.FEATURES)
        progress(0.03, "features: starting")  # a new stage: written at once
        seen.append(row(job.id))
        return {"done": True}

    monkeypatch.setitem(job_kinds.HANDLERS, "staged", staged)
    with store.write() as s:
        job_id = jobs.enqueue(s, "staged", {}).id
    assert Worker(store, heartbeat_s=60).run_once() == job_id
    assert seen == [(0.01, "load: starting"), (0.03, "features: starting")]
    with store.read() as s:
        assert jobs.get_job(s, job_id).result == {"done": True}
