"""What keeps a 2M × 9,605 head cycle in minutes: sampled unknown rows, bfloat16 products, cells-only scoring.

Each shortcut is checked against the exact path it replaces: the sampled-unknowns batch loss is
unbiased (its mean over every row sample is the dense loss), the cells-only probabilities are the
dense ones at those cells, the row-sample prior with the whole set as population is the plain one.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch

from core.device import fast_bfloat16
from core.losses import loss_from_name
from core.losses.selective import ClassAwareSelectiveLoss
from core.metrics import partial_map
from core.priors import model_prior_with_method, naive_prior
from core.sparse_labels import SparseLabels
from core.train import HeadConfig, create_head, predict_head, predict_head_cells, train_head
from core.train.config import BFLOAT16_MIN_CELLS, HeadPrecision
from core.train.head import _SampledUnknowns, _Targets


def _labels(rng: np.random.Generator, n: int, c: int, known: float = 0.3) -> np.ndarray:
    y = (rng.random((n, c)) < 0.2).astype(np.int8)
    return np.where(rng.random((n, c)) < known, y, -1).astype(np.int8)


def test_the_sampled_unknowns_loss_averages_to_the_dense_loss_over_every_row_sample() -> None:
    rng = np.random.default_rng(0)
    b, c, d = 6, 5, 4
    t = _labels(rng, b, c, known=0.5)
    x = torch.from_numpy(rng.standard_normal((b, d)).astype(np.float32))
    cfg = HeadConfig(num_classes=c, in_features=d, standardize=False)
    head = create_head(cfg)
    torch.nn.init.normal_(head[-1].weight)
    prior = np.array([0.01, 0.5, 0.02, 0.3, 0.04])  # the prior rule drops classes 1 and 3's unknowns
    loss = ClassAwareSelectiveLoss("selective", gamma_unann=2.0, prior=prior, likelihood_topk=0)
    with torch.no_grad():
        dense = float(loss(head(x), torch.from_numpy(t).float()))
    sampled = _SampledUnknowns(loss, share=2 / b)  # m = 2 rows of 6 get dense logits
    y = _Targets(SparseLabels.from_dense(t))
    values = []
    for first in itertools.combinations(range(b), 2):  # every sample of 2 rows, equally likely
        order = torch.tensor(list(first) + [i for i in range(b) if i not in first])
        with torch.no_grad():
            values.append(float(sampled.loss(head, x[order], y, order, torch.device("cpu"))))
    assert np.mean(values) == pytest.approx(dense, rel=1e-5)
    assert np.std(values) > 0  # a sample, not the dense loss again


def test_a_head_trained_on_sampled_unknown_rows_learns_what_the_dense_head_learns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(1)
    n, c, d = 4_000, 12, 16
    x = rng.standard_normal((n, d)).astype(np.float32)
    truth = (x[:, :c] + 0.5 * rng.standard_normal((n, c)) > 1.0).astype(np.int8)
    t = np.where(rng.random((n, c)) < 0.2, truth, -1).astype(np.int8)
    t[truth == 1] = np.where(rng.random(int(truth.sum())) < 0.5, 1, -1)  # many positives missing
    prior = naive_prior(t)
    sp = SparseLabels.from_dense(t)
    maps = {}
    for cells in (0.0, 0.25 * n * c):
        cfg = HeadConfig(num_classes=c, in_features=d, epochs=6, batch_size=256, solver="adam",
                         max_dense_cells=cells, precision="float32", seed=0)  # fmt: skip
        with caplog.at_level(logging.INFO, logger="core.train.head"):
            caplog.clear()
            head = train_head(x, sp, loss_from_name("csl", c, prior=prior), cfg).head
        assert ("unknown cells scored on 0.25" in caplog.text) == (cells > 0)
        maps[cells] = partial_map(predict_head(head, x), truth).map  # every cell known: plain mAP
    assert maps[0.0] > 60  # percent
    assert maps[0.25 * n * c] == pytest.approx(maps[0.0], abs=1.5)


def test_dense_training_is_unchanged_below_max_dense_cells() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    t = _labels(rng, 500, 4)
    heads = []
    for cells in (0.0, 500 * 4):  # 0: always dense; N × C = the limit: dense too
        cfg = HeadConfig(num_classes=4, in_features=8, epochs=2, batch_size=64, solver="adam",
                         max_dense_cells=cells, seed=0)  # fmt: skip
        heads.append(
            train_head(
                x, SparseLabels.from_dense(t), loss_from_name("csl", 4, prior=naive_prior(t)), cfg
            ).head
        )
    for a, b in zip(heads[0].state_dict().values(), heads[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_bfloat16_products_train_a_head_as_good_as_float32() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2_000, 16)).astype(np.float32)
    truth = (x[:, :6] > 0.8).astype(np.int8)
    t = np.where(rng.random(truth.shape) < 0.5, truth, -1).astype(np.int8)
    maps = {}
    for precision in ("float32", "bfloat16"):
        cfg = HeadConfig(num_classes=6, in_features=16, epochs=4, batch_size=128, solver="adam",
                         precision=precision, seed=0)  # fmt: skip
        result = train_head(x, t, loss_from_name("csl", 6, prior=naive_prior(t)), cfg)
        assert next(result.head.parameters()).dtype == torch.float32  # weights stay float32
        maps[precision] = partial_map(predict_head(result.head, x), truth).map
    assert maps["float32"] > 80  # percent
    assert maps["bfloat16"] == pytest.approx(maps["float32"], abs=1.0)


def test_precision_and_max_dense_cells_are_validated_and_auto_waits_for_large_problems() -> None:
    cfg = HeadConfig(num_classes=10_000, in_features=8)
    assert cfg.precision == HeadPrecision.AUTO.value
    rows = int(BFLOAT16_MIN_CELLS // 10_000)
    assert cfg.bfloat16_products(rows, fast=True)
    assert not cfg.bfloat16_products(rows - 1, fast=True)
    assert not cfg.bfloat16_products(rows, fast=False)
    assert HeadConfig(num_classes=2, in_features=8, precision="bfloat16").bfloat16_products(1, fast=False)
    assert not HeadConfig(num_classes=2, in_features=8, precision="float32").bfloat16_products(
        10**9, fast=True
    )
    with pytest.raises(ValueError, match="head precision"):
        HeadConfig(num_classes=2, in_features=8, precision="float16")
    with pytest.raises(ValueError, match="max_dense_cells"):
        HeadConfig(num_classes=2, in_features=8, max_dense_cells=-1)
    assert isinstance(fast_bfloat16("cpu"), bool)
    assert fast_bfloat16("mps") is False


@pytest.mark.parametrize("hidden", [0, 8])
def test_cells_only_probabilities_are_the_dense_ones_at_those_cells(hidden: int) -> None:
    rng = np.random.default_rng(4)
    store = rng.standard_normal((300, 12)).astype(np.float16)
    rows = rng.choice(300, size=120, replace=False)
    t = _labels(rng, 120, 7)
    t[5] = -1  # a row without cells
    cfg = HeadConfig(num_classes=7, in_features=12, epochs=2, batch_size=32, hidden=hidden, seed=0)
    head = train_head(store, SparseLabels.from_dense(t), loss_from_name("csl", 7, prior=naive_prior(t)), cfg,
                      rows=rows).head  # fmt: skip
    sp = SparseLabels.from_dense(t)
    dense = predict_head(head, store[rows])
    got = predict_head_cells(head, store, sp, rows=rows, block_rows=50)
    np.testing.assert_allclose(got, dense[sp.row_of_cell(), sp.indices], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(predict_head_cells(head, store[rows], sp), got, rtol=1e-6, atol=1e-7)

    class Cells:  # row blocks that know their cells, as the cycle's fitted heads are
        shape = dense.shape

        def __getitem__(self, s: slice) -> np.ndarray:
            raise AssertionError("partial mAP must read the cells alone")

        def cells(self, labels: SparseLabels) -> np.ndarray:
            return predict_head_cells(head, store, labels, rows=rows)

    assert partial_map(Cells(), sp).map == pytest.approx(partial_map(dense, t).map, abs=1e-6)
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        predict_head_cells(torch.nn.Sequential(torch.nn.Identity()), store, sp)


def test_a_row_sample_prior_scales_the_whole_sets_counts() -> None:
    rng = np.random.default_rng(5)
    n, c = 40_000, 6
    y = (rng.random((n, c)) < 0.3).astype(np.int8)
    p = np.clip(0.25 + 0.5 * y + 0.1 * rng.standard_normal(y.shape), 0, 1).astype(np.float32)
    t = np.where(y == 1, np.where(rng.random(y.shape) < 0.4, 1, -1), -1).astype(np.int8)
    t[rng.random(y.shape) < 0.1] = 0
    t[y == 1] = np.where(t[y == 1] == 0, 1, t[y == 1])  # a verified cell holds the truth
    sp = SparseLabels.from_dense(t)
    for method in ("random", "shrunk", "filled"):
        plain, m = model_prior_with_method(p, sp, method=method)
        same, _ = model_prior_with_method(p, sp, method=method, population=sp)
        np.testing.assert_allclose(same, plain, rtol=0, atol=1e-15)
        sample = np.sort(rng.choice(n, size=n // 8, replace=False))
        estimate, m2 = model_prior_with_method(p[sample], sp.take(sample), method=method, population=sp)
        assert m2 is m
        np.testing.assert_allclose(estimate, plain, atol=0.01)
    with pytest.raises(ValueError, match="population"):
        model_prior_with_method(p[:10], sp.take(np.arange(10)), population=sp.take(np.arange(5)))
