"""Tests for core.ranking: scores, exact top-k (both paths), label-shift behaviour, folds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core.ranking as ranking_module
from core.ranking import (
    DEFAULT_RANKER,
    Ranker,
    kfold_split,
    score_unknown,
    top_unknown,
    unknown_positive_rate,
)


def brute_force_top(scores: np.ndarray, k: int) -> tuple[list[int], list[int]]:
    """Unknown cells (finite scores) by score desc, then row, then column."""
    cells = [
        (-scores[i, j], i, j)
        for i in range(scores.shape[0])
        for j in range(scores.shape[1])
        if scores[i, j] > -np.inf
    ]
    cells.sort()
    return [i for _, i, _ in cells[:k]], [j for _, _, j in cells[:k]]


def test_top_unknown_by_hand() -> None:
    p = np.array([[0.9, 0.2], [0.6, 0.7]])
    t = np.array([[-1, -1], [1, -1]])
    top = top_unknown(p, t, None, 5, ranker="probability")
    assert top.img_idx.tolist() == [0, 1, 0]
    assert top.cls_idx.tolist() == [0, 1, 1]
    np.testing.assert_allclose(top.score, [0.9, 0.7, 0.2])
    empty = top_unknown(p, t, None, 0, ranker="probability")
    assert empty.img_idx.size == 0 and empty.score.size == 0


def test_scores_by_hand() -> None:
    p = np.array([[0.8, 0.5], [0.4, 0.2], [0.6, 0.1], [0.3, 0.9]])
    t = np.array([[1, -1], [0, -1], [-1, 1], [-1, 0]], dtype=np.int8)
    prior = np.array([0.5, 0.25])
    np.testing.assert_array_equal(score_unknown(p, t, prior, ranker="probability")[2:, 0], [0.6, 0.3])
    lift = score_unknown(p, t, prior, ranker="lift")
    np.testing.assert_allclose(lift[:2, 1], [2.0, 0.8])
    assert np.all(lift[[0, 1, 2, 3], [0, 0, 1, 1]] == -np.inf)
    # class 0: pi_a = (1 + .5) / (2 + 1) = .5; pi_u = (.5 * 4 - 1) / 2 = .5 -> unchanged
    # class 1: pi_a = (1 + .5) / 3 = .5; pi_u = (.25 * 4 - 1) / 2 = 0 -> clipped to 1e-6
    np.testing.assert_allclose(unknown_positive_rate(t, prior), [0.5, 1e-6])
    shifted = score_unknown(p, t, prior, ranker="prior_shift")
    np.testing.assert_allclose(shifted[2:, 0], [0.6, 0.3])
    ratio = 1.0 / (1e-6 / (1 - 1e-6))
    np.testing.assert_allclose(
        shifted[:2, 1], [0.5 / (0.5 + 0.5 * ratio), 0.2 / (0.2 + 0.8 * ratio)], rtol=1e-6
    )


def test_calibrated_scores_average_to_the_unknown_rate() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(2, 3, size=(4000, 5))
    t = np.where(rng.random((4000, 5)) < 0.7, -1, rng.integers(0, 2, (4000, 5))).astype(np.int8)
    prior = np.array([0.05, 0.1, 0.3, 0.5, 0.02])
    scores = score_unknown(p, t, prior, ranker="calibrated")
    rates = unknown_positive_rate(t, prior)
    for c in range(5):
        assert scores[t[:, c] == -1, c].mean() == pytest.approx(rates[c], abs=2e-3)


@pytest.mark.parametrize("ranker", list(Ranker))
@pytest.mark.parametrize("fast", [False, True])
def test_top_unknown_is_exact_with_ties_on_both_paths(
    ranker: Ranker, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fast:
        monkeypatch.setattr(ranking_module, "_FAST_PATH_CELLS", 0)
        monkeypatch.setattr(ranking_module, "_THRESHOLD_ROWS", 64)
    rng = np.random.default_rng(1)
    p = np.round(rng.random((700, 40)), 2).astype(np.float32)  # many ties
    t = np.where(rng.random((700, 40)) < 0.8, -1, rng.integers(0, 2, (700, 40))).astype(np.int8)
    prior = np.linspace(0.01, 0.6, 40)
    scores = score_unknown(p, t, prior, ranker=ranker)
    for k in (1, 37, 500, 30_000):
        top = top_unknown(p, t, prior, k, ranker=ranker)
        rows, cols = brute_force_top(scores, k)
        assert top.img_idx.tolist() == rows
        assert top.cls_idx.tolist() == cols
        np.testing.assert_array_equal(top.score, scores[rows, cols])
        assert np.all(t[top.img_idx, top.cls_idx] == -1)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 8),
    st.integers(0, 50),
    st.sampled_from(list(Ranker)),
    st.integers(0, 2**31 - 1),
)
def test_fast_path_equals_brute_force(n: int, c: int, k: int, ranker: Ranker, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.round(rng.random((n, c)), 1)
    t = rng.integers(-1, 2, (n, c)).astype(np.int8)
    prior = rng.random(c)
    scores = score_unknown(p, t, prior, ranker=ranker)
    rows, cols = brute_force_top(scores, k)
    original = ranking_module._FAST_PATH_CELLS
    try:
        ranking_module._FAST_PATH_CELLS = 0
        fast = top_unknown(p, t, prior, k, ranker=ranker)
    finally:
        ranking_module._FAST_PATH_CELLS = original
    slow = top_unknown(p, t, prior, k, ranker=ranker)
    for top in (fast, slow):
        assert top.img_idx.tolist() == rows and top.cls_idx.tolist() == cols


def test_prior_shift_beats_raw_probability_under_label_shift() -> None:
    # Class 0 (prevalence 0.2) has 300 positives and 300 negatives annotated; class 1 (0.02) has every
    # positive and only 30 negatives annotated, so its unknown cells are all negative. An ignore-mode
    # model is calibrated for the annotated cells, so its p over-ranks class 1's unknowns.
    rng = np.random.default_rng(2)
    n = 5000
    y = np.stack([rng.random(n) < 0.2, rng.random(n) < 0.02], axis=1).astype(np.int8)
    x = rng.standard_normal((n, 2)) + np.where(y == 1, 1.0, -1.0)
    t = np.full((n, 2), -1, dtype=np.int8)
    for c, keep in ((0, {1: 300, 0: 300}), (1, {1: n, 0: 30})):
        for value, count in keep.items():
            rows = np.flatnonzero(y[:, c] == value)
            t[rng.choice(rows, size=min(count, rows.size), replace=False), c] = value
    pi_a = (t == 1).sum(axis=0) / (t != -1).sum(axis=0)
    p = 1 / (1 + np.exp(-(2 * x + np.log(pi_a / (1 - pi_a)))))  # exact posterior on annotated cells
    prior = y.mean(axis=0)
    precision = {}
    for ranker in ("probability", "prior_shift"):
        top = top_unknown(p, t, prior, 200, ranker=ranker)
        precision[ranker] = (y[top.img_idx, top.cls_idx] == 1).mean()
    assert precision["prior_shift"] > precision["probability"] + 0.2
    assert DEFAULT_RANKER is Ranker.PROBABILITY  # chosen by `labelmend bench quality` (see ranking.py)


def test_ranking_input_errors() -> None:
    p = np.array([[0.5, 0.2]])
    t = np.array([[-1, -1]])
    with pytest.raises(
        ValueError, match="ranker 'lift' needs class priors; pass priors or use ranker='probability'"
    ):
        top_unknown(p, t, None, 1, ranker="lift")
    with pytest.raises(
        ValueError, match="unknown ranker 'best'; valid rankers: probability, lift, prior_shift, calibrated"
    ):
        top_unknown(p, t, [0.1, 0.1], 1, ranker="best")
    with pytest.raises(ValueError, match="priors has 3 values but there are 2 classes"):
        top_unknown(p, t, [0.1, 0.1, 0.1], 1)
    with pytest.raises(ValueError, match=r"probs has shape \(1, 2\) but targets has shape \(2, 2\)"):
        top_unknown(p, np.array([[-1, -1], [0, 1]]), [0.1, 0.1], 1)
    with pytest.raises(ValueError, match="k must be >= 0"):
        top_unknown(p, t, [0.1, 0.1], -1)


def test_kfold_split_partitions_the_images() -> None:
    folds = kfold_split(103, 4, seed=7)
    assert len(folds) == 4
    held = np.concatenate([f.held for f in folds])
    assert sorted(held.tolist()) == list(range(103))
    assert sorted(len(f.held) for f in folds) == [25, 26, 26, 26]
    for f in folds:
        assert np.intersect1d(f.train, f.held).size == 0
        assert f.train.size + f.held.size == 103
        assert np.all(np.diff(f.train) > 0) and np.all(np.diff(f.held) > 0)
    again = kfold_split(103, 4, seed=7)
    assert all(np.array_equal(a.held, b.held) for a, b in zip(folds, again, strict=True))
    assert not np.array_equal(kfold_split(103, 4, seed=8)[0].held, folds[0].held)
    with pytest.raises(ValueError, match="k must be >= 2"):
        kfold_split(10, 1)
    with pytest.raises(ValueError, match="k = 5 folds need at least 5 images, got n = 3"):
        kfold_split(3, 5)
