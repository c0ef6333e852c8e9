"""The retrain cycle end to end on a real store with generated images (head mode, CPU)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from app.pipeline.config import CycleConfig, PriorSource
from app.pipeline.cycle import run_cycle
from app.pipeline.stages import Stage
from app.store import Store, open_store
from core.priors import write_prior_csv
from db.labels import get_cell
from db.models import LabelEvent, ModelRun, RunClassStat, RunKind, RunStatus, Suggestion, SuggestionStatus
from db.review import claim_next, decide
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
    stages: list[Stage] = []
    result = run_cycle(store, _config(), progress=lambda f, _m: seen.append(f), on_stage=stages.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert stages == list(Stage)
    assert 0 < result.partial_map <= 100
    assert result.n_suggestions == 200
    with store.read() as s:
        runs = list(s.scalars(select(ModelRun).order_by(ModelRun.id)))
        assert [(r.kind, r.status) for r in runs] == [
            (RunKind.PRIOR, RunStatus.SUCCEEDED),
            (RunKind.TARGET, RunStatus.SUCCEEDED),
        ]
        target = runs[1]
        assert target.parent_id == runs[0].id
        assert runs[0].metrics["prior_method"] in {"random", "shrunk"}  # what `auto` chose here
        assert target.metrics["partial_map"] == pytest.approx(result.partial_map, abs=1e-3)
        assert set(target.timings) == set(Stage.values())
        assert CycleConfig.from_dict(target.config) == _config()
        assert Path(target.artifacts["head"]).is_file()
        stats = list(s.scalars(select(RunClassStat).where(RunClassStat.run_id == target.id)))
        assert len(stats) == len(seeded.class_keys)
        assert all(0 <= st.prior_model <= 1 and 0 <= st.prior_naive <= 1 for st in stats)
        suggestions = list(s.scalars(select(Suggestion).order_by(Suggestion.rank)))
        assert all(sg.status == SuggestionStatus.PENDING for sg in suggestions)
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
                .where(Suggestion.status == SuggestionStatus.PENDING)
                .group_by(Suggestion.run_id)
            ).all()
        )
        assert by_run == {second.target_run_id: 50}
        cycles = list(
            s.scalars(select(ModelRun.cycle).where(ModelRun.kind == RunKind.TARGET).order_by(ModelRun.id))
        )
        assert cycles == [1, 2]


def test_cycle_finishing_while_annotators_review_keeps_their_decisions(store: Store, tmp_path: Path) -> None:
    """Decisions on the old run's suggestions made mid-cycle stay labels; the new run skips those cells."""
    seeded = seed_store(store, tmp_path / "data", n_images=120)
    run_cycle(store, _config(top_suggestions=60, epochs=5))
    decided: dict[tuple[int, int], str] = {}

    def review_ten() -> None:  # another annotator, in their own thread and sessions
        for i in range(10):
            with store.write() as s:
                sugg = claim_next(s, seeded.dataset_id, "ann")
                assert sugg is not None
                decision = "accept" if i % 2 == 0 else "reject"
                decide(s, sugg.id, decision, "ann")
                decided[(sugg.image_id, sugg.class_id)] = decision

    def on_stage(stage: Stage) -> None:
        if stage is Stage.SUGGEST and not decided:  # data loaded, models trained: mid-cycle
            worker = threading.Thread(target=review_ten)
            worker.start()
            worker.join()

    second = run_cycle(store, _config(top_suggestions=60, epochs=5), on_stage=on_stage)
    assert len(decided) == 10
    with store.read() as s:
        for (image_id, class_id), decision in decided.items():
            cell = get_cell(s, image_id, class_id)
            assert cell.value == (1 if decision == "accept" else 0) and cell.author == "ann"
            statuses = list(
                s.scalars(
                    select(Suggestion.status).where(
                        Suggestion.image_id == image_id, Suggestion.class_id == class_id
                    )
                )
            )
            assert statuses == [f"{decision}ed"]  # decided once, never re-suggested
        assert s.scalar(select(func.count()).select_from(LabelEvent).where(LabelEvent.author == "ann")) == 10
        pending = s.scalar(
            select(func.count()).select_from(Suggestion).where(Suggestion.status == SuggestionStatus.PENDING)
        )
        assert pending == second.n_suggestions
    # The same data and seed rank (nearly) the same top cells, so the decided ones were left out.
    assert second.n_suggestions < 60


def test_cycle_with_a_prior_file_and_cross_fitted_scores(store: Store, tmp_path: Path) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=120)
    prior = np.linspace(0.05, 0.5, len(seeded.class_keys))
    write_prior_csv(tmp_path / "prior.csv", seeded.class_keys[::-1], prior[::-1])
    config = _config(
        prior=PriorSource.FILE, prior_file=tmp_path / "prior.csv", folds=2, epochs=5, top_suggestions=30
    )
    result = run_cycle(store, config)
    with store.read() as s:
        target = s.get(ModelRun, result.target_run_id)
        assert target is not None and target.config["prior"] == "file"
        assert target.config["prior_file"] == str(tmp_path / "prior.csv")
        assert CycleConfig.from_dict(target.config) == config
        used = dict(s.execute(select(RunClassStat.class_id, RunClassStat.prior_used).where(
            RunClassStat.run_id == target.id)).all())  # fmt: skip
        assert [used[c] for c in sorted(used)] == pytest.approx(prior.tolist())  # ids follow class order
    assert result.n_suggestions == 30
    assert Path(target.artifacts["head"]).parent.joinpath("fold1-head.pt").is_file()
