"""Sparse labels (core.sparse_labels) agree exactly with the dense int8 path everywhere core takes targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from core.audit_sample import audit_sample
from core.losses import loss_from_name
from core.metrics import cell_scores, partial_map, partial_map_cells
from core.priors import model_prior, model_prior_with_method, naive_prior, select_prior_method
from core.ranking import top_unknown
from core.ranking_stream import StreamingTopK, ranker_params
from core.sparse_labels import SparseLabels, dense_rows, label_counts
from core.train import HeadConfig, train_head


class Blocks:
    """Row blocks over an array that count how often they are read (a lazily computed matrix)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.reads = a, a.shape, 0

    def __getitem__(self, rows: slice) -> np.ndarray:
        self.reads += 1
        return self.a[rows]


label_matrices = st.tuples(st.integers(0, 40), st.integers(1, 7)).flatmap(
    lambda s: arrays(np.int8, s, elements=st.sampled_from([-1, 0, 1]))
)


@given(label_matrices, st.data())
@settings(max_examples=150, deadline=None)
def test_round_trip_rows_take_and_counts(t: np.ndarray, data: st.DataObject) -> None:
    sp = SparseLabels.from_dense(t)
    assert sp.shape == t.shape and sp.nnz == int((t != -1).sum())
    np.testing.assert_array_equal(sp.dense(), t)
    start = data.draw(st.integers(0, len(t)))
    stop = data.draw(st.integers(start, len(t)))
    np.testing.assert_array_equal(dense_rows(sp, start, stop), t[start:stop])
    rows = np.asarray(
        data.draw(st.lists(st.integers(0, max(len(t) - 1, 0)), max_size=20)) if len(t) else [], dtype=np.int64
    )
    np.testing.assert_array_equal(sp.take(rows).dense(), t[rows])
    for got, value in zip(label_counts(sp), (1, 0, -1), strict=True):
        np.testing.assert_array_equal(got, (t == value).sum(axis=0))
    for got, want in zip(label_counts(sp), label_counts(t), strict=True):
        np.testing.assert_array_equal(got, want)


def test_from_cells_rejects_bad_cells_in_one_line() -> None:
    with pytest.raises(ValueError, match="given twice"):
        SparseLabels.from_cells([0, 0], [1, 1], [1, 0], (2, 3))
    with pytest.raises(ValueError, match="outside"):
        SparseLabels.from_cells([2], [0], [1], (2, 3))
    with pytest.raises(ValueError, match=r"1 \(positive\) or 0"):
        SparseLabels.from_cells([0], [0], [-1], (2, 3))


@given(label_matrices, st.integers(0, 3), st.integers(1, 50))
@settings(max_examples=200, deadline=None)
def test_partial_map_sparse_equals_dense_with_ties(t: np.ndarray, decimals: int, block: int) -> None:
    rng = np.random.default_rng(t.size)
    s = np.round(rng.random(t.shape), decimals)  # few decimals: many ties
    sp = SparseLabels.from_dense(t)
    want = partial_map(s, t)
    got = partial_map_cells(cell_scores(Blocks(s), sp, block_rows=block), sp)
    assert got.n_classes == want.n_classes
    np.testing.assert_allclose(got.per_class_ap, want.per_class_ap, rtol=1e-12, equal_nan=True)
    assert got.map == pytest.approx(want.map, rel=1e-12, nan_ok=True)
    assert partial_map(s, sp).n_classes == want.n_classes


@pytest.mark.parametrize("hiding", ["random", "positives-only"])
def test_priors_from_sparse_labels_and_row_blocks_equal_the_dense_ones(hiding: str) -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((20_000, 7)) < 0.3).astype(np.int8)
    p = np.clip(0.25 + 0.5 * y + 0.1 * rng.standard_normal(y.shape), 0, 1).astype(np.float32)
    t = np.where(rng.random(y.shape) < 0.5, -1, y) if hiding == "random" else np.where(y == 1, y, -1)
    t = t.astype(np.int8)
    t[:30] = y[:30]
    sp = SparseLabels.from_dense(t)
    np.testing.assert_array_equal(naive_prior(sp), naive_prior(t))
    assert select_prior_method(Blocks(p), sp) is select_prior_method(p, t)
    for method in ("auto", "random", "shrunk", "adjusted", "filled", "mean"):
        np.testing.assert_allclose(model_prior(Blocks(p), sp, method=method), model_prior(p, t, method=method),
                                   rtol=0, atol=1e-15)  # fmt: skip
    blocks = Blocks(p)
    prior, method = model_prior_with_method(blocks, sp)
    assert blocks.reads == 3  # auto's test and its estimate share one pass (3 blocks of 8,192 rows)
    assert method.value == ("random" if hiding == "random" else "shrunk")
    np.testing.assert_array_equal(prior, model_prior(p, t))
    with pytest.raises(ValueError, match="shifted"):
        model_prior(Blocks(p), sp, method="shifted")


