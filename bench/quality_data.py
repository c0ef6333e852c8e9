"""Data of the quality benchmark: generated images, their cached embeddings, and the partial labels.

Each seed generates one dataset (:func:`core.synthetic.generate_dataset`), renders it to JPEG once
(at the scene's ``image_size``), and embeds it once with a frozen backbone as the cycle does
(its backbone, weights source and input size: by default ``tf_efficientnet_lite0`` with packaged
ImageNet weights at 224 px, inputs normalised as those weights expect). Every method then trains a
head on the same cached embeddings and the same masks (paired seeds), so the benchmark compares
losses, priors and rankers, not luck of the draw.

Folders (reused by later runs with the same settings)::

    <cache_dir>/bench-quality/<key>/images/<ImageID>.jpg   the rendered images
    <cache_dir>/bench-quality/<key>/.rendered              written after the last image
    <cache_dir>/embeddings/...                             core.embeddings' cache (keyed by weights,
                                                           embedding size and normalisation)

``key`` is a hash of the scene config (render size included), image count, seed and split
fractions. Images are cached and stored under ``<key>-<ImageID>`` (:attr:`SeedData.image_ids`), so
two renderings of one seed never share a cached embedding, in this cache or in the cycle's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.pipeline.config import CycleConfig, WeightsSource
from app.pipeline.features import feature_backbone, resolve_weights
from core.data import ImageSource
from core.embeddings import embed_images
from core.synthetic import (
    SceneConfig,
    SyntheticDataset,
    fpc,
    generate_dataset,
    openimages_like,
    rps,
    write_dataset,
)

#: Protocol names, in report order (``results.json`` uses exactly these).
PROTOCOLS: tuple[str, ...] = ("fpc", "rps-0.5", "rps-0.8", "openimages")

#: (fraction, message) progress callback.
Progress = Callable[[float, str], None]

#: Weights sources the benchmarks take (``file`` needs a checkpoint the benchmarks have no option for).
BENCH_WEIGHTS: tuple[WeightsSource, ...] = (WeightsSource.PACKAGED, WeightsSource.HUB, WeightsSource.NONE)


def bench_weights_source(value: WeightsSource | str) -> WeightsSource:
    """``value`` as a :class:`WeightsSource` the benchmarks take (:data:`BENCH_WEIGHTS`).

    Raises:
        ValueError: an unknown or unsupported source (one line naming the valid ones).
    """
    source = WeightsSource.from_str(value)
    if source not in BENCH_WEIGHTS:
        raise ValueError(
            f"the benchmarks embed with pretrained {', '.join(BENCH_WEIGHTS)}, not {source.value!r}"
        )
    return source


def resolve_bench_weights(backbone: str, pretrained: WeightsSource, cache_dir: Path) -> str:
    """The weights ``prepare_seed`` loads, resolved by the cycle's own step (``packaged``: converted once).

    Returns:
        ``"hub"``, ``"none"`` or the path of the cached packaged state dict (the same file the
        cycle's features step uses, so their embedding caches are shared).
    """
    config = CycleConfig(dataset="bench", backbone=backbone, pretrained=pretrained, device="cpu")
    return resolve_weights(config, cache_dir)


@dataclass(frozen=True)
class SeedData:
    """One seed's dataset as arrays: embeddings and truth of the train and test images.

    Attributes:
        seed: the dataset seed.
        dataset: the generated dataset (truth, ids, class ids and names).
        train: int64 (N_train,) row indices of the training images in ``dataset``.
        test: int64 (N_test,) row indices of the fully labelled test images.
        x_train: float32 (N_train, D) pooled backbone embeddings of the training images.
        x_test: float32 (N_test, D) embeddings of the test images.
        y_train: int8 (N_train, C) full truth of the training images, 1 present / 0 absent.
        y_test: int8 (N_test, C) full truth of the test images.
        image_root: folder holding ``<ImageID>.jpg`` for every image.
        image_ids: N ids the images are cached (and stored by the folds study) under,
            ``<dataset key>-<ImageID>``, in ``dataset`` row order.
    """

    seed: int
    dataset: SyntheticDataset
    train: np.ndarray
    test: np.ndarray
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    image_root: Path
    image_ids: tuple[str, ...]

    @property
    def prevalence(self) -> np.ndarray:
        """float64 (C,): the true prevalence of each class in the training images."""
        return self.y_train.mean(axis=0, dtype=np.float64)


def _dataset_key(config: SceneConfig, n_images: int, seed: int, splits: tuple[float, float, float]) -> str:
    blob = json.dumps(
        {"scene": dataclasses.asdict(config), "n": n_images, "seed": seed, "splits": list(splits)},
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def prepare_seed(
    seed: int,
    *,
    n_images: int,
    scene: SceneConfig,
    split_fractions: tuple[float, float, float],
    backbone: str,
    weights: str,
    embed_size: int,
    normalize: bool,
    cache_dir: Path,
    workers: int = 2,
    on_progress: Progress | None = None,
) -> SeedData:
    """Generate, render (once) and embed (once) the dataset of ``seed``.

    Args:
        seed: dataset seed.
        n_images: N, images generated (train + val + test).
        scene: the scene configuration (its ``image_size`` is the render size in px).
        split_fractions: train / val / test fractions; val images are generated but unused.
        backbone: timm name of the frozen backbone.
        weights: from :func:`resolve_bench_weights`: a checkpoint path, ``"hub"`` or ``"none"``.
        embed_size: px, the square size images are resized to for the backbone.
        normalize: mean/std normalise the inputs (``WeightsSource.normalizes_inputs``).
        cache_dir: root cache folder (images and embeddings live under it).
        workers: processes rendering images.
        on_progress: ``(fraction, message)`` while embedding.

    Returns:
        The :class:`SeedData`.
    """
    data = generate_dataset(n_images, seed=seed, config=scene, split_fractions=split_fractions)
    key = _dataset_key(scene, n_images, seed, split_fractions)
    folder = cache_dir / "bench-quality" / key
    marker = folder / ".rendered"
    if not marker.is_file():
        written = write_dataset(data, folder, annotations=data.truth, workers=workers)
        marker.write_text(str(written.images_dir))
    images_dir = folder / "images"
    ids = tuple(f"{key}-{i}" for i in data.image_ids)
    source = ImageSource(images_dir, ids, tuple(f"{i}.jpg" for i in data.image_ids))
    # Seeded: a randomly initialised backbone ("none") must hash the same each time.
    model = feature_backbone(backbone, scene.num_classes, weights, seed=0)
    emb = embed_images(
        model,
        source,
        cache_dir,
        backbone=backbone,
        image_size=embed_size,
        normalize=normalize,
        device="cpu",
        on_progress=on_progress,
    )
    if len(emb.indices) != len(data):
        raise RuntimeError(
            f"{len(data) - len(emb.indices)} generated images could not be embedded: {emb.skipped}"
        )
    x = np.asarray(emb.embeddings, dtype=np.float32)
    train, test = data.indices("train"), data.indices("test")
    return SeedData(
        seed=seed,
        dataset=data,
        train=train,
        test=test,
        x_train=x[train],
        x_test=x[test],
        y_train=data.truth[train],
        y_test=data.truth[test],
        image_root=images_dir,
        image_ids=ids,
    )


def protocol_targets(data: SeedData, protocol: str, *, fpc_per_class: int, seed: int) -> np.ndarray:
    """The partial labels of the training images under ``protocol`` (one of :data:`PROTOCOLS`).

    ``fpc``: FPC(``fpc_per_class``); ``rps-<p>``: RPS(p); ``openimages``: per image 2 verified
    positives and 4 verified negatives, the negatives favouring common and look-alike classes
    (``SyntheticDataset.confusable_weights``), as a machine-proposed candidate list would.

    Args:
        data: the seed's data.
        protocol: the protocol name.
        fpc_per_class: N of FPC.
        seed: the mask seed (the same for every method: paired comparisons).

    Returns:
        int8 (N_train, C): 1 / 0 where annotated (equal to the truth), -1 unknown.

    Raises:
        ValueError: on an unknown protocol name.
    """
    if protocol == "fpc":
        return fpc(data.y_train, fpc_per_class, seed=seed)
    if protocol.startswith("rps-"):
        return rps(data.y_train, float(protocol.removeprefix("rps-")), seed=seed)
    if protocol == "openimages":
        weights = data.dataset.confusable_weights()[data.train]
        return openimages_like(data.y_train, seed=seed, neg_weights=weights)
    raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


__all__ = [
    "BENCH_WEIGHTS",
    "PROTOCOLS",
    "SeedData",
    "bench_weights_source",
    "prepare_seed",
    "protocol_targets",
    "resolve_bench_weights",
]
