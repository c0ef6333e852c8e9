"""Tests for the unknown-rate estimators behind core.priors and the ``auto`` method's choice.

Data are generated with a known truth: labels ``y`` (N, C) with a known prevalence, and scores ``p``
that play cross-fitted probabilities (a function of the label and noise, never of the mask). The
partial labels come from three hiding schemes: RPS (each cell hidden at random), FPC (per class as
many annotated positives as negatives) and a candidate generator (positives verified at random,
negatives verified with a chance rising with their score: hard negatives).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core._unknown_rate import (
    RANDOM_TEST_LEVEL,
    adjusted_rate,
    random_annotation_pvalue,
    random_annotation_z,
    random_rate,
    shifted_rate,
    shrunk_rate,
)
from core.priors import PriorMethod, model_prior, naive_prior, select_prior_method

PREVALENCE = np.array([0.4, 0.2, 0.1, 0.05, 0.02])
UNKNOWN_RATES = (random_rate, adjusted_rate, shrunk_rate, shifted_rate)


def scene(
    rng: np.random.Generator, n: int, prevalence: np.ndarray = PREVALENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Labels int8 (n, C) and scores float64 (n, C) in (0, 1): logit ~ N(±1.2, 1) by label."""
    y = (rng.random((n, prevalence.size)) < prevalence).astype(np.int8)
    z = np.where(y == 1, 1.2, -1.2) + rng.standard_normal(y.shape)
    return y, 1.0 / (1.0 + np.exp(-z))


def hide_rps(rng: np.random.Generator, y: np.ndarray, drop: float) -> np.ndarray:
    """Each cell unknown (-1) with probability ``drop``, independently of everything."""
    return np.where(rng.random(y.shape) < drop, -1, y).astype(np.int8)


def hide_fpc(rng: np.random.Generator, y: np.ndarray, keep: int) -> np.ndarray:
    """Per class ``keep`` random positives and ``keep`` random negatives annotated."""
    t = np.full(y.shape, -1, dtype=np.int8)
    for c in range(y.shape[1]):
        for value in (1, 0):
            rows = np.flatnonzero(y[:, c] == value)
            t[rng.choice(rows, size=min(keep, rows.size), replace=False), c] = value
    return t