@pytest.mark.parametrize("ranker", ["probability", "lift", "prior_shift"])
def test_streamed_top_k_over_sparse_labels_equals_the_full_sort(ranker: str) -> None:
    rng = np.random.default_rng(2)
    t = rng.choice(np.array([-1, -1, -1, 0, 1], dtype=np.int8), size=(500, 9))
    p = np.round(rng.random(t.shape), 2).astype(np.float32)
    prior = naive_prior(t) + 0.05
    sp = SparseLabels.from_dense(t)
    want = top_unknown(p, t, prior, 300, ranker=ranker)
    acc = StreamingTopK(300, ranker_params(sp, prior, ranker=ranker))
    for start in range(0, 500, 77):
        acc.push(start, p[start : start + 77], dense_rows(sp, start, start + 77))
    got = acc.result()
    np.testing.assert_array_equal(got.img_idx, want.img_idx)
    np.testing.assert_array_equal(got.cls_idx, want.cls_idx)
    np.testing.assert_array_equal(got.score, want.score)


@pytest.mark.parametrize("k", [0, 5, 400, 10_000])
def test_audit_sample_draws_the_same_cells_from_sparse_labels(k: int) -> None:
    rng = np.random.default_rng(3)
    t = rng.choice(np.array([-1, -1, 0, 1], dtype=np.int8), size=(300, 11))
    for seed in (0, (4, 7)):
        want = audit_sample(t, k, seed=seed)
        got = audit_sample(SparseLabels.from_dense(t), k, seed=seed)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_a_head_trained_on_sparse_labels_is_the_dense_head(solver: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((600, 16)).astype(np.float32)
    t = np.where(rng.random((600, 5)) < 0.6, -1, (x[:, :5] > 0.3)).astype(np.int8)
    cfg = HeadConfig(num_classes=5, in_features=16, epochs=3, batch_size=128, solver=solver, seed=0)
    prior = naive_prior(t)
    heads = [
        train_head(x, targets, loss_from_name("csl", 5, prior=prior), cfg).head
        for targets in (t, SparseLabels.from_dense(t))
    ]
    for a, b in zip(heads[0].state_dict().values(), heads[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_float16_embeddings_train_without_a_float32_copy() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((700, 8)).astype(np.float16)
    t = np.where(rng.random((700, 3)) < 0.5, -1, (x[:, :3] > 0)).astype(np.int8)
    cfg = HeadConfig(num_classes=3, in_features=8, epochs=2, batch_size=100, solver="adam", seed=0)
    result = train_head(x, SparseLabels.from_dense(t), loss_from_name("ignore", 3), cfg)
    want_mean = x.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(result.head[0].mean.numpy(), want_mean, rtol=1e-5, atol=1e-6)
    assert np.isfinite(result.epoch_losses).all()


@pytest.mark.parametrize("hidden", [0, 8])
def test_ignore_mode_on_sparse_labels_trains_on_annotated_logits_alone_and_matches_dense(hidden: int) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((900, 16)).astype(np.float32)
    t = np.where(
        rng.random((900, 40)) < 0.9,
        -1,
        (x[:, : 40 % 16].sum(axis=1, keepdims=True) > rng.standard_normal(40)),
    ).astype(np.int8)
    t[:128] = -1  # whole batches without an annotated cell still take an optimiser step
    cfg = HeadConfig(
        num_classes=40, in_features=16, epochs=3, batch_size=128, solver="adam", hidden=hidden, seed=0
    )
    loss = loss_from_name("ignore", 40)
    assert loss.annotated_only
    dense = train_head(x, t, loss, cfg)
    sparse = train_head(x, SparseLabels.from_dense(t), loss_from_name("ignore", 40), cfg)
    assert dense.steps == sparse.steps
    np.testing.assert_allclose(sparse.epoch_losses, dense.epoch_losses, rtol=1e-4)
    for a, b in zip(dense.head.state_dict().values(), sparse.head.state_dict().values(), strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_training_rows_picked_from_a_shared_store_give_the_copied_rows_head(solver: str) -> None:
    rng = np.random.default_rng(7)
    store = rng.standard_normal((1_000, 12)).astype(np.float16)
    rows = rng.choice(1_000, size=400, replace=False)
    t = np.where(rng.random((400, 4)) < 0.5, -1, store[rows, :4] > 0).astype(np.int8)
    cfg = HeadConfig(num_classes=4, in_features=12, epochs=2, batch_size=64, solver=solver, seed=0)
    copied = train_head(store[rows], t, loss_from_name("csl", 4, prior=naive_prior(t)), cfg).head
    shared = train_head(store, SparseLabels.from_dense(t), loss_from_name("csl", 4, prior=naive_prior(t)), cfg,
                        rows=rows).head  # fmt: skip
    for a, b in zip(copied.state_dict().values(), shared.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="rows must be"):
        train_head(store, t, loss_from_name("ignore", 4), cfg, rows=rows[:10])
