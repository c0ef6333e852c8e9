"""The retrain cycle end to end on a real store with generated images (head mode, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from app.pipeline.config import CycleConfig
from app.pipeline.cycle import run_cycle
from app.store import Store, open_store
from db.models import LabelEvent, ModelRun, RunClassStat, Suggestion
from tests.app.seed import seed_store


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    return open_store(db_url)


def _config(**kw: object) -> CycleConfig:
    base = dict(dataset="toy", backbone="resnet10t", pretrained="none", image_size=40, epochs=15,
                batch_size=64, workers=0, top_suggestions=200, device="cpu")  # fmt: skip
    base.update(kw)
    return CycleConfig(**base)  # type: ignore[arg-type]


def test_cycle_stores_runs_priors_metrics_and_suggestions(store: Store, tmp_path: Path) -> None:
    seeded = seed_store(store, tmp_path / "data")
    seen: list[float] = []
    result = run_cycle(store, _config(), progress=lambda f, _m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert 0 < result.partial_map <= 100
    assert result.n_suggestions == 200
    with store.read() as s:
        runs = list(s.scalars(select(ModelRun).order_by(ModelRun.id)))
        assert [(r.kind, r.status) for r in runs] == [("prior", "succeeded"), ("target", "succeeded")]
        target = runs[1]
        assert target.parent_id == runs[0].id
        assert target.metrics["partial_map"] == pytest.approx(result.partial_map, abs=1e-3)
        assert set(target.timings) >= {"features", "prior", "target", "evaluate", "suggest"}
        assert Path(target.artifacts["head"]).is_file()
        stats = list(s.scalars(select(RunClassStat).where(RunClassStat.run_id == target.id)))
        assert len(stats) == len(seeded.class_keys)
        assert all(0 <= st.prior_model <= 1 and 0 <= st.prior_naive <= 1 for st in stats)
        suggestions = list(s.scalars(select(Suggestion).order_by(Suggestion.rank)))
        assert all(sg.status == "pending" for sg in suggestions)
        scores = [sg.score for sg in suggestions]
        assert scores == sorted(scores, reverse=True)
        # Suggestions are unknown cells only; no label was changed by the cycle.
        n_events = s.scalar(select(func.count()).select_from(LabelEvent))
        assert n_events == int((seeded.annotations != -1).sum())
    # Validation partial mAP beats a random ranking (whose AP is each class's positive rate).
    val = np.array([sp == "val" for sp in seeded.splits])
    t_val = seeded.annotations[val]
    rates = [
        (t_val[:, j] == 1).sum() / (t_val[:, j] != -1).sum()
        for j in range(t_val.shape[1])
        if (t_val[:, j] == 1).any() and (t_val[:, j] == 0).any()
    ]
    assert result.partial_map > 100 * float(np.mean(rates)) + 5


def test_second_cycle_supersedes_pending_and_reuses_embeddings(store: Store, tmp_path: Path) -> None:
    seed_store(store, tmp_path / "data", n_images=120)
    first = run_cycle(store, _config(top_suggestions=50, epochs=5))
    second = run_cycle(store, _config(top_suggestions=50, epochs=5))
    assert second.timings["features"] < first.timings["features"] + 5
    with store.read() as s:
        by_run = dict(
            s.execute(
                select(Suggestion.run_id, func.count())
                .where(Suggestion.status == "pending")
                .group_by(Suggestion.run_id)
            ).all()
        )
        assert by_run == {second.target_run_id: 50}
        cycles = list(
            s.scalars(select(ModelRun.cycle).where(ModelRun.kind == "target").order_by(ModelRun.id))
        )
        assert cycles == [1, 2]
