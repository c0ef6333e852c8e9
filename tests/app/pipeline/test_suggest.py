"""The suggest step: unknown cells only, best first, scored in-sample or cross-fitted (--folds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.pipeline.fit import train_scorer
from app.pipeline.suggest import suggest, training_probs
from core.constants import UNKNOWN
from core.priors import naive_prior
from core.ranking import kfold_split, score_unknown
from tests.app.pipeline.toy import split_rows, toy_scorer


def _quiet(_fraction: float, _message: str) -> None:
    pass


def test_top_unknown_cells_best_first(tmp_path: Path) -> None:
    scorer = toy_scorer(tmp_path, top_suggestions=10)
    train, _ = split_rows(scorer)
    prior = naive_prior(scorer.data.targets[train])
    fit = train_scorer(scorer, "csl", train, prior, "target", _quiet)
    top = suggest(scorer, fit, train, prior, _quiet)
    assert len(top) == 10
    assert (scorer.data.targets[top.rows, top.cls_idx] == UNKNOWN).all()
    assert (np.diff(top.score) <= 0).all()
    probs = fit.predict(train)  # folds = 1: the target model scores its own training images
    row_pos = np.searchsorted(train, top.rows)
    np.testing.assert_allclose(top.probs, probs[row_pos, top.cls_idx], rtol=1e-6)
    scores = score_unknown(probs, scorer.data.targets[train], prior)
    np.testing.assert_allclose(top.score, scores[row_pos, top.cls_idx], rtol=1e-6)
    np.testing.assert_array_equal(top.priors, prior[top.cls_idx])


def test_folds_score_each_image_with_a_model_that_did_not_train_on_it(tmp_path: Path) -> None:
    scorer = toy_scorer(tmp_path, folds=2)
    train, _ = split_rows(scorer)
    prior = naive_prior(scorer.data.targets[train])
    target = train_scorer(scorer, "csl", train, prior, "target", _quiet)
    messages: list[str] = []
    probs = training_probs(scorer, target, train, prior, lambda _f, m: messages.append(m))
    expected = np.zeros_like(probs)
    for f, fold in enumerate(kfold_split(len(train), 2, seed=scorer.config.seed)):
        fit = train_scorer(scorer, "csl", train[fold.train], prior, f"again{f}", _quiet)
        expected[fold.held] = fit.predict(train[fold.held])
    np.testing.assert_array_equal(probs, expected)
    assert not np.array_equal(probs, target.predict(train))
    assert (tmp_path / "fold0-head.pt").is_file() and (tmp_path / "fold1-head.pt").is_file()
    assert messages == ["fold 1/2", "fold 2/2", "2 folds scored"]
