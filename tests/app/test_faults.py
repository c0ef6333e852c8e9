"""Faults: a worker killed mid-embedding or mid-write, a review client killed mid-decision, a full or
unwritable LABELMEND_HOME, a bad prior file. Each must lose nothing and leave a consistent store.

Killed processes are real subprocesses (``labelmend worker``, ``tests.app.decider``) killed with
SIGKILL. The exact moment is found from the store, never from a test-only hook in the code: the
job's progress message names the stage, SIGSTOP freezes the worker while the test looks (the
embedding cache on disk, SQLite's write lock, PostgreSQL's lock table), then SIGKILL.
Each test prints what it measured (``time to recover``); run with ``-s`` to see it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app.pipeline.config import CycleConfig
from app.pipeline.features import EMBED_FLUSH_S
from app.store import Store, open_store
from app.worker import Worker
from db import jobs
from db.engine import make_engine
from db.models import Job, Label, LabelEvent, LabelSource, ModelRun, Suggestion
from db.runs import create_run, finish_run, write_suggestions
from tests.app.seed import Seeded, seed_store
from tests.db.factory import make_small

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    return open_store(db_url)


def _payload(**kw: object) -> dict[str, object]:
    cfg = dict(dataset="toy", backbone="resnet10t", pretrained="none", image_size=32, epochs=1,
               batch_size=32, workers=0, top_suggestions=40, device="cpu")  # fmt: skip
    cfg.update(kw)
    return CycleConfig(**cfg).to_dict()  # type: ignore[arg-type]


def _enqueue(store: Store, seeded: Seeded, payload: dict[str, object]) -> int:
    with store.write() as s:
        return jobs.enqueue(s, "cycle", payload, dataset_id=seeded.dataset_id).id


def _job(store: Store, job_id: int) -> Job:
    with store.read() as s:
        return jobs.get_job(s, job_id)


def _start_worker(
    store: Store, log: Path, *, heartbeat_s: float, preexec: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """``labelmend worker --once`` in its own process group, logging to ``log``."""
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        "--once",
        "--db",
        store.url,
        "--heartbeat-s",
        str(heartbeat_s),
    ]
    env = {**os.environ, "LABELMEND_HOME": str(store.home)}
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=preexec,
        )  # fmt: skip


def _wait_for(what: str, check: Callable[[], Any], proc: subprocess.Popen[bytes] | None, log: Path | None,
              timeout: float = 240.0, every: float = 0.02) -> Any:  # fmt: skip
    """Poll ``check`` until it returns something truthy; fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            pytest.fail(f"the worker exited (rc {proc.returncode}) before {what}:\n{tail}")
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    os.killpg(proc.pid, sig)


def _kill(proc: subprocess.Popen[bytes]) -> float:
    """SIGKILL the process group; returns the moment (time.monotonic) of the kill."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    at = time.monotonic()
    proc.wait(timeout=30)
    return at


@contextlib.contextmanager
def _reaped(proc_box: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """Kill any process still in ``proc_box`` when the block ends (a failing test leaves none behind)."""
    try:
        yield
    finally:
        for proc in proc_box:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _labels(store: Store) -> tuple[list[tuple[int, int, int, int]], int]:
    """Every label (image, class, value, version) and the number of audit events."""
    with store.read() as s:
        rows = s.execute(select(Label.image_id, Label.class_id, Label.value, Label.version)).all()
        events = s.scalar(select(func.count()).select_from(LabelEvent)) or 0
    return sorted(tuple(r) for r in rows), events  # type: ignore[misc]


def _assert_runs_consistent(store: Store) -> None:
    """No run left running; each succeeded run has its artifact files; only one run's suggestions pend."""
    with store.read() as s:
        all_runs = list(s.scalars(select(ModelRun)))
        assert all(r.status in ("succeeded", "failed") for r in all_runs), [
            (r.id, r.status) for r in all_runs
        ]
        for r in all_runs:
            if r.status == "succeeded" and r.artifacts:
                path = r.artifacts.get("head") or r.artifacts.get("checkpoint")
                assert path and Path(path).is_file(), f"run {r.id} succeeded without its artifact {path}"
        pending = set(s.scalars(select(Suggestion.run_id).where(Suggestion.status == "pending")))
        ok = {r.id for r in all_runs if r.status == "succeeded"}
        assert pending <= ok, f"pending suggestions of unfinished runs: {pending - ok}"
        assert len(pending) <= 1


