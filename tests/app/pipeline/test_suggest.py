"""The suggest step: unknown cells only, best first, scored in-sample (in chunks) or cross-fitted (--folds)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import app.pipeline.suggest as suggest_module
from app.pipeline.audit import Queue, audit_queue, unknown_per_class
from app.pipeline.config import CycleConfig
from app.pipeline.fit import Fit, train_scorer
from app.pipeline.suggest import chunk_rows, suggest, training_probs
from core.constants import UNKNOWN
from core.priors import naive_prior
from core.ranking import kfold_split, score_unknown, top_unknown
from tests.app.pipeline.toy import N_CLASSES, split_rows, toy_scorer


def _quiet(_fraction: float, _message: str) -> None:
    pass


def test_top_unknown_cells_best_first(tmp_path: Path) -> None:
    scorer = toy_scorer(tmp_path, top_suggestions=10)
    train, _ = split_rows(scorer)
    prior = naive_prior(scorer.data.dense_targets(train))
    fit = train_scorer(scorer, "csl", train, prior, "target", _quiet)
    top = suggest(scorer, fit, train, prior, _quiet)
    assert len(top) == 10
    assert (scorer.data.dense_targets()[top.rows, top.cls_idx] == UNKNOWN).all()
    assert (np.diff(top.score) <= 0).all()
    probs = fit.predict(train)  # folds = 1: the target model scores its own training images
    row_pos = np.searchsorted(train, top.rows)
    np.testing.assert_allclose(top.probs, probs[row_pos, top.cls_idx], rtol=1e-6)
    scores = score_unknown(probs, scorer.data.dense_targets(train), prior)
    np.testing.assert_allclose(top.score, scores[row_pos, top.cls_idx], rtol=1e-6)
    np.testing.assert_array_equal(top.priors, prior[top.cls_idx])


def test_folds_score_each_image_with_a_model_that_did_not_train_on_it(tmp_path: Path) -> None:
    scorer = toy_scorer(tmp_path, folds=2)
    train, _ = split_rows(scorer)
    prior = naive_prior(scorer.data.dense_targets(train))
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


def _reference(
    fit: Fit, train: np.ndarray, targets: np.ndarray, prior: np.ndarray, config: CycleConfig, rows: int
) -> tuple[Queue, np.ndarray]:
    """The full-matrix path on the same probabilities: an (n, C) matrix from chunks of ``rows``."""
    probs = np.concatenate([fit.predict(train[s : s + rows]) for s in range(0, len(train), rows)])
    top = top_unknown(probs, targets, prior, config.top_suggestions)
    queue = audit_queue(top, targets, share=config.audit_share, seed=(config.seed, 7))
    return queue, probs


@pytest.mark.parametrize("rows", [1, 5, 1000])
def test_chunked_suggest_equals_the_full_matrix_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    scorer = toy_scorer(tmp_path, top_suggestions=40, audit_share=0.25)
    train, _ = split_rows(scorer)
    prior = naive_prior(scorer.data.dense_targets(train))
    fit = train_scorer(scorer, "csl", train, prior, "target", _quiet)
    monkeypatch.setattr(suggest_module, "CHUNK_BYTES", 4 * N_CLASSES * rows)
    assert chunk_rows(N_CLASSES) == rows
    sizes: list[int] = []
    predict = fit.predict

    def recording(sel: np.ndarray) -> np.ndarray:
        sizes.append(len(sel))
        return predict(sel)

    fit.predict = recording
    got = suggest(scorer, fit, train, prior, _quiet, audit_seed=(7,))
    fit.predict = predict
    assert max(sizes) <= rows  # never the whole (n, C) matrix (n = 48) unless one chunk holds it
    targets = scorer.data.dense_targets(train)
    queue, probs = _reference(fit, train, targets, prior, scorer.config, rows)
    assert 0 < queue.audit.sum() < len(queue.audit) == len(got) == 40
    np.testing.assert_array_equal(got.rows, train[queue.img_idx])
    np.testing.assert_array_equal(got.cls_idx, queue.cls_idx)
    np.testing.assert_array_equal(got.score, queue.score)
    np.testing.assert_array_equal(got.audit, queue.audit)
    np.testing.assert_array_equal(got.priors, prior[queue.cls_idx])
    np.testing.assert_array_equal(got.unknown_cells, unknown_per_class(targets))
    expected = probs[queue.img_idx, queue.cls_idx].astype(np.float64)
    # Ranked cells keep the probability of the chunk they were scored in. An audit cell the ranking
    # did not pick is predicted again from its row (with others): equal up to float32 rounding.
    np.testing.assert_array_equal(got.probs[~queue.audit], expected[~queue.audit])
    np.testing.assert_allclose(got.probs, expected, rtol=1e-6)
    if rows == 1:  # one row per predict call both ways: bit for bit
        np.testing.assert_array_equal(got.probs, expected)
    full = fit.predict(train)  # the one-call (n, C) prediction, as before chunking
    np.testing.assert_allclose(got.probs, full[queue.img_idx, queue.cls_idx], rtol=1e-6)
    if rows >= len(train):  # one chunk: the very same ranking as top_unknown on fit.predict(train)
        old = top_unknown(full, targets, prior, 40)
        no_audit = replace(scorer.config, audit_share=0.0)
        scorer.config = no_audit
        again = suggest(scorer, fit, train, prior, _quiet)
        np.testing.assert_array_equal(again.rows, train[old.img_idx])
        np.testing.assert_array_equal(again.cls_idx, old.cls_idx)
        np.testing.assert_array_equal(again.score, old.score.astype(np.float64))
        np.testing.assert_array_equal(again.probs, full[old.img_idx, old.cls_idx].astype(np.float64))


def test_chunked_suggest_reports_the_images_scored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = toy_scorer(tmp_path, top_suggestions=500, audit_share=0.0)
    train, _ = split_rows(scorer)
    prior = naive_prior(scorer.data.dense_targets(train))
    fit = train_scorer(scorer, "csl", train, prior, "target", _quiet)
    monkeypatch.setattr(suggest_module, "CHUNK_BYTES", 4 * N_CLASSES * 20)
    messages: list[tuple[float, str]] = []
    top = suggest(scorer, fit, train, prior, lambda f, m: messages.append((f, m)))
    assert messages == [
        (20 / 48, "20/48 images scored"),
        (40 / 48, "40/48 images scored"),
        (1.0, "48/48 images scored"),
    ]
    targets = scorer.data.dense_targets(train)
    assert len(top) == (targets == UNKNOWN).sum()  # fewer unknown cells than asked: all of them
    assert not top.audit.any() and top.unknown_cells.size == 0
