"""Tests for core.metrics against scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

import core.metrics as metrics_module
from core.metrics import MapResult, average_precision, full_map, partial_map


def test_average_precision_by_hand() -> None:
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.1, 0.2, 0.3], [1, 0, 0]) == pytest.approx(1 / 3)
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_tied_scores_form_one_threshold() -> None:
    # Positive and negative tied at the top: precision 1/2 at that threshold, then 2/3.
    assert average_precision([0.5, 0.5, 0.4], [1, 0, 1]) == pytest.approx((0.5 + 2 / 3) / 2)
    assert average_precision([0.5, 0.5, 0.4], [0, 1, 1]) == pytest.approx((0.5 + 2 / 3) / 2)


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 60), st.integers(0, 2**31 - 1))
def test_average_precision_equals_sklearn_without_ties(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.permutation(n) + rng.random()  # distinct
    labels = rng.integers(0, 2, n)
    labels[0] = 1
    assert average_precision(scores, labels) == pytest.approx(
        average_precision_score(labels, scores), rel=1e-12
    )


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 60), st.integers(0, 2**31 - 1))
def test_average_precision_with_ties_equals_sklearn_and_ignores_row_order(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, n).astype(float)  # many ties
    labels = rng.integers(0, 2, n)
    labels[0] = 1
    value = average_precision(scores, labels)
    assert value == pytest.approx(average_precision_score(labels, scores), rel=1e-12)
    perm = rng.permutation(n)
    assert average_precision(scores[perm], labels[perm]) == pytest.approx(value, rel=1e-12)


def test_partial_map_by_hand() -> None:
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.6], [0.6, 0.7, 0.9], [0.4, 0.2, 0.1]])
    targets = np.array([[1, 0, -1], [0, -1, 1], [-1, 1, -1], [1, 0, -1]])
    result = partial_map(scores, targets)
    # class 0: annotated (0.9, +) (0.2, -) (0.4, +): AP = (1 + 1) / 2; class 1: (0.1 -) (0.7 +) (0.2 -): AP 1;
    # class 2: no annotated negative, skipped.
    assert isinstance(result, MapResult)
    np.testing.assert_allclose(result.per_class_ap[:2], [100.0, 100.0])
    assert np.isnan(result.per_class_ap[2])
    assert result.n_classes == 2
    assert result.map == pytest.approx(100.0)


def test_unknowns_are_not_scored_as_negatives() -> None:
    scores = np.array([[0.9], [0.8], [0.7], [0.1]])
    targets = np.array([[-1], [-1], [1], [0]])
    assert partial_map(scores, targets).map == pytest.approx(100.0)
    assert full_map(scores, np.array([[0], [0], [1], [0]])).map == pytest.approx(100.0 / 3)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 80), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_partial_map_equals_sklearn_on_annotated_entries(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, c))
    targets = rng.integers(-1, 2, (n, c)).astype(np.int8)
    result = partial_map(scores, targets)
    expected = []
    for j in range(c):
        ann = targets[:, j] != -1
        y = targets[ann, j]
        if y.min(initial=1) == 0 and y.max(initial=0) == 1:
            expected.append(100 * average_precision_score(y, scores[ann, j]))
            assert result.per_class_ap[j] == pytest.approx(expected[-1], rel=1e-12)
        else:
            assert np.isnan(result.per_class_ap[j])
    assert result.n_classes == len(expected)
    if expected:
        assert result.map == pytest.approx(np.mean(expected), rel=1e-12)
    else:
        assert np.isnan(result.map)


def test_full_map_equals_sklearn_macro_average() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((300, 9))
    targets = (rng.random((300, 9)) < np.linspace(0.05, 0.6, 9)).astype(np.int8)
    assert full_map(scores, targets).map == pytest.approx(
        100 * average_precision_score(targets, scores, average="macro"), rel=1e-12
    )


def test_chunked_computation_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    scores = np.round(rng.random((200, 30)), 2)
    targets = rng.integers(-1, 2, (200, 30)).astype(np.int8)
    whole = partial_map(scores, targets)
    monkeypatch.setattr(metrics_module, "_CHUNK_CELLS", 450)  # two columns per chunk
    chunked = partial_map(scores, targets)
    np.testing.assert_array_equal(whole.per_class_ap, chunked.per_class_ap)


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match=r"scores has shape \(3, 2\) but targets has shape \(3, 3\)"):
        partial_map(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="scores holds NaN or inf"):
        partial_map(np.array([[np.nan]]), np.array([[1]]))
    with pytest.raises(ValueError, match="targets hold 1 unknown \\(-1\\) entries; use partial_map"):
        full_map(np.zeros((2, 1)), np.array([[1], [-1]]))
    with pytest.raises(ValueError, match="labels must hold only 0 and 1"):
        average_precision([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match=r"scores has shape \(2,\) but labels has shape \(3,\)"):
        average_precision([0.1, 0.2], [1, 0, 1])