def _events(job: Job) -> list[str]:
    return [h["event"] for h in job.history]


# --- (a) kill -9 during embedding extraction -------------------------------------------------------


def _cache_state(folder: Path) -> tuple[list[str], int]:
    """The ids in the cache's index and the size of its data file in bytes."""
    ids = (
        np.load(folder / "index.npy", allow_pickle=False).tolist() if (folder / "index.npy").exists() else []
    )
    size = (folder / "data.bin").stat().st_size if (folder / "data.bin").exists() else 0
    return [str(i) for i in ids], size


def test_kill_during_embedding_keeps_the_cache_valid_and_the_cycle_finishes(
    store: Store, tmp_path: Path
) -> None:
    n, size, batch = 320, 40, 16
    seeded = seed_store(store, tmp_path / "data", n_images=n, image_size=size)
    job_id = _enqueue(store, seeded, _payload(image_size=size, batch_size=batch))
    log = tmp_path / "worker.log"
    cache_root = store.home / "cache" / "embeddings"
    procs: list[subprocess.Popen[bytes]] = []
    with _reaped(procs):
        proc = _start_worker(store, log, heartbeat_s=0.5)
        procs.append(proc)

        def embedding() -> bool:
            m = re.match(r"features: embedding images: (\d+)/(\d+)", _job(store, job_id).message or "")
            return m is not None and int(m.group(1)) < int(m.group(2))

        _wait_for("the worker embedding images", embedding, proc, log)
        # The cache is appended to every EMBED_FLUSH_S seconds of extraction. Freeze the worker that
        # long (its monotonic clock runs on), so the next batch appends what it computed so far.
        _signal(proc, signal.SIGSTOP)
        time.sleep(EMBED_FLUSH_S + 0.5)
        _signal(proc, signal.SIGCONT)
        index = _wait_for(
            "the first append to the embedding cache",
            lambda: next(iter(cache_root.glob("*/index.npy")), None),
            proc, log, every=0.002,
        )  # fmt: skip
        _signal(proc, signal.SIGSTOP)
        folder = index.parent
        dim = int(json.loads((folder / "meta.json").read_text())["dim"])
        before_ids, before_size = _cache_state(folder)
        assert 0 < len(before_ids) < n, f"not mid-extraction: {len(before_ids)} of {n} cached"
        killed_at = _kill(proc)
    row_bytes = dim * 2  # float16
    assert before_size >= len(before_ids) * row_bytes  # rows past the index (a cut append) are allowed
    with store.read() as s:
        assert jobs.get_job(s, job_id).status == "running"  # the dead worker still "holds" it
        assert s.scalar(select(func.count()).select_from(ModelRun)) == 0  # no run before the features

    time.sleep(1.2)
    assert Worker(store, stale_s=1.0, heartbeat_s=0.5).run_once() == job_id
    recover_s = time.monotonic() - killed_at
    job = _job(store, job_id)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2 and any(e.startswith("requeued") for e in _events(job))
    after_ids, after_size = _cache_state(folder)
    assert after_ids[: len(before_ids)] == before_ids  # kept, not recomputed
    assert sorted(after_ids) == sorted(seeded.image_ids) and after_size == n * row_bytes  # no garbage tail
    _assert_runs_consistent(store)

    # Every cached vector, those written before the kill included, is what the backbone computes.
    from app.pipeline.load import load_dataset
    from core.data import ImageSource
    from core.device import seed_everything
    from core.embeddings import EmbeddingCache, embed_images
    from core.models import create_model
    from db.datasets import get_dataset

    with store.read() as s:
        data = load_dataset(s, get_dataset(s, "toy"))
    row_of = {e: i for i, e in enumerate(data.external_ids)}
    check = before_ids + random.Random(0).sample(after_ids[len(before_ids) :], 16)
    source = ImageSource(data.image_root, tuple(data.external_ids), tuple(data.paths)).subset(
        [row_of[i] for i in check]
    )
    seed_everything(0)  # as the cycle builds its randomly initialised backbone
    model = create_model("resnet10t", data.n_classes, pretrained="none")
    ref = embed_images(model, source, tmp_path / "ref", backbone="resnet10t", image_size=size,
                       batch_size=batch, device="cpu")  # fmt: skip
    assert ref.cache.folder.name == folder.name
    cached = EmbeddingCache(store.home / "cache", ref.cache.key, dim).read(check)
    np.testing.assert_allclose(cached, ref.embeddings, rtol=2e-2, atol=2e-3)
    print(f"\n[a] killed with {len(before_ids)}/{n} embeddings cached; recovered in {recover_s:.1f} s")


