"""Tests for core.priors: estimators against known prevalences, the running mean, CSV I/O."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.priors import (
    DEFAULT_PRIOR_METHOD,
    PriorMethod,
    RunningPrior,
    model_prior,
    naive_prior,
    read_prior_csv,
    running_prior,
    write_prior_csv,
)


def label_shift_data(
    rng: np.random.Generator, n: int, prevalence: float, keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One class: x | y ~ N(+-1, 1); FPC keeps ``keep`` random positives and negatives.

    Returns ``(y, x, targets)``; annotated cells are balanced, unknown cells are not.
    """
    y = (rng.random(n) < prevalence).astype(np.int8)
    x = rng.standard_normal(n) + np.where(y == 1, 1.0, -1.0)
    t = np.full(n, -1, dtype=np.int8)
    for value in (1, 0):
        rows = np.flatnonzero(y == value)
        t[rng.choice(rows, size=keep, replace=False)] = value
    return y, x, t


def test_naive_prior_counts_annotated_positives_per_image() -> None:
    t = np.array([[1, -1, 0], [0, 1, -1], [-1, 1, -1], [1, 0, -1]], dtype=np.int8)
    np.testing.assert_array_equal(naive_prior(t), [0.5, 0.5, 0.0])


def test_naive_prior_rejects_bad_targets() -> None:
    with pytest.raises(
        ValueError, match=r"targets holds values \[2\]; use 1 positive, 0 negative, -1 unknown"
    ):
        naive_prior(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"targets must be 2-D \(N images, C classes\), got shape \(3,\)"):
        naive_prior(np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="targets has no rows"):
        naive_prior(np.zeros((0, 3), dtype=np.int8))


def test_model_prior_mean_and_filled_by_hand() -> None:
    p = np.array([[0.9, 0.2], [0.7, 0.4]])
    t = np.array([[1, -1], [-1, 0]])
    np.testing.assert_allclose(model_prior(p), [0.8, 0.3])
    np.testing.assert_allclose(model_prior(p, t, method="mean"), [0.8, 0.3])
    np.testing.assert_allclose(model_prior(p, t, method="filled"), [(1 + 0.7) / 2, (0.2 + 0) / 2])


def test_model_prior_method_errors() -> None:
    p = np.array([[0.9, 0.2]])
    with pytest.raises(
        ValueError, match="prior method 'adjusted' needs targets; pass targets or use method='mean'"
    ):
        model_prior(p, method="adjusted")
    with pytest.raises(
        ValueError,
        match="unknown prior method 'median'; valid methods: mean, filled, adjusted, shifted, random, shrunk, auto",
    ):
        model_prior(p, np.array([[1, 0]]), method="median")
    with pytest.raises(ValueError, match=r"probs has shape \(1, 2\) but targets has shape \(1, 3\)"):
        model_prior(p, np.array([[1, 0, 1]]))
    with pytest.raises(
        ValueError, match="probs must lie in \\[0, 1\\] \\(pass sigmoid probabilities, not logits\\)"
    ):
        model_prior(np.array([[1.5, 0.2]]))
    with pytest.raises(ValueError, match="probs holds NaN or inf"):
        model_prior(np.array([[np.nan, 0.2]]))


def test_default_method_is_auto() -> None:
    assert DEFAULT_PRIOR_METHOD is PriorMethod.AUTO
    rng = np.random.default_rng(0)
    p = rng.random((50, 3))
    t = rng.integers(-1, 2, (50, 3))
    np.testing.assert_array_equal(model_prior(p, t), model_prior(p, t, method="auto"))


def test_adjusted_recovers_prevalence_under_label_shift_from_an_uncalibrated_score() -> None:
    rng = np.random.default_rng(1)
    y, x, t = label_shift_data(rng, 40_000, prevalence=0.2, keep=1_000)
    score = 1 / (1 + np.exp(-0.7 * x + 0.4))  # monotone in x, deliberately miscalibrated
    truth = y.mean()
    adjusted = model_prior(score[:, None], t[:, None], method="adjusted")[0]
    filled = model_prior(score[:, None], t[:, None], method="filled")[0]
    assert abs(adjusted - truth) < 0.01
    assert abs(filled - truth) > 0.05  # the uncorrected estimate is far off


