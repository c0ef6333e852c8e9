"""On real pretrained features the cycle's suggestions match a plain logistic-regression baseline.

The check that would have caught issue 11's head-mode failure: on lite0's ImageNet embeddings the
cycle's mini-batch Adam heads ranked the hidden positives no better than chance (P@100 0.03 for
``ignore``) where a per-class scikit-learn logistic regression on the same embeddings found them.
Here the real cycle (``--pretrained packaged``, head mode, csl) runs on a generated dataset with
OpenImages-like partial labels; its stored suggestions are scored against the hidden truth, next
to a logistic regression on the very embeddings the cycle cached (annotated cells only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.pipeline.config import CycleConfig, TrainMode, WeightsSource
from app.pipeline.cycle import run_cycle
from app.pipeline.features import feature_cache, resolve_weights
from app.store import open_store
from core.losses import LossName
from core.metrics import average_precision
from db.runs import suggestion_scores
from tests.app.seed import seed_store

sklearn_linear = pytest.importorskip("sklearn.linear_model")


def _logistic_regression_scores(x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, C) probabilities of per-class L2 logistic regressions fitted on the annotated cells."""
    xs = (x - x.mean(0)) / (x.std(0) + 1e-6)
    out = np.zeros(targets.shape, dtype=np.float64)
    for c in range(targets.shape[1]):
        rows = np.flatnonzero(targets[:, c] != -1)
        y = targets[rows, c] == 1
        if y.all() or not y.any():
            out[:, c] = float(y.mean()) if len(y) else 0.0
            continue
        model = sklearn_linear.LogisticRegression(C=0.1, max_iter=2000).fit(xs[rows], y)
        out[:, c] = model.predict_proba(xs)[:, 1]
    return out


@pytest.mark.slow
def test_cycle_suggestions_match_logistic_regression_on_packaged_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    seeded = seed_store(store, tmp_path / "data", n_images=500, image_size=64)
    train = np.flatnonzero(np.asarray(seeded.splits) == "train")
    targets, truth = seeded.annotations[train], seeded.truth[train]
    unknown = targets == -1
    hidden = unknown & (truth == 1)
    config = CycleConfig(dataset="toy", pretrained=WeightsSource.PACKAGED, mode=TrainMode.HEAD,
                         loss=LossName.CSL, image_size=128, top_suggestions=int(unknown.sum()),
                         device="cpu", workers=0)  # fmt: skip
    result = run_cycle(store, config)

    with store.read() as s:
        stored = suggestion_scores(s, result.target_run_id)
    row = {seeded.image_ids[i]: r for r, i in enumerate(train)}
    col = {k: j for j, k in enumerate(seeded.class_keys)}
    cycle_scores = np.full(targets.shape, -np.inf)
    for image, key, score in stored:
        cycle_scores[row[image], col[key]] = score
    assert np.isfinite(cycle_scores[unknown]).all()  # every unknown training cell was ranked

    cache = feature_cache(
        config, len(seeded.class_keys), store.home / "cache", resolve_weights(config, store.home / "cache")
    )
    x = cache.read([seeded.image_ids[i] for i in train])
    baseline = _logistic_regression_scores(x, targets)

    ours = average_precision(cycle_scores[unknown], hidden[unknown])
    theirs = average_precision(baseline[unknown], hidden[unknown])
    chance = float(hidden[unknown].mean())
    print(
        f"\n[q] AP of the hidden positives: cycle {ours:.3f}, logistic regression {theirs:.3f}, chance {chance:.3f}"
    )
    assert theirs > 3 * chance  # the features carry the signal
    assert ours >= 0.9 * theirs, (ours, theirs)
