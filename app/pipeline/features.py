"""The features step: resolve the initial weights; in head mode, embed every image once (cached).

Embeddings are computed once per (backbone, weights, image size) and cached under
``$LABELMEND_HOME/cache``; a later cycle (or a resumed job) reads them instead of decoding images.
:func:`feature_cache` opens that cache exactly as the cycle keys it, so a benchmark can fill it
with generated vectors and run the real cycle on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn as nn

from app.pipeline.config import CycleConfig, TrainMode, WeightsSource
from app.pipeline.fit import CycleStopped, Scorer
from common.progress import Progress
from core.device import seed_everything
from core.embeddings import EmbeddingCache, embed_images, embedding_key
from core.models import create_model, ensure_packaged, feature_dim

# Seconds between appends of computed embeddings to the cache: the most extraction work a killed
# worker loses (each append also rewrites the cache's id index, so not much more often than this).
EMBED_FLUSH_S = 10.0


def resolve_weights(config: CycleConfig, cache_dir: Path, report: Progress | None = None) -> str:
    """The weights to start from, as ``core.models.create_model`` takes them: ``hub``, ``none`` or a path.

    ``packaged`` is converted once into ``cache_dir`` and becomes the cached file's path (so the
    embedding cache, the checkpoints and ``labelmend predict`` see one file).
    """
    source = config.pretrained
    if source is WeightsSource.FILE:
        return str(config.pretrained_file)
    if source is WeightsSource.PACKAGED:
        return str(ensure_packaged(config.backbone, cache_dir))
    return source.value  # hub, none


def feature_backbone(backbone: str, n_classes: int, weights: str, *, seed: int) -> nn.Module:
    """The frozen backbone that embeds the images, built as the cycle builds it (seeded first).

    A randomly initialised backbone (``none``) must be the same on every run (and in ``labelmend
    predict``), or its embeddings would never be found in the cache again.

    Args:
        backbone: timm name; n_classes: C (the head is not used); weights: from :func:`resolve_weights`;
        seed: the cycle's ``CycleConfig.seed``.
    """
    seed_everything(seed)
    return create_model(backbone, n_classes, pretrained=weights)


def feature_cache(config: CycleConfig, n_classes: int, cache_dir: Path, weights: str) -> EmbeddingCache:
    """The embedding cache the features stage of ``config`` reads and fills, (image id → (D,) vector)."""
    model = feature_backbone(config.backbone, n_classes, weights, seed=config.seed)
    normalize = config.pretrained.normalizes_inputs
    key = embedding_key(model, backbone=config.backbone, image_size=config.image_size, normalize=normalize)
    return EmbeddingCache(cache_dir, key, feature_dim(model))


def prepare_features(scorer: Scorer, report: Progress) -> None:
    """The features stage: resolve ``scorer.weights``; head mode: embed every image (cached ones are read).

    Fills ``scorer.features`` (M, D) in the cache's dtype (float16), ``scorer.feature_row`` (N,) int64 (-1 = unreadable)
    and ``scorer.skipped``.

    Raises:
        CycleStopped: ``scorer.should_stop()`` became true (the computed embeddings are cached).
    """
    config = scorer.config
    scorer.weights = resolve_weights(config, scorer.cache_dir, report)
    if scorer.mode is not TrainMode.HEAD:
        report(1.0, "fine-tuning reads images while training")
        return
    emb = embed_images(
        feature_backbone(config.backbone, scorer.data.n_classes, scorer.weights, seed=config.seed),
        scorer.source,
        scorer.cache_dir,
        backbone=config.backbone,
        image_size=config.image_size,
        normalize=config.pretrained.normalizes_inputs,
        batch_size=config.batch_size,
        num_workers=config.workers,
        device=config.device,
        flush_seconds=EMBED_FLUSH_S,
        on_progress=report,
        should_stop=scorer.should_stop,
        out_dtype=None,  # kept float16 as cached: 1 KiB per 512-d image, cast per batch when used
    )
    if not emb.complete:
        raise CycleStopped("stopped while computing embeddings (the computed ones are cached)")
    scorer.skipped.update(emb.skipped)
    scorer.features = emb.embeddings
    rows = np.full(scorer.data.n_images, -1, dtype=np.int64)
    rows[emb.indices] = np.arange(len(emb.indices))
    scorer.feature_row = rows
    report(1.0, f"{len(emb.indices)} images embedded ({emb.computed} new, {len(emb.skipped)} unreadable)")


__all__ = [
    "EMBED_FLUSH_S",
    "feature_backbone",
    "feature_cache",
    "prepare_features",
    "resolve_weights",
]