# --- (c) kill -9 while the run's suggestions are being written -------------------------------------


def _old_pending_run(store: Store, seeded: Seeded, k: int = 30) -> int:
    """A finished earlier run with ``k`` pending suggestions (the new run supersedes them)."""
    with store.write() as s:
        from app.pipeline.load import load_dataset
        from db.datasets import get_dataset

        data = load_dataset(s, get_dataset(s, "toy"))
        img, cls = np.nonzero(data.dense_targets() == -1)
        run = create_run(s, seeded.dataset_id, "target", {"loss": "csl"})
        write_suggestions(
            s, run.id, image_ids=data.image_ids[img[:k]], class_ids=data.class_ids[cls[:k]],
            scores=np.linspace(1, 0.5, k), probs=np.linspace(0.9, 0.4, k),
        )  # fmt: skip
        finish_run(s, run.id)
        return run.id


def _target_run(store: Store, job_id: int) -> ModelRun | None:
    with store.read() as s:
        return s.scalars(select(ModelRun).where(ModelRun.job_id == job_id, ModelRun.kind == "target")).first()


def _stop_inside_sqlite_write(store: Store, proc: subprocess.Popen[bytes], run_id: int) -> None:
    """SIGSTOP the worker while it holds SQLite's write lock with the run still unfinished."""
    path = make_url(store.url).database
    assert path
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _signal(proc, signal.SIGSTOP)
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            locked = False
        except sqlite3.OperationalError:
            locked = True
        finally:
            probe.close()
        with store.read() as s:
            status = s.get(ModelRun, run_id, populate_existing=True).status  # type: ignore[union-attr]
        if locked and status == "running":
            return  # inside the transaction that writes the suggestions and finishes the run
        assert status == "running", "the write finished before the test could stop the worker"
        _signal(proc, signal.SIGCONT)
        time.sleep(0.001)
    pytest.fail("never caught the worker inside its write transaction")


def _pg_blocked(store: Store) -> int | None:
    """The backend waiting on a lock to mark a run succeeded (a fresh snapshot each call)."""
    with store.read() as s:
        return s.scalar(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE model_run%'"
            )
        )


def _pg_alive(store: Store, pid: int) -> bool:
    with store.read() as s:
        return bool(s.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}))