def hide_candidates(rng: np.random.Generator, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Positives verified with chance 0.5; negatives with chance 0.6 * p^2 (hard negatives first)."""
    verified = np.where(y == 1, rng.random(y.shape) < 0.5, rng.random(y.shape) < 0.6 * p**2)
    return np.where(verified, y, -1).astype(np.int8)


def test_random_rate_is_exact_in_expectation_under_random_hiding() -> None:
    rng = np.random.default_rng(0)
    y, p = scene(rng, 2000)
    truth = y.mean(axis=0)
    errors = np.array([model_prior(p, hide_rps(rng, y, 0.8), method="random") - truth for _ in range(200)])
    mean, se = errors.mean(axis=0), errors.std(axis=0, ddof=1) / np.sqrt(len(errors))
    assert np.all(np.abs(mean) < 4 * se + 1e-4), (mean, se)
    naive = naive_prior(hide_rps(rng, y, 0.8))
    assert np.all(naive < truth)  # counting misses the hidden positives


def test_random_rate_by_hand() -> None:
    t = np.array([[1, 0, 1], [0, -1, 1], [-1, -1, 0], [1, 1, 1]], dtype=np.int8)
    pi_u = random_rate(np.zeros(t.shape), t)
    np.testing.assert_allclose(pi_u, [2 / 3, 1 / 2, 0.0])  # the last class has no unknown cell
    np.testing.assert_allclose(
        model_prior(np.zeros(t.shape), t, method="random"), [(2 + 2 / 3) / 4, (1 + 2 * 0.5) / 4, 0.75]
    )


def test_random_is_biased_and_adjusted_unbiased_when_annotations_are_balanced() -> None:
    rng = np.random.default_rng(1)
    y, p = scene(rng, 20_000)
    t = hide_fpc(rng, y, 300)
    truth = y.mean(axis=0)
    assert np.abs(model_prior(p, t, method="adjusted") - truth).max() < 0.03
    assert np.abs(model_prior(p, t, method="random") - truth).max() > 0.3  # FPC's balanced 0.5


def test_random_annotation_test_holds_its_level_under_rps_and_rejects_other_schemes() -> None:
    rng = np.random.default_rng(2)
    runs = 200
    false_rejections = 0
    for _ in range(runs):
        y, p = scene(rng, 1500)
        false_rejections += (
            random_annotation_pvalue(p, hide_rps(rng, y, rng.uniform(0.3, 0.9))) < RANDOM_TEST_LEVEL
        )
    # Bonferroni keeps the rate at or below the 1 % level; allow binomial noise (mean 2, sd ~1.4).
    assert false_rejections <= 6, false_rejections
    for _ in range(20):
        y, p = scene(rng, 1500)
        assert random_annotation_pvalue(p, hide_candidates(rng, y, p)) < RANDOM_TEST_LEVEL
        assert random_annotation_pvalue(p, hide_fpc(rng, y, 50)) < RANDOM_TEST_LEVEL


def test_random_annotation_z_skips_classes_with_too_few_cells() -> None:
    rng = np.random.default_rng(3)
    y, p = scene(rng, 200)
    t = hide_rps(rng, y, 0.5)
    t[:, 0] = y[:, 0]  # fully annotated: nothing unknown to compare with
    t[3:, 1] = -1  # three annotated cells
    z, tested = random_annotation_z(p, t)
    assert tested.tolist() == [False, False, True, True, True]
    assert z[0] == 0.0 and z[1] == 0.0
    assert np.isnan(random_annotation_pvalue(p, np.full(t.shape, -1, dtype=np.int8)))


def test_auto_uses_random_under_rps_and_shrunk_otherwise() -> None:
    rng = np.random.default_rng(4)
    y, p = scene(rng, 3000)
    cases = {
        PriorMethod.RANDOM: hide_rps(rng, y, 0.5),
        PriorMethod.SHRUNK: hide_candidates(rng, y, p),
    }
    cases_fpc = hide_fpc(rng, y, 60)
    for expected, t in [*cases.items(), (PriorMethod.SHRUNK, cases_fpc)]:
        assert select_prior_method(p, t) is expected
        np.testing.assert_array_equal(model_prior(p, t, method="auto"), model_prior(p, t, method=expected))
        np.testing.assert_array_equal(model_prior(p, t), model_prior(p, t, method=expected))  # the default
    # Nothing annotated: no class can be tested, so auto does not assume randomness.
    blank = np.full(y.shape, -1, dtype=np.int8)
    assert select_prior_method(p, blank) is PriorMethod.SHRUNK
    np.testing.assert_array_equal(model_prior(p, blank), np.zeros(y.shape[1]))


def test_auto_beats_naive_under_random_hiding_and_does_not_fall_below_it_under_hard_negatives() -> None:
    rng = np.random.default_rng(5)
    y, p = scene(rng, 4000)
    truth = y.mean(axis=0)
    t = hide_rps(rng, y, 0.8)
    assert np.abs(model_prior(p, t) - truth).mean() < 0.25 * np.abs(naive_prior(t) - truth).mean()
    t = hide_candidates(rng, y, p)
    auto = model_prior(p, t)
    assert np.all(auto >= naive_prior(t))
    assert np.abs(auto - truth).mean() <= np.abs(naive_prior(t) - truth).mean()


def test_shrunk_keeps_clear_estimates_and_drops_noisy_ones() -> None:
    rng = np.random.default_rng(6)
    y, p = scene(rng, 40_000, np.array([0.3, 0.3]))
    t = hide_fpc(rng, y, 2000)
    t[:, 1] = np.where(np.arange(len(t)) < 30, y[:, 1], -1)  # class 1: 30 annotated cells only
    p[:, 1] = rng.random(len(t))  # and a score that does not separate
    adjusted = adjusted_rate(p, t)
    shrunk = shrunk_rate(p, t)
    assert shrunk[0] == pytest.approx(adjusted[0], rel=0.01)  # tiny variance: weight ~1
    assert shrunk[1] <= adjusted[1] and shrunk[1] < 0.1
    assert np.all((shrunk >= 0) & (shrunk <= adjusted + 1e-12))


def test_shrunk_removes_the_clipping_bias_of_adjusted_on_absent_unknown_positives() -> None:
    # Every positive annotated (pi_u = 0): adjusted's noise is clipped at 0, so its mean is > 0.
    rng = np.random.default_rng(7)
    adj, shr = [], []
    for _ in range(100):
        y, p = scene(rng, 2000, np.array([0.02]))
        t = hide_fpc(rng, y, 40)
        t[y[:, 0] == 1, 0] = 1
        adj.append(adjusted_rate(p, t)[0])
        shr.append(shrunk_rate(p, t)[0])
    assert np.mean(shr) < 0.75 * np.mean(adj)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_unknown_rates_are_in_unit_interval_with_shape_c(n: int, c: int, seed: int, drop: float) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random((n, c)) ** rng.uniform(0.2, 5)
    y = (rng.random((n, c)) < rng.random(c)).astype(np.int8)
    t = hide_rps(rng, y, drop)
    t[:, 0] = y[:, 0]  # a class without unknown cells
    for fn in UNKNOWN_RATES:
        pi_u = fn(p, t)
        assert pi_u.shape == (c,) and pi_u.dtype == np.float64
        assert np.all((pi_u >= 0) & (pi_u <= 1)), fn.__name__
        assert pi_u[0] == 0.0, fn.__name__
    pvalue = random_annotation_pvalue(p, t)
    assert np.isnan(pvalue) or 0.0 <= pvalue <= 1.0
    for method in (PriorMethod.RANDOM, PriorMethod.SHRUNK, PriorMethod.AUTO):
        prior = model_prior(p, t, method=method)
        assert prior.shape == (c,) and np.all((prior >= 0) & (prior <= 1))
        assert prior[0] == pytest.approx(y[:, 0].mean())  # fully annotated: its true rate
