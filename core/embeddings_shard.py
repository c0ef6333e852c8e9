"""Embedding extraction sharded over processes (``torchrun``: GPUs, nodes, or CPU processes on gloo).

Every rank runs :func:`embed_images_sharded` with the same model and images; the steps::

    rank 0       merge shards a killed run left (EmbeddingCache.merge_shards)
    all          barrier; read the ids the cache lacks (source order); check every rank read the same
    rank r       embed its contiguous block of those ids into <cache folder>/shards/rank-<r>/
                 (its own cache files: no rank writes another's; flushed every flush_seconds)
    all          gather counts and unreadable images (a barrier)
    rank 0       merge the shards in rank order into the cache, delete them
    all          barrier; return

The cache stays one append-only float16 memory map (:class:`core.embeddings.EmbeddingCache`); a
single process (``world_size`` 1) writes it directly. A rank killed midway leaves its shard valid
up to its last flush; the next run (sharded, or any :func:`core.embeddings.embed_images`, e.g. the
cycle's features stage) merges it first, so only ids no shard holds are computed again, split
over the new run's ranks. Shared folders (several nodes) need ``flock`` to work on that file system.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from torch import nn

from common.progress import Progress
from core.data import ImageSource
from core.embeddings import EmbeddingCache, embedding_key, fill_cache
from core.models import feature_dim
from core.train._distributed import DistInfo, barrier, gather_objects, setup, teardown

logger = logging.getLogger(__name__)

__all__ = [
    "DistInfo",
    "ShardedEmbedding",
    "embed_images_sharded",
    "main_first",
    "process_group",
    "shard_part",
]


@contextlib.contextmanager
def process_group(device: str) -> Iterator[DistInfo]:
    """Join the process group ``torchrun`` set up (world size 1 without it) and leave it afterwards.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, … (``core.device.select_device``); under
            torchrun on CUDA each rank takes ``cuda:<LOCAL_RANK>`` and the group uses NCCL, else gloo.
    """
    info = setup(device)
    try:
        yield info
    finally:
        teardown(info)


@contextlib.contextmanager
def main_first(info: DistInfo) -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (e.g. open a store, convert weights).

    A rank-0 failure inside the block makes ``torchrun`` stop the others (they wait at the barrier).
    """
    if not info.is_main:
        barrier(info)
    yield
    if info.is_main:
        barrier(info)