def test_kill_while_writing_suggestions_leaves_no_half_run(store: Store, tmp_path: Path) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=400, image_size=32)
    old_run = _old_pending_run(store, seeded)
    # Every unknown cell becomes a suggestion: a write of thousands of rows.
    # 20 epochs: time to lock the target run's row after it appears, before its suggestions are written.
    job_id = _enqueue(store, seeded, _payload(top_suggestions=1_000_000, epochs=20))
    labels_before = _labels(store)
    log = tmp_path / "worker.log"
    pg = make_url(store.url).get_backend_name() == "postgresql"
    procs: list[subprocess.Popen[bytes]] = []
    with _reaped(procs), contextlib.ExitStack() as stack:
        # No heartbeats (progress rows stand in): on SQLite one would take the write lock probed for.
        proc = _start_worker(store, log, heartbeat_s=600)
        procs.append(proc)
        target = _wait_for("the target run", lambda: _target_run(store, job_id), proc, log)
        if pg:
            # Hold the run's row: the worker's transaction writes every suggestion and the class
            # statistics, then waits on this lock to mark the run succeeded — where it is killed.
            engine = make_engine(store.url)
            stack.callback(engine.dispose)
            locker = stack.enter_context(engine.connect())
            stack.callback(locker.rollback)
            locker.execute(
                text("SELECT id FROM model_run WHERE id = :id FOR NO KEY UPDATE"), {"id": target.id}
            )
            backend = _wait_for("the worker blocked before its commit", lambda: _pg_blocked(store), proc, log)
            assert (_job(store, job_id).message or "").startswith("store: writing")
        else:
            _wait_for(
                "the store stage",
                lambda: (_job(store, job_id).message or "").startswith("store: writing"),
                proc, log, every=0.002,
            )  # fmt: skip
            _stop_inside_sqlite_write(store, proc, target.id)
        killed_at = _kill(proc)
        # What others see now: the committed store, with the dead transaction's rows invisible.
        with store.read() as s:
            assert s.get(ModelRun, target.id, populate_existing=True).status == "running"  # type: ignore[union-attr]
            assert s.scalar(select(func.count()).where(Suggestion.run_id == target.id)) == 0
            assert (
                s.scalar(
                    select(func.count()).where(Suggestion.run_id == old_run, Suggestion.status == "pending")
                )
                == 30
            )
        if pg:
            locker.rollback()  # the dead client's backend now finds its client gone and rolls back
            _wait_for(
                "the killed worker's backend to end", lambda: not _pg_alive(store, backend), None, None, 60
            )
    with store.read() as s:
        assert s.scalar(select(func.count()).where(Suggestion.run_id == target.id)) == 0

    time.sleep(1.2)
    assert Worker(store, stale_s=1.0, heartbeat_s=0.5).run_once() == job_id
    recover_s = time.monotonic() - killed_at
    job = _job(store, job_id)
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    events = _events(job)
    assert events[0] == "queued" and "(attempt 1)" in events[1] and events[2].startswith("requeued")
    assert "(attempt 2)" in events[3] and events[-1] == "succeeded"
    with store.read() as s:
        dead = s.get(ModelRun, target.id, populate_existing=True)
        assert dead is not None and dead.status == "failed" and "interrupted" in (dead.error or "")
        new_target = job.result["target_run_id"]
        n_new = s.scalar(
            select(func.count()).where(Suggestion.run_id == new_target, Suggestion.status == "pending")
        )
        assert n_new == job.result["n_suggestions"] > 1000
        assert (
            s.scalar(select(func.count()).where(Suggestion.run_id == old_run, Suggestion.status == "pending"))
            == 0
        )
    _assert_runs_consistent(store)
    assert _labels(store) == labels_before
    print(f"\n[c] killed inside the suggestion write; recovered in {recover_s:.1f} s ({n_new} suggestions)")


# --- (d) a review client killed mid-decision -------------------------------------------------------


def test_killed_review_client_records_each_decision_fully_or_not_at_all(store: Store, tmp_path: Path) -> None:
    n_sugg, kills = 1500, 6
    with store.write() as s:
        small = make_small(s, n_images=400, n_classes=8, name="review")
        run = create_run(s, small.dataset_id, "target", {})
        img, cls = np.divmod(np.arange(n_sugg), 8)
        write_suggestions(
            s, run.id, image_ids=np.array(small.image_ids)[img], class_ids=np.array(small.class_ids)[cls],
            scores=np.linspace(1, 0, n_sugg), probs=np.linspace(1, 0, n_sugg),
        )  # fmt: skip
        finish_run(s, run.id)
    rng = random.Random(7)
    reported: dict[int, str] = {}
    recover: list[float] = []
    procs: list[subprocess.Popen[bytes]] = []

    def run_client(i: int, kill_after: float | None) -> list[str]:
        out = tmp_path / f"client{i}.out"
        with out.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.app.decider", store.url, str(small.dataset_id), "ann", str(i)],
                cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        procs.append(proc)
        started = time.monotonic()
        if kill_after is None:
            assert proc.wait(timeout=300) == 0, out.read_text()
        else:
            first = _wait_for("a first decision", lambda: "decided" in out.read_text(), proc, out, 120, 0.005)
            recover.append(time.monotonic() - started)
            assert first
            time.sleep(kill_after)
            _kill(proc)
        return out.read_text().split("\n")

    with _reaped(procs):
        for i in range(kills + 1):
            lines = run_client(i, None if i == kills else rng.uniform(0.05, 0.5))
            for line in lines[:-1]:  # the last piece may be cut by the kill
                if line.startswith("decided "):
                    _, sid, decision = line.split()
                    assert int(sid) not in reported, f"suggestion {sid} decided twice"
                    reported[int(sid)] = decision
            assert i < kills or lines[-2:] == ["empty", ""]

    status_of = {"accept": "accepted", "reject": "rejected", "skip": "skipped"}
    with store.read() as s:
        suggs = {x.id: x for x in s.scalars(select(Suggestion).where(Suggestion.run_id == run.id))}
        events = list(s.scalars(select(LabelEvent)))
        labels = {(x.image_id, x.class_id): x for x in s.scalars(select(Label))}
    # Nothing a user saw recorded is lost, and everything is decided in the end.
    assert all(suggs[sid].status == status_of[d] for sid, d in reported.items())
    assert all(x.status in ("accepted", "rejected", "skipped") for x in suggs.values())
    assert len(suggs) - len(reported) <= kills  # at most the decision in flight at each kill went unreported
    # Each decision is whole: accepted/rejected ⇔ one label row with that value ⇔ one audit event.
    by_sugg = Counter(e.suggestion_id for e in events)
    assert all(e.suggestion_id is not None for e in events)
    for x in suggs.values():
        want = {"accepted": 1, "rejected": 0}.get(x.status)
        label = labels.get((x.image_id, x.class_id))
        if want is None:
            assert by_sugg[x.id] == 0 and label is None, f"skipped suggestion {x.id} left a label"
            continue
        assert by_sugg[x.id] == 1, f"suggestion {x.id} {x.status} with {by_sugg[x.id]} audit events"
        assert label is not None and label.value == want and label.version == 1, x.id
        assert label.source == LabelSource.REVIEW.value and label.author == x.reviewer == "ann"
    assert len(labels) == len(events) == sum(1 for x in suggs.values() if x.status != "skipped")
    print(f"\n[d] {kills} kills, {len(suggs)} decisions, 0 lost; restart to first decision "
          f"{np.median(recover):.2f} s median, {max(recover):.2f} s max")  # fmt: skip


