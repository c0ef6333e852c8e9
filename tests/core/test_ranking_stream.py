"""Tests for the streamed top-K of core.ranking: equal to top_unknown on the full matrix, bad input."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import core.ranking as ranking_module
import core.ranking_stream as stream_module
from core.ranking import Ranker, TopUnknown, calibration_rows, top_unknown
from core.ranking_stream import RankerParams, StreamingTopK, ranker_params, top_unknown_chunks


def chunked(p: np.ndarray, cuts: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, p[start:end])`` pieces of ``p`` split at the sorted row positions ``cuts``."""
    bounds = [0, *cuts, p.shape[0]]
    for start, end in itertools.pairwise(bounds):
        yield start, p[start:end]


def streamed(
    p: np.ndarray, t: np.ndarray, prior: np.ndarray | None, k: int, ranker: Ranker, cuts: list[int]
) -> TopUnknown:
    params = None
    if ranker is Ranker.CALIBRATED:  # the first pass keeps only the calibration rows
        params = ranker_params(t, prior, ranker=ranker, chunks=chunked(p, cuts))
    return top_unknown_chunks(chunked(p, cuts), t, prior, k, ranker=ranker, class_params=params)


def full_matrix(
    p: np.ndarray, t: np.ndarray, prior: np.ndarray | None, k: int, ranker: Ranker, fast: bool
) -> TopUnknown:
    """``top_unknown`` on the whole matrix, through its sampled-threshold fast path or its plain path."""
    original = ranking_module._FAST_PATH_CELLS
    try:
        ranking_module._FAST_PATH_CELLS = 0 if fast else original
        return top_unknown(p, t, prior, k, ranker=ranker)
    finally:
        ranking_module._FAST_PATH_CELLS = original


def assert_same(a: TopUnknown, b: TopUnknown) -> None:
    np.testing.assert_array_equal(a.img_idx, b.img_idx)
    np.testing.assert_array_equal(a.cls_idx, b.cls_idx)
    np.testing.assert_array_equal(a.score, b.score)
    assert a.img_idx.dtype == b.img_idx.dtype == np.int64 and a.cls_idx.dtype == np.int64
    assert a.score.dtype == b.score.dtype


@st.composite
def matrices(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[int]]:
    """(probs with ties, targets with all-annotated rows, priors, k, chunk cuts)."""
    n = draw(st.integers(1, 40))
    c = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    decimals = draw(st.sampled_from([0, 1, 2, 6]))  # 0 and 1 decimals: many ties
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    p = np.round(rng.random((n, c)), decimals).astype(dtype)
    t = rng.integers(-1, 2, (n, c)).astype(np.int8)
    t[rng.random(n) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = 1  # all-annotated rows (or all rows)
    prior = rng.random(c)
    k = draw(st.integers(0, n * c + 3))
    size = draw(st.sampled_from(["one row", "beyond N", "random"]))
    if size == "one row":
        cuts = list(range(1, n))
    elif size == "beyond N":
        cuts = []
    else:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=6))) - {n})
    return p, t, prior, k, cuts


@settings(max_examples=150, deadline=None)
@given(matrices(), st.sampled_from(list(Ranker)), st.booleans())
def test_streamed_top_k_equals_the_full_sort(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, int, list[int]], ranker: Ranker, fast: bool
) -> None:
    p, t, prior, k, cuts = case
    assert_same(streamed(p, t, prior, k, ranker, cuts), full_matrix(p, t, prior, k, ranker, fast))


