"""Fill a dataset's embedding cache ahead of a head-mode cycle, sharded over ``torchrun`` processes.

The images, backbone, weights and cache key are those of the features stage
(:func:`app.pipeline.features.prepare_features`) for the same :class:`CycleConfig`, so a later
``labelmend cycle`` in head mode with those settings computes nothing. Under ``torchrun`` each
rank embeds its block of the missing images into its own shard and rank 0 merges the shards
(:mod:`core.embeddings_shard`); without it one process does everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.pipeline.config import CycleConfig
from app.pipeline.features import EMBED_FLUSH_S, feature_backbone, resolve_weights
from app.pipeline.home import writing_home
from app.pipeline.load import DatasetArrays, load_dataset
from app.store import Store, open_store
from common.progress import Progress
from core.data import ImageSource
from core.embeddings_shard import embed_images_sharded, main_first, process_group
from db.datasets import get_dataset


@dataclass
class EmbedSummary:
    """One rank's view of a finished ``embed`` run (the counts are over all ranks).

    Attributes:
        rank, world_size: This process's place in the job.
        images: N, the dataset's images.
        cached: How many of them the cache holds now (N minus unreadable or stopped ones).
        computed: Images run through the backbone in this run, over all ranks.
        skipped: Image id → reason, for unreadable images (not cached).
        folder: The cache folder the cycle reads.
        complete: False when a rank was stopped early.
        seconds: Wall time of the extraction on this rank.
    """

    rank: int
    world_size: int
    images: int
    cached: int
    computed: int
    skipped: dict[str, str]
    folder: Path
    complete: bool
    seconds: float


def embed_dataset(
    config: CycleConfig, *, db: str | None = None, progress: Progress | None = None
) -> EmbedSummary:
    """Embed every image of ``config.dataset`` that the features stage of ``config`` would not find cached.

    Run it in every ``torchrun`` process (or alone). Rank 0 opens the store and converts packaged
    weights before the other ranks do, so they never race on a fresh file.

    Args:
        config: The cycle's settings; only dataset, backbone, pretrained, image_size, batch_size,
            workers, device and seed matter here.
        db: Database URL (None: ``LABELMEND_DB`` or SQLite under ``LABELMEND_HOME``).
        progress: Rank 0's progress (fraction of its block in [0, 1], message); ignored on other ranks.

    Raises:
        StoreError: the dataset does not exist.
        HomeError: ``LABELMEND_HOME`` cannot be written.
    """
    with process_group(config.device) as info:
        with main_first(info):
            store = open_store(db)
            data = _load(store, config.dataset)
            cache_dir = store.home / "cache"
            with writing_home(store.home):
                weights = resolve_weights(config, cache_dir)
        model = feature_backbone(config.backbone, data.n_classes, weights, seed=config.seed)
        with writing_home(store.home):
            result = embed_images_sharded(
                model,
                ImageSource(data.image_root, tuple(data.external_ids), tuple(data.paths)),  # as Scorer.source
                cache_dir,
                info,
                backbone=config.backbone,
                image_size=config.image_size,
                normalize=config.pretrained.normalizes_inputs,
                batch_size=config.batch_size,
                num_workers=config.workers,
                flush_seconds=EMBED_FLUSH_S,
                on_progress=progress if info.is_main else None,
            )
    return EmbedSummary(
        rank=result.rank,
        world_size=result.world_size,
        images=data.n_images,
        cached=result.cached,
        computed=result.computed_total,
        skipped=result.skipped,
        folder=result.cache.folder,
        complete=result.complete,
        seconds=result.seconds,
    )


def _load(store: Store, dataset: str) -> DatasetArrays:
    with store.read() as s:
        return load_dataset(s, get_dataset(s, dataset))


__all__ = ["EmbedSummary", "embed_dataset"]