# --- (e) disk full or unwritable LABELMEND_HOME ----------------------------------------------------


def test_unwritable_home_fails_the_job_with_one_line_and_a_retry_works(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=80)
    labels_before = _labels(store)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where LABELMEND_HOME's parent folder should be")
    monkeypatch.setenv("LABELMEND_HOME", str(blocker / "home"))
    payload = _payload(epochs=1)
    job_id = _enqueue(store, seeded, payload)
    assert Worker(store).run_once() == job_id
    job = _job(store, job_id)
    assert job.status == "failed"
    err = job.error or ""
    assert "\n" not in err and str(blocker / "home") in err and "LABELMEND_HOME" in err, err
    assert "not a folder" in err, err
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(ModelRun)) == 0
        assert s.scalar(select(func.count()).select_from(Suggestion)) == 0
    assert _labels(store) == labels_before

    blocker.unlink()  # the fix: the path can be created now
    t0 = time.monotonic()
    retry = _enqueue(store, seeded, payload)
    assert Worker(store).run_once() == retry
    assert _job(store, retry).status == "succeeded", _job(store, retry).error
    _assert_runs_consistent(store)
    print(f"\n[e] unwritable home: {err!r}; retry after the fix took {time.monotonic() - t0:.1f} s")


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: writes past ``limit`` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_fails_the_job_with_one_line_and_nothing_corrupt(store: Store, tmp_path: Path) -> None:
    # 320 images x 512 float16 = 320 KiB of embeddings; the worker may not write a file past 256 KiB.
    # (RLIMIT_FSIZE limits the worker's SQLite files too: its WAL is emptied first, and the
    # worker's few small commits stay well below the limit.)
    n, dim, limit = 320, 512, 256 * 1024
    seeded = seed_store(store, tmp_path / "data", n_images=n, image_size=32)
    payload = _payload(top_suggestions=200)
    job_id = _enqueue(store, seeded, payload)
    labels_before = _labels(store)
    url = make_url(store.url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        with contextlib.closing(sqlite3.connect(url.database)) as con:
            busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    log = tmp_path / "worker.log"
    proc = _start_worker(store, log, heartbeat_s=5, preexec=_file_size_limit(limit))
    with _reaped([proc]):
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    job = _job(store, job_id)
    assert job.status == "failed", (job.status, log.read_text()[-3000:])
    if url.get_backend_name() == "sqlite":
        print(f"\n[e] the worker's SQLite WAL grew to {Path(f'{url.database}-wal').stat().st_size} bytes")
    err = job.error or ""
    data_bin = next((store.home / "cache" / "embeddings").glob("*/data.bin"))
    assert "\n" not in err and "file too large" in err and str(data_bin) in err and "LABELMEND_HOME" in err, (
        err
    )
    # Nothing corrupt: no run, no suggestion, the labels as they were, the cache index (if an
    # earlier append got through) lists only rows that are all in data.bin.
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(ModelRun)) == 0
        assert s.scalar(select(func.count()).select_from(Suggestion)) == 0
    assert _labels(store) == labels_before
    cached, size = _cache_state(data_bin.parent)
    assert len(cached) < n and size >= len(cached) * dim * 2

    t0 = time.monotonic()  # the fix: room again (the limit is gone); the job is queued again
    retry = _enqueue(store, seeded, payload)
    assert Worker(store).run_once() == retry
    assert _job(store, retry).status == "succeeded", _job(store, retry).error
    assert data_bin.stat().st_size == n * dim * 2
    _assert_runs_consistent(store)
    print(f"\n[e] disk full: {err!r}; retry after the fix took {time.monotonic() - t0:.1f} s")


