"""Tests for core.ranking.audit_sample: uniform draws of unknown cells, on both of its paths."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import chi2

import core.audit_sample as audit_module
from core.audit_sample import audit_sample

PATHS = ["choice", "keys"]


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test on the rank path (``Generator.choice``) and on the block-wise smallest-keys path."""
    if request.param == "keys":
        monkeypatch.setattr(audit_module, "_AUDIT_DENSE_CELLS", 0)
        monkeypatch.setattr(audit_module, "_AUDIT_SPARSE_RATIO", 10**9)
    monkeypatch.setattr(audit_module, "_AUDIT_BLOCK_CELLS", 5)  # several blocks even on tiny inputs
    yield request.param


def _targets(n: int, c: int, seed: int, p_unknown: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, size=(n, c)).astype(np.int8)
    t[rng.random((n, c)) < p_unknown] = -1
    return t


# The fixture only sets module constants, the same for every generated input.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    t=arrays(np.int8, st.tuples(st.integers(0, 25), st.integers(0, 7)), elements=st.sampled_from([-1, 0, 1])),
    k=st.integers(0, 60),
    seed=st.integers(0, 2**32),
)
def test_only_unknown_cells_no_duplicates_capped_and_deterministic(
    path: str, t: np.ndarray, k: int, seed: int
) -> None:
    img, cls = audit_sample(t, k, seed)
    n_unknown = int((t == -1).sum())
    assert img.dtype == np.int64 and cls.dtype == np.int64
    assert len(img) == len(cls) == min(k, n_unknown)
    assert (t[img, cls] == -1).all()
    assert len(set(zip(img.tolist(), cls.tolist(), strict=True))) == len(img)
    again = audit_sample(t, k, seed)
    np.testing.assert_array_equal(again[0], img)
    np.testing.assert_array_equal(again[1], cls)


def test_all_unknown_cells_when_k_is_large(path: str) -> None:
    t = _targets(9, 4, seed=1)
    img, cls = audit_sample(t, 1000, seed=3)
    assert sorted(zip(img.tolist(), cls.tolist(), strict=True)) == sorted(
        zip(*np.nonzero(t == -1), strict=True)
    )


def test_uniform_over_subsets_and_first_draws(path: str) -> None:
    """Every 3-subset of 7 unknown cells equally likely (chi-square over 35 subsets), any cell first."""
    t = np.array([[-1, 1, -1, 0], [0, -1, 1, -1], [-1, 0, -1, -1]], dtype=np.int8)
    cells = [tuple(x) for x in zip(*np.nonzero(t == -1), strict=True)]
    assert len(cells) == 7
    trials = 7000
    subsets: Counter[frozenset[tuple[int, int]]] = Counter()
    first: Counter[tuple[int, int]] = Counter()
    for seed in range(trials):
        img, cls = audit_sample(t, 3, seed=(seed, 11))
        drawn = list(zip(img.tolist(), cls.tolist(), strict=True))
        subsets[frozenset(drawn)] += 1
        first[drawn[0]] += 1
    all_subsets = [frozenset(s) for s in itertools.combinations(cells, 3)]
    assert set(subsets) == set(all_subsets)
    for counts, n_bins in (([subsets[s] for s in all_subsets], 35), ([first[c] for c in cells], 7)):
        expected = trials / n_bins
        stat = sum((x - expected) ** 2 / expected for x in counts)
        assert chi2.sf(stat, n_bins - 1) > 1e-3, (stat, counts)


def test_seed_changes_the_sample_and_sequences_are_accepted() -> None:
    t = _targets(40, 6, seed=2)
    a = audit_sample(t, 10, seed=(0, 1))
    b = audit_sample(t, 10, seed=(0, 2))
    assert not np.array_equal(a[0] * 6 + a[1], b[0] * 6 + b[1])
    c = audit_sample(t, 10, seed=np.int64(5))
    np.testing.assert_array_equal(c[0], audit_sample(t, 10, seed=5)[0])


def test_large_sparse_draw_uses_little_memory() -> None:
    """A 2,000 x 600 matrix, mostly unknown: 250 cells drawn through ranks, all unknown, no repeats."""
    t = _targets(2000, 600, seed=4, p_unknown=0.95)
    img, cls = audit_sample(t, 250, seed=0)
    assert len(img) == 250 and (t[img, cls] == -1).all()
    assert len(np.unique(img * 600 + cls)) == 250


@pytest.mark.parametrize(
    ("targets", "k", "seed", "message"),
    [
        (np.zeros(4, dtype=np.int8), 1, 0, r"targets must be 2-D"),
        (np.full((2, 2), 2), 1, 0, r"targets holds values \[2\]"),
        (np.full((2, 2), -1), -1, 0, r"k must be >= 0"),
        (np.full((2, 2), -1), 1.5, 0, r"k must be an integer"),
        (np.full((2, 2), -1), 1, -3, r"seed must be an integer >= 0 or a sequence of them"),
        (np.full((2, 2), -1), 1, "7", r"seed must be an integer >= 0"),
        (np.full((2, 2), -1), 1, (), r"seed must be an integer >= 0"),
        (np.full((2, 2), -1), 1, True, r"seed must be an integer >= 0"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    targets: object, k: object, seed: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        audit_sample(targets, k, seed)  # type: ignore[arg-type]
