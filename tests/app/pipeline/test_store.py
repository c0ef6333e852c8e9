"""The store step: runs started, finished in one transaction, failed (by the cycle or the next attempt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app.pipeline.evaluate import Validation
from app.pipeline.fit import Fit
from app.pipeline.load import DatasetArrays
from app.pipeline.priors import Priors
from app.pipeline.store import (
    INTERRUPTED,
    fail_runs,
    mark_stale_runs_failed,
    start_run,
    store_prior_run,
    store_target_run,
)
from app.pipeline.suggest import Suggestions
from app.store import Store, open_store
from core.sparse_labels import SparseLabels
from db import runs
from db.models import RunKind, RunStatus, Suggestion, SuggestionStatus
from tests.db.factory import Small, make_small


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    return open_store(db_url)


@pytest.fixture
def small(store: Store) -> Small:
    with store.write() as s:
        return make_small(s, n_images=6, n_classes=4)


def _arrays(small: Small) -> DatasetArrays:
    n, c = len(small.image_ids), len(small.class_ids)
    return DatasetArrays(small.dataset_id, "small", Path("/nonexistent"), np.asarray(small.image_ids),
                         [f"img{i:03d}" for i in range(n)], [f"img{i:03d}.jpg" for i in range(n)],
                         np.asarray(["train"] * n, dtype=object), np.asarray(small.class_ids),
                         [f"/m/c{j}" for j in range(c)], [f"class {j}" for j in range(c)],
                         SparseLabels.from_dense(np.full((n, c), -1, dtype=np.int8)))  # fmt: skip


def _priors() -> Priors:
    fit = Fit(lambda idx: np.zeros((len(idx), 4), dtype=np.float32), {"head": "/runs/prior-head.pt"}, 1.5)
    return Priors(
        np.full(4, 0.1), np.full(4, 0.2), np.full(4, 0.2), Validation(55.0, np.full(4, 0.5)), fit, "shrunk"
    )


def test_stale_runs_of_the_job_are_failed_and_no_others(store: Store, small: Small) -> None:
    data = _arrays(small)
    stale = start_run(store, data, RunKind.PRIOR, {}, job_id=7)
    other_job = start_run(store, data, RunKind.PRIOR, {}, job_id=8)
    done = start_run(store, data, RunKind.PRIOR, {}, job_id=7)
    store_prior_run(store, done, data, _priors())
    mark_stale_runs_failed(store, None)  # a cycle outside a job: nothing to do
    mark_stale_runs_failed(store, 7)
    with store.read() as s:
        assert runs.get_run(s, stale).status == RunStatus.FAILED
        assert runs.get_run(s, stale).error == INTERRUPTED
        assert runs.get_run(s, other_job).status == RunStatus.RUNNING
        assert runs.get_run(s, done).status == RunStatus.SUCCEEDED


def test_fail_runs_records_the_errors_first_line(store: Store, small: Small) -> None:
    run_id = start_run(store, _arrays(small), RunKind.TARGET, {"loss": "csl"}, job_id=None)
    fail_runs(store, [run_id], RuntimeError("disk on fire\nsecond line"))
    with store.read() as s:
        run = runs.get_run(s, run_id)
        assert (run.status, run.error) == (RunStatus.FAILED, "RuntimeError: disk on fire")


def test_prior_run_stores_its_priors_and_metrics(store: Store, small: Small) -> None:
    data = _arrays(small)
    run_id = start_run(store, data, RunKind.PRIOR, {"loss": "ignore"}, job_id=None)
    store_prior_run(store, run_id, data, _priors())
    with store.read() as s:
        run = runs.get_run(s, run_id)
        assert (run.kind, run.status, run.metrics, run.timings) == (
            RunKind.PRIOR, RunStatus.SUCCEEDED, {"partial_map": 55.0, "prior_method": "shrunk"}, {"train": 1.5}
        )  # fmt: skip
        stats = runs.class_stats(s, run_id)
        assert sorted((st.prior_naive, st.prior_model, st.ap) for st in stats) == [(0.1, 0.2, None)] * 4


def test_target_run_is_written_in_one_transaction(store: Store, small: Small) -> None:
    data = _arrays(small)
    run_id = start_run(store, data, RunKind.TARGET, {"loss": "csl"}, job_id=None)
    top = Suggestions(rows=np.array([3, 0]), cls_idx=np.array([1, 2]), score=np.array([0.9, 0.4]),
                      probs=np.array([0.8, 0.3]), priors=np.array([0.2, 0.2]))  # fmt: skip
    seen_mid_write: list[tuple[int, RunStatus]] = []

    def end_timing() -> dict[str, float]:  # called inside the write, after the suggestions
        with store.read() as s:  # another connection sees nothing of it yet
            seen_mid_write.append((len(runs.suggestion_scores(s, run_id)), runs.get_run(s, run_id).status))
        return {"store": 0.25}

    fit = Fit(lambda idx: np.zeros((len(idx), 4)), {"head": "/runs/target-head.pt"}, 2.0)
    n, timings = store_target_run(store, run_id, data, fit=fit, priors=_priors(),
                                  validation=Validation(61.0, np.array([0.5, np.nan, 0.7, 0.9])),
                                  suggestions=top, counts={"n_train": 6, "n_val": 0, "skipped_images": 0},
                                  end_timing=end_timing)  # fmt: skip
    assert (n, timings) == (2, {"store": 0.25})
    assert seen_mid_write == [(0, RunStatus.RUNNING)]
    with store.read() as s:
        run = runs.get_run(s, run_id)
        assert run.status == RunStatus.SUCCEEDED and run.timings == {"store": 0.25}
        assert run.metrics == {"partial_map": 61.0, "prior_partial_map": 55.0, "n_suggestions": 2,
                               "n_train": 6, "n_val": 0, "skipped_images": 0}  # fmt: skip
        assert sorted(runs.suggestion_scores(s, run_id)) == [
            ("img000", "/m/c2", 0.4),
            ("img003", "/m/c1", 0.9),
        ]
        assert {st.class_id: st.ap for st in runs.class_stats(s, run_id)}[small.class_ids[1]] is None
        latest = runs.latest_run(s, small.dataset_id)
        assert latest is not None and latest.id == run_id
        statuses = set(s.scalars(select(Suggestion.status).where(Suggestion.run_id == run_id)))
    assert statuses == {SuggestionStatus.PENDING}
