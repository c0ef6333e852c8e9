"""The audit sample of a cycle: drawn from unknown cells, interleaved one per block, stored flagged.

Unit tests drive :func:`app.pipeline.audit.audit_queue` on arrays; the cycle tests run real small
cycles (head mode, CPU) on a generated dataset, as tests/app/pipeline/test_cycle.py does.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app
from app.pipeline.audit import audit_queue, queue_keys, stratified_positions
from app.pipeline.config import CycleConfig
from app.pipeline.cycle import run_cycle
from app.store import Store, open_store
from core.ranking import top_unknown
from db.models import Image, LabelClass, ModelRun, RunClassStat, Suggestion
from db.review import claim_next
from tests.app.seed import seed_store


def _targets(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.where(rng.random((n, c)) < 0.7, -1, rng.integers(0, 2, (n, c))).astype(np.int8)
    return t, rng.random((n, c)).astype(np.float32)


def test_share_zero_is_the_ranking_unchanged() -> None:
    t, p = _targets(50, 6, seed=0)
    top = top_unknown(p, t, None, 40)
    q = audit_queue(top, t, share=0.0, seed=(0, 1))
    np.testing.assert_array_equal(q.img_idx, top.img_idx)
    np.testing.assert_array_equal(q.cls_idx, top.cls_idx)
    np.testing.assert_array_equal(q.score, top.score.astype(np.float64))
    assert not q.audit.any()


@pytest.mark.parametrize(("n", "c", "k", "share"), [(50, 6, 40, 0.1), (50, 6, 200, 0.5), (8, 3, 100, 0.25)])
def test_audit_cells_are_unknown_one_per_block_and_the_rest_is_the_ranking(
    n: int, c: int, k: int, share: float
) -> None:
    t, p = _targets(n, c, seed=1)
    top = top_unknown(p, t, None, k)
    size = len(top.img_idx)
    q = audit_queue(top, t, share=share, seed=(3, 7))
    n_audit = round(share * size)
    assert len(q.img_idx) == size and int(q.audit.sum()) == n_audit
    cells = list(zip(q.img_idx.tolist(), q.cls_idx.tolist(), strict=True))
    assert len(set(cells)) == size
    assert (t[q.img_idx, q.cls_idx] == -1).all()
    positions = np.flatnonzero(q.audit)
    bounds = np.arange(n_audit + 1) * size // n_audit
    assert (np.searchsorted(positions, bounds[1:]) - np.searchsorted(positions, bounds[:-1]) == 1).all()
    drawn = {cell for cell, a in zip(cells, q.audit, strict=True) if a}
    ranked = [
        cell for cell in zip(top.img_idx.tolist(), top.cls_idx.tolist(), strict=True) if cell not in drawn
    ]
    assert [cell for cell, a in zip(cells, q.audit, strict=True) if not a] == ranked[: size - n_audit]
    score_of = dict(zip(zip(top.img_idx.tolist(), top.cls_idx.tolist(), strict=True), top.score, strict=True))
    np.testing.assert_array_equal(q.score[~q.audit], [score_of[cell] for cell in ranked[: size - n_audit]])
    assert (np.diff(q.score) <= 0).all()


def test_audit_sample_is_uniform_over_all_unknown_cells_not_the_top() -> None:
    """Over many seeds every unknown cell is drawn about equally often, high scores or low."""
    t, p = _targets(30, 4, seed=2)
    top = top_unknown(p, t, None, 20)
    counts = np.zeros(t.shape)
    for seed in range(600):
        q = audit_queue(top, t, share=0.25, seed=(seed,))
        np.add.at(counts, (q.img_idx[q.audit], q.cls_idx[q.audit]), 1)
    unknown = t == -1
    expected = 600 * 5 / unknown.sum()
    in_top = np.zeros(t.shape, dtype=bool)
    in_top[top.img_idx, top.cls_idx] = True
    assert counts[~unknown].sum() == 0
    assert counts[in_top].mean() == pytest.approx(expected, rel=0.2)
    assert counts[unknown & ~in_top].mean() == pytest.approx(expected, rel=0.1)


def test_queue_keys_lie_between_neighbours() -> None:
    nan = np.nan
    keys = queue_keys(np.array([nan, 0.9, nan, nan, 0.6, 0.6, nan, 0.5, nan]))
    np.testing.assert_allclose(keys, [0.9, 0.9, 0.8, 0.7, 0.6, 0.6, 0.55, 0.5, 0.5])
    np.testing.assert_array_equal(queue_keys(np.array([nan, nan])), [0.0, 0.0])
    tight = queue_keys(np.array([0.5, nan, np.nextafter(0.5, 0)]))
    assert tight[0] >= tight[1] >= tight[2]


def test_stratified_positions_one_per_block() -> None:
    rng = np.random.default_rng(0)
    for size, k in [(100, 10), (7, 3), (5, 5), (1, 1), (1000, 37)]:
        pos = stratified_positions(size, k, rng)
        bounds = np.arange(k + 1) * size // k
        assert ((pos >= bounds[:-1]) & (pos < bounds[1:])).all()


# ---- real cycles -----------------------------------------------------------------------------


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    return open_store(db_url)


def _config(**kw: object) -> CycleConfig:
    base = dict(dataset="toy", backbone="resnet10t", pretrained="none", image_size=40, epochs=5,
                batch_size=64, workers=0, device="cpu")  # fmt: skip
    base.update(kw)
    return CycleConfig(**base)  # type: ignore[arg-type]


def _queue(store: Store, run_id: int) -> list[tuple[int, int, float, float, float | None, int, bool]]:
    """(image id, class id, score, prob, prior, rank, audit) of a run's suggestions, by rank."""
    with store.read() as s:
        rows = s.execute(
            select(Suggestion.image_id, Suggestion.class_id, Suggestion.score, Suggestion.prob,
                   Suggestion.prior, Suggestion.rank, Suggestion.audit)
            .where(Suggestion.run_id == run_id)
            .order_by(Suggestion.rank)
        ).all()  # fmt: skip
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_cycle_stores_an_interleaved_audit_sample(store: Store, tmp_path: Path) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=120)
    train = np.array([sp == "train" for sp in seeded.splits])
    unknown_train = seeded.annotations[train] == -1
    n_unknown = int(unknown_train.sum())

    # Share 0 and every unknown cell asked for: today's full ranking, no audit cell.
    full = run_cycle(store, _config(audit_share=0.0, top_suggestions=n_unknown))
    ranking = _queue(store, full.target_run_id)
    assert len(ranking) == n_unknown and not any(r[6] for r in ranking)
    assert [r[5] for r in ranking] == list(range(1, n_unknown + 1))
    scores = [r[2] for r in ranking]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, [r[3] for r in ranking])  # probability ranker: score = prob
    by_cell = {(r[0], r[1]): r for r in ranking}

    # Share 0.1 of a 100-cell queue: 10 audit cells, one in each block of 10 places.
    result = run_cycle(store, _config(audit_share=0.1, top_suggestions=100))
    queue = _queue(store, result.target_run_id)
    assert result.n_suggestions == len(queue) == 100
    audit = np.array([r[6] for r in queue])
    assert int(audit.sum()) == 10
    assert [int(audit[j * 10 : (j + 1) * 10].sum()) for j in range(10)] == [1] * 10
    assert [r[5] for r in queue] == list(range(1, 101))
    keys = [r[2] for r in queue]
    assert keys == sorted(keys, reverse=True)

    # The ranked part is today's ranking (the same models: same seed, cached embeddings), less
    # the drawn cells, cut to 90; audit cells were unknown training cells, with their real prob.
    drawn = {(r[0], r[1]) for r in queue if r[6]}
    assert drawn <= set(by_cell)  # every unknown training cell is in the full ranking
    ranked = [(r[0], r[1]) for r in queue if not r[6]]
    assert ranked == [cell for cell in ((r[0], r[1]) for r in ranking) if cell not in drawn][:90]
    for r in queue:
        assert r[3] == pytest.approx(by_cell[(r[0], r[1])][3], rel=1e-6)
        if not r[6]:
            assert r[2] == pytest.approx(by_cell[(r[0], r[1])][2], rel=1e-6)
    with store.read() as s:
        prior_used = dict(
            s.execute(select(RunClassStat.class_id, RunClassStat.prior_used)
                      .where(RunClassStat.run_id == result.target_run_id)).all()
        )  # fmt: skip
        metrics = s.get(ModelRun, result.target_run_id).metrics
        class_ids = list(s.scalars(select(LabelClass.id).order_by(LabelClass.position)))
    assert all(r[4] == pytest.approx(prior_used[r[1]]) for r in queue)
    per_class = unknown_train.sum(axis=0)
    assert metrics["audit"] == {
        "drawn": 10,
        "unknown_cells": {str(cid): int(n) for cid, n in zip(class_ids, per_class, strict=True) if n},
    }

    # The review queue serves them in stored order, and nothing tells a reviewer which is which.
    with store.write() as s:
        served = []
        for _ in range(100):
            sugg = claim_next(s, seeded.dataset_id, "ann", exclude=tuple(served))
            assert sugg is not None
            served.append(sugg.id)
        ranks = list(s.scalars(select(Suggestion.rank).where(Suggestion.id.in_(served))))
        id_rank = dict(
            s.execute(select(Suggestion.id, Suggestion.rank).where(Suggestion.id.in_(served))).all()
        )
    assert sorted(ranks) == list(range(1, 101))
    assert [id_rank[i] for i in served] == list(range(1, 101))
    out = tmp_path / "suggestions.csv"
    res = CliRunner().invoke(app, ["suggestions", "--dataset", "toy", "--out", str(out), "--db", store.url])
    assert res.exit_code == 0, res.output
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["ImageID", "LabelName", "Score", "Prior", "Rank"]  # no audit column
    with store.read() as s:
        ext = dict(s.execute(select(Image.id, Image.external_id)).all())
        key = dict(s.execute(select(LabelClass.id, LabelClass.key)).all())
    assert [(r[0], r[1]) for r in rows[1:]] == [(ext[q[0]], key[q[1]]) for q in queue]


def test_cycle_with_share_zero_stores_no_audit_cell(store: Store, tmp_path: Path) -> None:
    seed_store(store, tmp_path / "data", n_images=80)
    result = run_cycle(store, _config(audit_share=0.0, top_suggestions=60))
    queue = _queue(store, result.target_run_id)
    assert len(queue) == 60 and not any(r[6] for r in queue)
    with store.read() as s:
        assert "audit" not in s.get(ModelRun, result.target_run_id).metrics
