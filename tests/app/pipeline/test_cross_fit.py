"""cross_fit: every row scored by the one model that did not train on it; extra rows averaged."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from app.pipeline.cross_fit import cross_fit
from core.ranking import kfold_split


@dataclass
class Recorded:
    """A 'model' that remembers its training rows and scores row r as (fold, r in its training set)."""

    fold: int
    trained_on: np.ndarray
    asked: list[np.ndarray] = field(default_factory=list)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        self.asked.append(rows.copy())
        seen = np.isin(rows, self.trained_on).astype(np.float32)
        return np.stack([np.full(len(rows), self.fold, dtype=np.float32), seen], axis=1)


@pytest.mark.parametrize(("n", "k"), [(10, 2), (11, 3), (7, 7)])
def test_each_row_is_scored_by_a_model_that_did_not_train_on_it(n: int, k: int) -> None:
    idx = np.arange(100, 100 + n, dtype=np.int64) * 3  # rows of some larger dataset, not 0..n-1
    models: list[Recorded] = []

    def fit(rows: np.ndarray, f: int) -> Recorded:
        models.append(Recorded(f, rows.copy()))
        return models[-1]

    result = cross_fit(fit, idx, k, seed=5)
    assert result.probs.shape == (n, 2) and result.probs.dtype == np.float32
    assert result.models == models and [m.fold for m in models] == list(range(k))
    assert (result.probs[:, 1] == 0).all()  # never scored by a model that saw the row
    for model, fold in zip(models, kfold_split(n, k, seed=5), strict=True):
        # each model trained on every row outside its fold, scored exactly its fold
        assert np.array_equal(model.trained_on, idx[fold.train])
        assert np.array_equal(model.asked[0], idx[fold.held])
        assert (result.probs[fold.held, 0] == model.fold).all()
    assert result.extra.shape == (0, 2)


def test_extra_rows_get_the_mean_of_every_fold_model() -> None:
    idx, extra = np.arange(12), np.array([50, 51, 52])
    result = cross_fit(lambda rows, f: Recorded(f, rows), idx, 3, seed=0, extra=extra)
    assert result.extra.shape == (3, 2)
    np.testing.assert_allclose(result.extra[:, 0], np.mean([0, 1, 2]))  # mean of the fold numbers
    assert (result.extra[:, 1] == 0).all()


def test_the_split_depends_on_the_seed_only() -> None:
    def held_of(seed: int) -> list[list[int]]:
        models: list[Recorded] = []
        cross_fit(lambda rows, f: models.append(Recorded(f, rows)) or models[-1], np.arange(20), 4, seed=seed)
        return [m.asked[0].tolist() for m in models]

    assert held_of(1) == held_of(1) and held_of(1) != held_of(2)


@pytest.mark.parametrize(("n", "k", "message"), [(5, 1, "k must be"), (3, 4, "k = 4 folds need at least 4")])
def test_bad_fold_counts_are_one_line_errors(n: int, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cross_fit(lambda rows, f: Recorded(f, rows), np.arange(n), k, seed=0)