def test_shifted_recovers_prevalence_from_probabilities_calibrated_on_annotated_cells() -> None:
    rng = np.random.default_rng(2)
    y, x, t = label_shift_data(rng, 40_000, prevalence=0.2, keep=1_000)
    p = 1 / (1 + np.exp(-2.0 * x))  # the exact posterior for a balanced (annotated) population
    truth = y.mean()
    shifted = model_prior(p[:, None], t[:, None], method="shifted")[0]
    mean = model_prior(p[:, None], method="mean")[0]
    assert abs(shifted - truth) < 0.01
    assert abs(mean - truth) > 0.1


def test_shifted_is_the_fixed_point_of_the_saerens_em() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(2, 5, size=(3000, 1))
    t = np.full((3000, 1), -1, dtype=np.int8)
    t[:400, 0] = (rng.random(400) < 0.5).astype(np.int8)
    n_pos, n_ann = (t == 1).sum(), (t != -1).sum()
    pi_a = (n_pos + 0.5) / (n_ann + 1)
    pu = p[t == -1]
    pi_u = pu.mean()
    for _ in range(5000):  # plain EM
        a, b = pi_u / pi_a * pu, (1 - pi_u) / (1 - pi_a) * (1 - pu)
        pi_u = (a / (a + b)).mean()
    expected = (n_pos + pu.size * pi_u) / 3000
    assert model_prior(p, t, method="shifted")[0] == pytest.approx(expected, abs=2e-4)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 30),
    st.integers(1, 5),
    st.sampled_from(list(PriorMethod)),
    st.integers(0, 2**31 - 1),
)
def test_every_method_returns_values_in_unit_interval(n: int, c: int, method: PriorMethod, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random((n, c)) ** rng.uniform(0.2, 5)
    t = rng.integers(-1, 2, (n, c)).astype(np.int8)
    out = model_prior(p, t, method=method)
    assert out.shape == (c,) and out.dtype == np.float64
    assert np.all((out >= 0) & (out <= 1))


def test_fully_annotated_targets_give_the_true_rate_for_target_aware_methods() -> None:
    rng = np.random.default_rng(4)
    t = rng.integers(0, 2, (200, 4)).astype(np.int8)
    p = rng.random((200, 4))
    for method in ("filled", "adjusted", "shifted", "random", "shrunk", "auto"):
        np.testing.assert_allclose(model_prior(p, t, method=method), t.mean(axis=0))


def test_running_prior_is_the_mean_of_every_row_seen() -> None:
    rp = RunningPrior(2)
    rp.update(np.array([[0.2, 0.4]]))
    rp.update(torch.tensor([[0.4, 0.0], [0.6, 0.2]]))
    np.testing.assert_allclose(rp.value, [0.4, 0.2])
    assert rp.count == 3
    batches = (np.full((k, 3), k / 10) for k in (1, 2, 3))
    np.testing.assert_allclose(running_prior(batches), np.full(3, (0.1 + 0.4 + 0.9) / 6))


def test_running_prior_errors() -> None:
    rp = RunningPrior(3)
    with pytest.raises(ValueError, match="has seen no batch yet"):
        _ = rp.value
    with pytest.raises(ValueError, match=r"probs has shape \(2, 2\) but this RunningPrior has 3 classes"):
        rp.update(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not logits"):
        rp.update(torch.full((2, 3), 3.0))
    with pytest.raises(ValueError, match="running_prior got no batches"):
        running_prior([])


# ---------------------------------------------------------------------------------------------
# CSV


def test_csv_round_trip_is_exact_and_keyed_by_identifier(tmp_path: Path) -> None:
    path = tmp_path / "prior.csv"
    ids = ["/m/01g317", "/m/0199g", 'odd,"id"']
    prior = np.array([0.123456789012345, 1.0, 0.0])
    write_prior_csv(path, ids, prior)
    assert path.read_text().splitlines()[0] == "Classes,avg_pred"
    table = read_prior_csv(path)
    assert table.class_ids == ids
    np.testing.assert_array_equal(table.prior, prior)
    reordered = read_prior_csv(path, class_ids=[ids[2], ids[0], ids[1]])
    np.testing.assert_array_equal(reordered.prior, prior[[2, 0, 1]])
    assert [p.name for p in tmp_path.iterdir()] == ["prior.csv"]  # no temporary file left


def test_reads_the_reference_format_with_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "train_avg_preds.csv"
    path.write_text("\ufeffClasses,avg_pred\n/m/01,0.25\n\n/m/02,3e-2\n", encoding="utf-8")
    table = read_prior_csv(path, ["/m/02", "/m/01"])
    np.testing.assert_allclose(table.prior, [0.03, 0.25])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "{p}: empty file; expected header 'Classes,avg_pred'"),
        ("Class,avg\n/m/01,0.5\n", "{p}:1: header is 'Class,avg', expected 'Classes,avg_pred'"),
        ("Classes,avg_pred\n", "{p}: no classes after the header"),
        ("Classes,avg_pred\n/m/01,0.5,7\n", "{p}:2: expected 2 fields (class id, avg_pred), got 3"),
        ("Classes,avg_pred\n,0.5\n", "{p}:2: empty class identifier"),
        ("Classes,avg_pred\n/m/01,0.5\n/m/01,0.4\n", "{p}:3: class '/m/01' appears again (first on line 2)"),
        ("Classes,avg_pred\n/m/01,yes\n", "{p}:2: avg_pred 'yes' is not a number"),
        ("Classes,avg_pred\n/m/01,nan\n", "{p}:2: avg_pred 'nan' is not finite"),
        ("Classes,avg_pred\n/m/01,0.5\n/m/02,1.2\n", "{p}:3: avg_pred 1.2 is outside [0, 1]"),
    ],
)
def test_malformed_files_give_one_line_errors_with_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "prior.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message.format(p=path))) as info:
        read_prior_csv(path)
    assert "\n" not in str(info.value)


