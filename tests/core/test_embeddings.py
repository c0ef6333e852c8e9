"""core.embeddings: the append-only memory-mapped cache and incremental embedding of images."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import create_transform_for, load_image
from core.embeddings import EmbeddingCache, EmbeddingKey, embed_images
from core.models import create_model, feature_dim, pooled_features
from tests.core.test_data import make_color_squares

KEY = EmbeddingKey(backbone="toy", weights="0" * 64, image_size=32, transform="{}")


def _vectors(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_cache_appends_reads_and_survives_reopening(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, KEY, 8)
    first = _vectors(5, 8, 0)
    assert cache.append([f"a{i}" for i in range(5)], first) == 5
    assert cache.append(["a1", "b0", "b0"], _vectors(3, 8, 1)) == 1  # known and repeated ids are ignored
    again = EmbeddingCache(tmp_path, KEY, 8)
    assert len(again) == 6 and again.ids == ["a0", "a1", "a2", "a3", "a4", "b0"]
    np.testing.assert_allclose(again.read(["a3", "a0"]), first[[3, 0]], atol=2e-3)  # float16 storage
    assert again.read(["a0", "a1"]).dtype == np.float32
    store = again.memmap()
    assert isinstance(store, np.memmap) and store.shape == (6, 8) and store.dtype == np.float16
    assert again.missing(["a2", "zz", "b0", "yy"]) == ["zz", "yy"]
    assert again.rows(["b0", "nope"]).tolist() == [5, -1]
    with pytest.raises(KeyError, match="not in the embedding cache: nope"):
        again.read(["a0", "nope"])


def test_cache_rejects_other_width_and_bad_shapes(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, KEY, 8, dtype="float32")
    with pytest.raises(ValueError, match=r"shape \(2, 8\)"):
        cache.append(["a", "b"], np.zeros((2, 7)))
    with pytest.raises(ValueError, match="dim 8 float32, asked for 16 float32"):
        EmbeddingCache(tmp_path, KEY, 16, dtype="float32")


def test_half_written_append_is_invisible_and_overwritten(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, KEY, 4, dtype="float32")
    cache.append(["a", "b"], _vectors(2, 4, 0))
    with open(cache.folder / "data.bin", "ab") as handle:  # a writer killed after its rows, before its index
        handle.write(np.full((3, 4), 7.0, dtype=np.float32).tobytes())
    reopened = EmbeddingCache(tmp_path, KEY, 4, dtype="float32")
    assert reopened.ids == ["a", "b"]
    new = _vectors(1, 4, 5)
    reopened.append(["c"], new)
    np.testing.assert_array_equal(reopened.read(["c"]), new)
    assert (cache.folder / "data.bin").stat().st_size == 3 * 4 * 4


def _append_chunks(folder: str, prefix: str) -> None:
    cache = EmbeddingCache(folder, KEY, 4, dtype="float32")
    for chunk in range(10):
        ids = [f"{prefix}{chunk}_{j}" for j in range(5)]
        values = np.array([[hash(i) % 1000] * 4 for i in ids], dtype=np.float32)
        cache.append(ids, values)


def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_chunks, args=(str(tmp_path), p)) for p in "xy"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    cache = EmbeddingCache(tmp_path, KEY, 4, dtype="float32")
    assert len(cache) == 100 and len(set(cache.ids)) == 100
    values = cache.read(cache.ids)
    assert values[:, 0].tolist() == [float(hash(i) % 1000) for i in cache.ids]


@pytest.fixture(scope="module")
def backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("mobilenetv3_small_050", 3)


def _count_forward(model: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    original = model.forward_features

    def counting(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return original(x)

    model.forward_features = counting  # type: ignore[method-assign]
    return calls


def test_second_call_embeds_only_new_images(tmp_path: Path, backbone: torch.nn.Module) -> None:
    source, _ = make_color_squares(tmp_path / "img", 12, 3, size=32)
    (tmp_path / "img" / "img5.png").write_bytes(b"")  # unreadable: skipped, reported, retried next time
    calls = _count_forward(backbone)
    old = source.subset(range(8))
    first = embed_images(
        backbone,
        old,
        tmp_path / "cache",
        backbone="mobilenetv3_small_050",
        image_size=32,
        batch_size=4,
        device="cpu",
    )
    assert sum(calls) == 7 and first.computed == 7
    assert first.skipped == {"img5": "empty file (0 bytes)"}
    assert first.indices.tolist() == [0, 1, 2, 3, 4, 6, 7] and first.ids == [
        old.ids[i] for i in first.indices
    ]
    assert first.embeddings.shape == (7, feature_dim(backbone)) and first.embeddings.dtype == np.float32

    calls.clear()
    second = embed_images(
        backbone,
        source,
        tmp_path / "cache",
        backbone="mobilenetv3_small_050",
        image_size=32,
        batch_size=4,
        device="cpu",
    )
    assert sum(calls) == 4 and second.computed == 4  # 4 new images + the still-broken img5 attempted
    assert len(second.indices) == 11 and second.cache.folder == first.cache.folder
    np.testing.assert_array_equal(second.embeddings[:5], first.embeddings[:5])

    transform = create_transform_for(backbone, image_size=32, is_training=False)
    x = torch.stack([transform(load_image(source.root, p)) for p in source.paths[8:12]])
    with torch.no_grad():
        direct = pooled_features(backbone.eval(), x).numpy()
    np.testing.assert_allclose(second.embeddings[-4:], direct, rtol=2e-2, atol=2e-2)


def test_new_weights_or_size_get_their_own_cache(tmp_path: Path, backbone: torch.nn.Module) -> None:
    source, _ = make_color_squares(tmp_path / "img", 4, 3, size=32)
    args = {"backbone": "mobilenetv3_small_050", "device": "cpu", "batch_size": 4}
    base = embed_images(backbone, source, tmp_path / "cache", image_size=32, **args)
    other_size = embed_images(backbone, source, tmp_path / "cache", image_size=40, **args)
    assert other_size.computed == 4 and other_size.cache.folder != base.cache.folder
    with torch.no_grad():
        backbone.classifier.weight.add_(1.0)  # the head does not change pooled features
    assert embed_images(backbone, source, tmp_path / "cache", image_size=32, **args).computed == 0
    changed = create_model("mobilenetv3_small_050", 3)
    moved = embed_images(changed, source, tmp_path / "cache", image_size=32, **args)
    assert moved.computed == 4 and moved.cache.folder != base.cache.folder
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 3


def test_stopping_keeps_what_was_computed(tmp_path: Path, backbone: torch.nn.Module) -> None:
    source, _ = make_color_squares(tmp_path / "img", 10, 3, size=32)
    progress: list[float] = []
    part = embed_images(
        backbone,
        source,
        tmp_path / "cache",
        backbone="m",
        image_size=32,
        batch_size=4,
        device="cpu",
        on_progress=lambda f, _m: progress.append(f),
        should_stop=lambda: len(progress) >= 1,
    )
    assert not part.complete and part.computed == 4 and len(part.indices) == 4
    rest = embed_images(
        backbone, source, tmp_path / "cache", backbone="m", image_size=32, batch_size=4, device="cpu"
    )
    assert rest.complete and rest.computed == 6 and len(rest.indices) == 10