@settings(max_examples=80, deadline=None)
@given(
    st.integers(20, 300),
    st.integers(5, 40),
    st.integers(1, 80),
    st.sampled_from([16, 64, 1 << 16]),
    st.sampled_from([0, 2, 6]),
    st.lists(st.integers(1, 299), max_size=4),
    st.sampled_from(list(Ranker)),
    st.integers(0, 2**31 - 1),
)
def test_streamed_top_k_of_large_chunks_equals_the_full_sort(
    n: int, c: int, k: int, sample: int, decimals: int, cuts: list[int], ranker: Ranker, seed: int
) -> None:
    """Small k in large chunks: the candidates come from a sampled threshold (or, failing that, a full
    partition); a sample of 16 or 64 cells takes every few-hundredth cell."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.random((n, c)) ** 3, decimals).astype(np.float32)
    t = np.where(rng.random((n, c)) < 0.3, rng.integers(0, 2, (n, c)), -1).astype(np.int8)
    prior = rng.random(c) * 0.5
    cuts = sorted({x for x in cuts if x < n})
    original = stream_module._STREAM_SAMPLE_CELLS
    try:
        stream_module._STREAM_SAMPLE_CELLS = sample
        got = streamed(p, t, prior, k, ranker, cuts)
    finally:
        stream_module._STREAM_SAMPLE_CELLS = original
    assert_same(got, top_unknown(p, t, prior, k, ranker=ranker))


def test_a_misleading_sample_falls_back_to_a_full_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampled cells (every 62nd) score high, the rest low: fewer than k reach the sample's
    threshold, so the chunk is partitioned whole."""
    n, c, k = 100, 40, 60
    p = np.linspace(0.0, 0.3, n * c)
    sampled = np.arange(0, n * c, (n * c) // 64)
    p[sampled] = np.linspace(0.5, 0.9, sampled.size)
    p = p.reshape(n, c)
    t = np.full((n, c), -1, dtype=np.int8)
    monkeypatch.setattr(stream_module, "_STREAM_SAMPLE_CELLS", 64)
    got = top_unknown_chunks([(0, p)], t, None, k)
    assert len(got.img_idx) == k
    assert_same(got, top_unknown(p, t, None, k))


@settings(max_examples=40, deadline=None)
@given(matrices())
def test_probability_needs_no_priors_and_keeps_each_cells_probability(
    case: tuple[np.ndarray, np.ndarray, np.ndarray, int, list[int]],
) -> None:
    p, t, _, k, cuts = case
    acc = StreamingTopK(k, ranker_params(t, None))
    for start, piece in chunked(p, cuts):
        acc.push(start, piece, t[start : start + len(piece)])
    top = acc.result()
    assert_same(top, top_unknown(p, t, None, k))
    probs = acc.probs()
    assert probs.dtype == p.dtype
    np.testing.assert_array_equal(probs, p[top.img_idx, top.cls_idx])
    assert acc.rows == p.shape[0]


@pytest.mark.parametrize("ranker", list(Ranker))
def test_large_matrix_with_sampled_calibration_rows(ranker: Ranker) -> None:
    """N > 4096: ``calibrated`` fits its shift on a subset of rows, which the first pass must pick."""
    rng = np.random.default_rng(5)
    n, c = 9000, 7
    p = rng.random((n, c)).astype(np.float32) ** 3
    t = np.where(rng.random((n, c)) < 0.4, rng.integers(0, 2, (n, c)), -1).astype(np.int8)
    prior = rng.random(c) * 0.3
    assert calibration_rows(n).size == 4096
    cuts = sorted([*range(1000, n, 1000), 4321])
    for k in (1, 777, n * c):
        assert_same(streamed(p, t, prior, k, ranker, cuts), top_unknown(p, t, prior, k, ranker=ranker))


def test_ranker_params_are_those_of_the_full_matrix() -> None:
    rng = np.random.default_rng(1)
    p = rng.random((50, 4))
    t = rng.integers(-1, 2, (50, 4)).astype(np.int8)
    prior = rng.random(4)
    for ranker in Ranker:
        params = ranker_params(t, prior, ranker=ranker, chunks=chunked(p, [10, 11, 30]))
        expected = ranking_module._class_params(p, t, prior, ranker)
        assert params.ranker is ranker and params.kind == expected.kind
        np.testing.assert_array_equal(params.value, expected.value)
    np.testing.assert_array_equal(calibration_rows(0), np.zeros(0, dtype=np.int64))
    assert calibration_rows(10_000)[[0, -1]].tolist() == [0, 9999]


def test_streamed_top_k_by_hand() -> None:
    p = np.array([[0.9, 0.2], [0.6, 0.7], [0.7, 0.9]])
    t = np.array([[-1, -1], [1, -1], [-1, 0]])
    top = top_unknown_chunks([(0, p[:2]), (2, p[2:])], t, None, 3)
    assert top.img_idx.tolist() == [0, 1, 2] and top.cls_idx.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(top.score, [0.9, 0.7, 0.7])  # the tie goes to the earlier image
    empty = top_unknown_chunks([(0, p)], t, None, 0)
    assert empty.img_idx.size == 0 and empty.score.dtype == np.float64
    everything = top_unknown_chunks(iter([(0, p)]), t, None, 100)
    assert len(everything.img_idx) == 4


def test_stream_input_errors() -> None:
    p = np.array([[0.5, 0.2], [0.1, 0.3]])
    t = np.array([[-1, -1], [-1, 0]])
    prior = [0.1, 0.1]
    with pytest.raises(
        ValueError, match="a chunk starts at row 1 but the next row due is 0; pass chunks in row order"
    ):
        top_unknown_chunks([(1, p[1:])], t, None, 1)
    with pytest.raises(ValueError, match="a chunk starts at row 0 but the next row due is 1"):
        top_unknown_chunks([(0, p[:1]), (0, p[1:])], t, None, 1)
    with pytest.raises(ValueError, match=r"the chunks cover rows 0..0 of 2; pass every row, in order"):
        top_unknown_chunks([(0, p[:1])], t, None, 1)
    with pytest.raises(ValueError, match=r"a chunk covers rows 1..2 but targets has 2 rows"):
        top_unknown_chunks([(0, p[:1]), (1, p)], t, None, 1)
    with pytest.raises(ValueError, match=r"a chunk's start row must be an integer, got 0\.0"):
        top_unknown_chunks([(0.0, p)], t, None, 1)
    with pytest.raises(ValueError, match="a probs chunk is float64 but the first chunk was float32"):
        top_unknown_chunks([(0, p[:1].astype(np.float32)), (1, p[1:])], t, None, 1)
    with pytest.raises(ValueError, match=r"probs chunk must lie in \[0, 1\]"):
        top_unknown_chunks([(0, p * 3)], t, None, 1)
    with pytest.raises(ValueError, match="ranker 'lift' needs class priors; pass priors"):
        top_unknown_chunks([(0, p)], t, None, 1, ranker="lift")
    with pytest.raises(ValueError, match="ranker 'calibrated' fits its shift on the probabilities"):
        top_unknown_chunks([(0, p)], t, prior, 1, ranker="calibrated")
    with pytest.raises(ValueError, match="ranker 'calibrated' fits its shift on the probabilities"):
        ranker_params(t, prior, ranker="calibrated")
    lift = ranker_params(t, prior, ranker="lift")
    with pytest.raises(ValueError, match="class_params must be RankerParams of ranker 'prior_shift'"):
        top_unknown_chunks([(0, p)], t, prior, 1, ranker="prior_shift", class_params=lift)
    with pytest.raises(ValueError, match="class_params has 2 classes but targets has 3"):
        top_unknown_chunks(
            [(0, np.zeros((2, 3)))], np.zeros((2, 3)), [0.1] * 3, 1, ranker="lift", class_params=lift
        )
    with pytest.raises(ValueError, match="k must be >= 0"):
        top_unknown_chunks([(0, p)], t, None, -1)
    with pytest.raises(
        ValueError, match=r"params must be RankerParams from core\.ranking\.ranker_params, got tuple"
    ):
        StreamingTopK(1, ("scale", np.ones(2)))  # type: ignore[arg-type]
    acc = StreamingTopK(1, ranker_params(t, None))
    with pytest.raises(ValueError, match="probs chunk has 3 classes but the ranker params have 2"):
        acc.push(0, np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(
        ValueError, match=r"probs chunk has shape \(1, 2\) but targets chunk has shape \(2, 2\)"
    ):
        acc.push(0, p[:1], t)
    with pytest.raises(ValueError, match="targets chunk"):
        acc.push(0, p, t * 2)
    assert acc.rows == 0  # nothing was taken from the rejected chunks
    acc.push(0, p, t)
    assert acc.result().score.tolist() == [0.5]
    assert isinstance(lift, RankerParams)