def shard_part(ids: Sequence[str], rank: int, world_size: int) -> list[str]:
    """Rank ``rank``'s contiguous block of ``ids``; blocks differ in size by at most one.

    Concatenated in rank order, the blocks are ``ids`` again, so merged shards keep source order.

    >>> [shard_part(list("abcde"), r, 2) for r in range(2)]
    [['a', 'b'], ['c', 'd', 'e']]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"rank must be in [0, world_size) with world_size ≥ 1, got rank {rank} of {world_size}"
        )
    n = len(ids)
    return list(ids[n * rank // world_size : n * (rank + 1) // world_size])


@dataclass
class ShardedEmbedding:
    """What one rank's :func:`embed_images_sharded` call did (the totals are the same on every rank).

    Attributes:
        rank, world_size: This process's place in the job.
        assigned: How many ids this rank was given (its block of the cache's missing ids).
        computed: How many images this rank ran through the backbone.
        computed_total: The same, summed over ranks.
        merged: Rows rank 0 merged from the shards into the cache (over ranks: the same number).
        cached: How many of the source's images the cache holds at the end.
        skipped: Image id → reason, for unreadable images of every rank (not cached; retried next run).
        complete: False when ``should_stop`` ended some rank early.
        cache: The merged cache.
        seconds: Wall time of the call.
    """

    rank: int
    world_size: int
    assigned: int
    computed: int
    computed_total: int
    merged: int
    cached: int
    skipped: dict[str, str]
    complete: bool
    cache: EmbeddingCache
    seconds: float


def embed_images_sharded(
    model: nn.Module,
    source: ImageSource,
    cache_dir: str | os.PathLike[str],
    info: DistInfo,
    *,
    backbone: str,
    image_size: int,
    normalize: bool = False,
    batch_size: int = 64,
    num_workers: int = 0,
    amp: bool | None = None,
    dtype: str = "float16",
    max_pixels: int | None = None,
    flush_seconds: float = 30.0,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ShardedEmbedding:
    """Fill the embedding cache of ``model`` for every image of ``source``, the work split over ranks.

    Called by every rank of the group (:func:`process_group`) with the same ``model`` weights, images
    and settings; the cache is the one :func:`core.embeddings.embed_images` reads with those settings.
    Rank r writes only ``<cache folder>/shards/rank-<r>/`` (data.bin: its (R_r, D) rows in the cache
    dtype, float16 by default; index.npy: their R_r ids); rank 0 alone writes the cache itself.

    Args:
        model: The frozen timm backbone, identical on every rank (checked through the cache key).
        source: The images, identical on every rank.
        cache_dir: Root cache folder (``$LABELMEND_HOME/cache``), shared by every rank.
        info: This process's rank, world size and device (:func:`process_group`).
        backbone, image_size, normalize, batch_size, num_workers, amp, dtype, max_pixels,
            flush_seconds: As in :func:`core.embeddings.embed_images`.
        on_progress: (fraction of this rank's block in [0, 1], message) after each batch; pass it
            on one rank only.
        should_stop: Polled after each batch on this rank; True stops it early (its rows are kept).

    Returns:
        This rank's :class:`ShardedEmbedding`.

    Raises:
        ValueError: The ranks built different backbones, or read different cache states (another
            process wrote the cache meanwhile); nothing is lost, run again.
    """
    started = time.perf_counter()
    key = embedding_key(model, backbone=backbone, image_size=image_size, normalize=normalize)
    cache = EmbeddingCache(cache_dir, key, feature_dim(model), dtype=dtype)
    if len(set(gather_objects(info, key.digest()))) > 1:
        raise ValueError(
            f"ranks built different {backbone} backbones (cache keys differ); give every rank the same "
            "weights and seed"
        )
    if info.is_main:
        cache.merge_shards()  # rows of a killed run: hits from now on
    barrier(info)
    missing = cache.missing(list(source.ids))
    fingerprint = hashlib.sha256("\n".join(missing).encode()).hexdigest()
    if len(set(gather_objects(info, fingerprint))) > 1:
        raise ValueError(f"{cache.folder}: the cache changed while the ranks read it; run again")
    part = shard_part(missing, info.rank, info.world_size)
    row_of = {image_id: row for row, image_id in enumerate(source.ids)}
    subset = source.subset([row_of[i] for i in part])
    fill_args = {
        "image_size": image_size,
        "normalize": normalize,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "device": info.device,
        "amp": amp,
        "max_pixels": max_pixels,
        "flush_seconds": flush_seconds,
        "on_progress": on_progress,
        "should_stop": should_stop,
    }
    if info.distributed:
        with cache.writing_shard(info.rank) as shard:
            fill = fill_cache(model, subset, shard, **fill_args)
    else:
        fill = fill_cache(model, subset, cache, **fill_args)
    reports = gather_objects(info, (fill.computed, fill.complete, fill.skipped.as_dict()))
    merged = cache.merge_shards() if info.is_main and info.distributed else 0
    merged = sum(gather_objects(info, merged))
    skipped: dict[str, str] = {}
    for _, _, rank_skipped in reports:
        skipped.update(rank_skipped)
    cached = int((cache.rows(list(source.ids)) >= 0).sum())
    logger.info(
        "rank %d/%d: %d of %d assigned images embedded; cache holds %d of %d",
        info.rank,
        info.world_size,
        fill.computed,
        len(part),
        cached,
        len(source),
    )
    return ShardedEmbedding(
        rank=info.rank,
        world_size=info.world_size,
        assigned=len(part),
        computed=fill.computed,
        computed_total=sum(r[0] for r in reports),
        merged=merged,
        cached=cached,
        skipped=skipped,
        complete=all(r[1] for r in reports),
        cache=cache,
        seconds=time.perf_counter() - started,
    )