def test_mismatched_classes_are_an_error_not_a_silent_shrink(tmp_path: Path) -> None:
    path = tmp_path / "prior.csv"
    write_prior_csv(path, ["a", "b", "c"], [0.1, 0.2, 0.3])
    with pytest.raises(
        ValueError, match=re.escape(f"{path}: 1 of the dataset's 4 classes are missing (first: 'd')")
    ):
        read_prior_csv(path, ["a", "b", "c", "d"])
    with pytest.raises(
        ValueError, match=re.escape(f"{path}:4: class 'c' is not in the dataset (1 such rows)")
    ):
        read_prior_csv(path, ["a", "b"])
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'none.csv'}: no such prior file")):
        read_prior_csv(tmp_path / "none.csv")


def test_write_rejects_bad_priors(tmp_path: Path) -> None:
    path = tmp_path / "prior.csv"
    with pytest.raises(ValueError, match="prior has 1 values but there are 2 classes"):
        write_prior_csv(path, ["a", "b"], [0.5])
    with pytest.raises(ValueError, match="class_ids holds 'a' twice"):
        write_prior_csv(path, ["a", "a"], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"prior must lie in \[0, 1\]"):
        write_prior_csv(path, ["a", "b"], [0.5, -0.1])
    assert not path.exists()


def test_adjusted_falls_back_to_naive_when_a_class_has_no_annotated_negative() -> None:
    # A rare class verified only as present: an ignore-mode model predicts ~1 everywhere.
    t = np.full((100, 2), -1, dtype=np.int8)
    t[:3, 0] = 1
    t[:50, 1] = 1
    t[50:80, 1] = 0
    p = np.full((100, 2), 0.99)
    p[50:, 1] = 0.05
    prior = model_prior(p, t, method="adjusted")
    assert prior[0] == pytest.approx(naive_prior(t)[0])  # 0.03, not ~0.99
    assert 0.5 <= prior[1] <= 0.55