# --- (f) a bad prior file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "expect"),
    [
        ("nan", r":3: avg_pred 'nan' is not finite"),
        ("outside", r":2: avg_pred 1.5 is outside \[0, 1\]"),
        ("missing", r": 1 of the dataset's \d+ classes are missing"),
    ],
)
def test_bad_prior_file_fails_the_job_before_any_work(
    store: Store, tmp_path: Path, problem: str, expect: str
) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=40)
    rows = [[k, "0.1"] for k in seeded.class_keys]
    if problem == "nan":
        rows[1][1] = "nan"
    elif problem == "outside":
        rows[0][1] = "1.5"
    else:
        rows.pop()
    path = tmp_path / "priors dir" / "prior.csv"
    path.parent.mkdir()
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([["Classes", "avg_pred"], *rows])
    labels_before = _labels(store)
    job_id = _enqueue(store, seeded, _payload(prior=f"file:{path}"))
    t0 = time.monotonic()
    assert Worker(store).run_once() == job_id
    took = time.monotonic() - t0
    job = _job(store, job_id)
    assert job.status == "failed"
    err = job.error or ""
    assert "\n" not in err and err.startswith(str(path)) and re.search(expect, err), err
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(ModelRun)) == 0
        assert s.scalar(select(func.count()).select_from(Suggestion)) == 0
    assert _labels(store) == labels_before
    assert not (store.home / "cache").exists()  # failed before any image was embedded
    print(f"\n[f] {problem}: {err!r} after {took:.2f} s")


# --- the worker's own bookkeeping ------------------------------------------------------------------


def test_a_job_that_keeps_killing_its_worker_is_failed_not_requeued_forever(
    store: Store, tmp_path: Path
) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=8)
    job_id = _enqueue(store, seeded, _payload())
    w = Worker(store, stale_s=0.0, max_attempts=3)
    for attempt in (1, 2, 3):
        with store.write() as s:  # a worker takes the job, then dies without a word
            assert jobs.claim(s, f"doomed:{attempt}").id == job_id
        time.sleep(0.01)
        requeued = w.requeue_stale()
        assert requeued == ([job_id] if attempt < 3 else [])
    job = _job(store, job_id)
    assert job.status == "failed" and job.attempts == 3
    assert "died during each of 3 attempts" in (job.error or "")
    assert _events(job)[-1].startswith("failed")


def test_cancelled_job_marks_its_runs_failed(store: Store, tmp_path: Path) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=80)
    job_id = _enqueue(store, seeded, _payload(epochs=2000))
    w = Worker(store, heartbeat_s=0.2)
    thread = threading.Thread(target=w.run_once)
    thread.start()
    try:
        run = _wait_for("a running run", lambda: _any_run(store, job_id), None, None)
        with store.write() as s:
            jobs.cancel(s, job_id)
    finally:
        thread.join(timeout=120)
    assert not thread.is_alive()
    assert _job(store, job_id).status == "cancelled"
    with store.read() as s:
        statuses = {r.id: (r.status, r.error) for r in s.scalars(select(ModelRun))}
    assert statuses[run.id][0] == "failed" and "JobCancelled" in (statuses[run.id][1] or ""), statuses
    assert all(st == "failed" for st, _ in statuses.values() if st != "succeeded")
    _assert_runs_consistent(store)


def _any_run(store: Store, job_id: int) -> ModelRun | None:
    with store.read() as s:
        return s.scalars(
            select(ModelRun).where(ModelRun.job_id == job_id, ModelRun.status == "running")
        ).first()
