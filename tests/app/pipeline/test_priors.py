"""The prior step: model (cross-fitted ignore-mode heads), naive and file priors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from app.pipeline.config import PriorSource
from app.pipeline.fit import train_scorer
from app.pipeline.priors import (
    choose_prior,
    estimate_priors,
    prior_model_probs,
    prior_sample,
    read_prior_file,
)
from core.priors import model_prior, model_prior_with_method, naive_prior
from core.ranking import kfold_split
from tests.app.pipeline.toy import split_rows, toy_arrays, toy_scorer


def _quiet(_fraction: float, _message: str) -> None:
    pass


def test_model_prior_comes_from_cross_fitted_ignore_models(tmp_path: Path) -> None:
    scorer = toy_scorer(tmp_path, prior_folds=2)
    train, val = split_rows(scorer)
    seen: list[str] = []
    priors = estimate_priors(scorer, train, val, lambda _f, m: seen.append(m))

    # the same two fold models, trained again by hand: each training image scored out of fold
    expected = np.zeros((len(train), 3), dtype=np.float32)
    for f, fold in enumerate(kfold_split(len(train), 2, seed=scorer.config.seed)):
        fit = train_scorer(scorer, "ignore", train[fold.train], None, f"check{f}", _quiet)
        expected[fold.held] = fit.predict(train[fold.held])
    targets = scorer.data.dense_targets(train)
    np.testing.assert_allclose(priors.model, model_prior(expected, targets))
    np.testing.assert_array_equal(priors.naive, naive_prior(targets))
    assert priors.used is priors.model  # PriorSource.MODEL
    assert priors.used.dtype == np.float64 and ((priors.used >= 0) & (priors.used <= 1)).all()
    assert (
        Path(priors.fit.artifacts["head"]).name == "prior1-head.pt"
        and (tmp_path / "prior0-head.pt").is_file()
    )
    assert 0 < priors.validation.map <= 100
    assert any(m.startswith("fold 1/2: ") for m in seen) and any(m.startswith("fold 2/2: ") for m in seen)


@pytest.mark.parametrize(("prior_folds", "n_train"), [(1, 48), (5, 9)])
def test_one_in_sample_model_without_folds_or_with_too_few_images(
    tmp_path: Path, prior_folds: int, n_train: int
) -> None:
    scorer = toy_scorer(tmp_path, prior_folds=prior_folds)
    train, val = split_rows(scorer)
    probs, val_probs, fit = prior_model_probs(scorer, train[:n_train], val, _quiet)
    assert Path(fit.artifacts["head"]).name == "prior-head.pt"
    np.testing.assert_array_equal(probs[0 : len(probs)], fit.predict(train[:n_train]))
    assert val_probs.shape == (len(val), 3)


def test_naive_prior_is_used_when_asked(tmp_path: Path) -> None:
    scorer = toy_scorer(tmp_path, prior=PriorSource.NAIVE, prior_folds=1)
    train, val = split_rows(scorer)
    priors = estimate_priors(scorer, train, val, _quiet)
    np.testing.assert_array_equal(priors.used, naive_prior(scorer.data.dense_targets(train)))
    assert not np.array_equal(priors.model, priors.naive)  # the model estimate is still kept


def _write_prior(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([("Classes", "avg_pred"), *rows])
    return path


def test_file_prior_is_read_in_the_datasets_class_order_and_used(tmp_path: Path) -> None:
    path = _write_prior(tmp_path / "prior.csv", [("/m/k2", "0.05"), ("/m/k0", "0.4"), ("/m/k1", "0.2")])
    scorer = toy_scorer(tmp_path / "work", prior=PriorSource.FILE, prior_file=path, prior_folds=1)
    from_file = read_prior_file(path, scorer.data)
    np.testing.assert_array_equal(from_file, [0.4, 0.2, 0.05])
    train, val = split_rows(scorer)
    priors = estimate_priors(scorer, train, val, _quiet, file_prior=from_file)
    np.testing.assert_array_equal(priors.used, [0.4, 0.2, 0.05])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("/m/k0", "0.4"), ("/m/k1", "0.2")], "missing"),
        ([("/m/k0", "0.4"), ("/m/k1", "1.5"), ("/m/k2", "0.1")], "1.5"),
    ],
)
def test_a_bad_prior_file_is_a_one_line_error_naming_it(
    tmp_path: Path, rows: list[tuple[str, str]], message: str
) -> None:
    path = _write_prior(tmp_path / "bad.csv", rows)
    with pytest.raises(ValueError) as info:
        read_prior_file(path, toy_arrays()[0])
    assert str(path) in str(info.value) and message in str(info.value) and "\n" not in str(info.value)


def test_choose_prior_dispatches_on_the_source() -> None:
    naive, model, file = np.full(3, 0.1), np.full(3, 0.2), np.full(3, 0.3)
    assert choose_prior(PriorSource.NAIVE, naive=naive, model=model, file=None) is naive
    assert choose_prior(PriorSource.MODEL, naive=naive, model=model, file=file) is model
    assert choose_prior(PriorSource.FILE, naive=naive, model=model, file=file) is file
    with pytest.raises(ValueError, match="no prior file was read"):
        choose_prior(PriorSource.FILE, naive=naive, model=model, file=None)


def test_prior_sample_is_every_image_until_the_cell_budget_then_a_reproducible_uniform_sample() -> None:
    np.testing.assert_array_equal(prior_sample(50, 4, seed=0, max_cells=200), np.arange(50))
    s = prior_sample(1_000, 4, seed=3, max_cells=400)
    assert len(s) == 100 and len(np.unique(s)) == 100 and (np.diff(s) > 0).all() and s.max() < 1_000
    np.testing.assert_array_equal(prior_sample(1_000, 4, seed=3, max_cells=400), s)
    assert not np.array_equal(prior_sample(1_000, 4, seed=4, max_cells=400), s)
    assert len(prior_sample(10, 10**6, seed=0, max_cells=400)) == 1  # at least one image


def test_above_the_cell_budget_the_prior_reads_a_sample_of_the_out_of_fold_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = toy_scorer(tmp_path, prior_folds=2)
    train, val = split_rows(scorer)
    sample = prior_sample(len(train), 3, seed=scorer.config.seed, max_cells=3 * (len(train) // 2))
    full, _, _ = prior_model_probs(scorer, train, val, _quiet)
    part, _, _ = prior_model_probs(scorer, train, val, _quiet, sample=sample)
    assert part.shape == (len(sample), 3)
    np.testing.assert_allclose(
        part[0 : len(sample)], full[0 : len(train)][sample], rtol=1e-6
    )  # other block shapes

    monkeypatch.setattr("app.pipeline.priors.PRIOR_SAMPLE_CELLS", 3 * (len(train) // 2))
    seen: list[str] = []
    priors = estimate_priors(scorer, train, val, lambda _f, m: seen.append(m))
    targets = scorer.data.dense_targets(train)
    want, _ = model_prior_with_method(part, targets[sample], method=priors.method, population=targets)
    assert any(f"{len(sample):,} sampled training images" in m for m in seen)
    np.testing.assert_allclose(priors.model, want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(priors.naive, naive_prior(targets))  # the counts stay the whole set's
