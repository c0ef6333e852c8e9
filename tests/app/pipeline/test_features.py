"""The features step: weights resolved once into the cache; the embedding cache a benchmark can fill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.pipeline.config import CycleConfig, WeightsSource
from app.pipeline.features import feature_cache, prepare_features, resolve_weights
from app.pipeline.fit import Scorer
from app.pipeline.load import DatasetArrays
from core.sparse_labels import SparseLabels
from core.synthetic import SceneConfig, generate_dataset, write_dataset


@pytest.mark.parametrize(("source", "expected"), [(WeightsSource.NONE, "none"), (WeightsSource.HUB, "hub")])
def test_named_sources_pass_through(tmp_path: Path, source: WeightsSource, expected: str) -> None:
    assert resolve_weights(CycleConfig(dataset="d", pretrained=source), tmp_path) == expected


def test_a_checkpoint_file_is_its_path(tmp_path: Path) -> None:
    config = CycleConfig(dataset="d", pretrained=WeightsSource.FILE, pretrained_file=tmp_path / "w.pt")
    assert resolve_weights(config, tmp_path / "cache") == str(tmp_path / "w.pt")


def test_packaged_weights_are_converted_once_into_the_cache(tmp_path: Path) -> None:
    config = CycleConfig(dataset="d", backbone="tf_efficientnet_lite0", pretrained=WeightsSource.PACKAGED)
    path = Path(resolve_weights(config, tmp_path))
    assert path.is_file() and path.parent == tmp_path / "pretrained"
    stamp = path.stat().st_mtime_ns
    assert resolve_weights(config, tmp_path) == str(path) and path.stat().st_mtime_ns == stamp


def test_feature_cache_is_the_cache_the_features_step_fills(tmp_path: Path) -> None:
    ds = generate_dataset(12, seed=3, config=SceneConfig(image_size=32))
    written = write_dataset(ds, tmp_path / "data", annotations=ds.truth)
    ids = list(ds.image_ids)
    data = DatasetArrays(1, "d", written.images_dir, np.arange(1, 13), ids, [f"{i}.jpg" for i in ids],
                         np.asarray(["train"] * 12, dtype=object), np.arange(ds.truth.shape[1]),
                         list(ds.class_ids), list(ds.class_names), SparseLabels.from_dense(ds.truth))  # fmt: skip
    config = CycleConfig(dataset="d", backbone="resnet10t", pretrained="none", image_size=32, batch_size=4,
                         workers=0, device="cpu")  # type: ignore[arg-type]  # fmt: skip
    scorer = Scorer(config, data, tmp_path / "work", tmp_path / "cache")
    messages: list[str] = []
    prepare_features(scorer, lambda _f, m: messages.append(m))
    assert scorer.features is not None and scorer.features.shape[0] == 12 and scorer.weights == "none"
    assert scorer.feature_row is not None and (scorer.feature_row == np.arange(12)).all()
    assert messages[-1] == "12 images embedded (12 new, 0 unreadable)"
    cache = feature_cache(config, data.n_classes, tmp_path / "cache", scorer.weights)
    assert cache.missing(ids) == []
    np.testing.assert_array_equal(cache.read(ids), scorer.features)
