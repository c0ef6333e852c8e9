"""On-disk cache of pooled backbone embeddings, memory-mapped and keyed by image id.

One cache folder per (backbone, weights fingerprint, image size, eval transform) under
``<cache_dir>/embeddings/``::

    meta.json     the key, D and the storage dtype (written once)
    data.bin      row-major (R, D) vectors, appended in place
    index.npy     the R image ids, row i ↔ data row i (replaced atomically after each append)
    .lock         flock'ed by writers
    .merge.lock   flock'ed while shards are merged
    shards/rank-<r>/  one process's part of a sharded extraction (:mod:`core.embeddings_shard`):
                  a cache of the same layout and dtype, written only by rank r, flock'ed on
                  ``.active`` while it writes

Rows are only ever appended, and the index is replaced (:mod:`common.atomic`) only after the
rows are written and fsync'ed, so a reader never sees a row that is not complete and a writer killed
mid-append leaves a valid cache (its partial rows are overwritten by the next append). Next time,
only images whose ids are not in the index are computed.

:meth:`EmbeddingCache.merge_shards` appends every shard no process is writing to the cache (one
append, so one index write, per shard), then removes it; it runs after a sharded extraction and
at the start of :func:`embed_images`, so rows of a killed rank are never lost nor computed twice.
A merge killed midway leaves a valid cache and the shard in place; merging it again adds only the
rows the cache lacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.atomic import atomic_open, atomic_write_bytes
from common.progress import Progress
from core.data import ImageDataset, ImageSource, SkipLog, create_loader, create_transform_for, data_config_for
from core.device import select_device
from core.models import classifier_names, feature_dim, pooled_features, weights_fingerprint

try:  # POSIX advisory locks; elsewhere writers are not serialised across processes.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = [
    "EmbeddingCache",
    "EmbeddingKey",
    "EmbeddingSet",
    "FillResult",
    "embed_images",
    "embedding_key",
    "fill_cache",
]

_FORMAT_VERSION = 1
_DTYPES = {"float16": np.float16, "float32": np.float32}
_SHARDS = "shards"
_SHARD_PREFIX = "rank-"
_WRITE_ROWS = 16384  # rows converted and written per chunk by append (bounds its memory)


@dataclass(frozen=True)
class EmbeddingKey:
    """What the embeddings depend on; two keys are equal exactly when the vectors would be.

    Attributes:
        backbone: timm model name.
        weights: SHA-256 of the backbone weights (classifier head excluded).
        image_size: Square input size in px.
        transform: Canonical JSON of the eval data config (interpolation, crop, mean/std).
    """

    backbone: str
    weights: str
    image_size: int
    transform: str

    def digest(self) -> str:
        """16 hex characters identifying the key."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def folder_name(self) -> str:
        """Readable, filesystem-safe folder name: ``<backbone>-<size>px-<digest>``."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.backbone)[:60]
        return f"{safe}-{self.image_size}px-{self.digest()}"


def embedding_key(model: nn.Module, *, backbone: str, image_size: int, normalize: bool) -> EmbeddingKey:
    """The cache key for ``model``'s pooled features at ``image_size``.

    Args:
        model: A timm model.
        backbone: Its timm name.
        image_size: Square input size in px.
        normalize: Whether inputs are mean/std normalised (see ``core.data.data_config_for``).

    Returns:
        The key (hashes the weights: about 0.3 s per 100 MB of parameters).
    """
    cfg = data_config_for(model, image_size=image_size, normalize=normalize)
    transform = json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}, sort_keys=True
    )
    weights = weights_fingerprint(model, exclude_prefixes=classifier_names(model))
    return EmbeddingKey(backbone=backbone, weights=weights, image_size=image_size, transform=transform)


class EmbeddingCache:
    """Append-only, memory-mapped store of (R, D) vectors keyed by image id.

    Args:
        cache_dir: Root cache folder (the app passes ``$LABELMEND_HOME/cache``).
        key: What the vectors depend on; it picks the sub-folder.
        dim: D, the vector width.
        dtype: Storage dtype, ``"float16"`` (default, half the disk) or ``"float32"``.
        folder: The cache's own folder, instead of ``<cache_dir>/embeddings/<key folder>`` (the
            shards of :meth:`shard` live inside their cache's folder).

    Raises:
        ValueError: The folder exists with another D or dtype (a corrupted or foreign cache).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        key: EmbeddingKey,
        dim: int,
        *,
        dtype: str = "float16",
        folder: Path | None = None,
    ):
        if dtype not in _DTYPES:
            raise ValueError(f"embedding dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if dim < 1:
            raise ValueError(f"embedding dim must be at least 1, got {dim}")
        self.key = key
        self.dim = dim
        self.dtype = np.dtype(_DTYPES[dtype])
        self._dtype_name = dtype
        self.folder = (
            Path(folder) if folder is not None else Path(cache_dir) / "embeddings" / key.folder_name()
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        self._data_path = self.folder / "data.bin"
        self._index_path = self.folder / "index.npy"
        self._ids: np.ndarray = np.zeros(0, dtype="<U1")
        self._rows: dict[str, int] = {}
        self._index_stamp: tuple[int, int] | None = None
        self._check_meta(dtype)
        self._refresh()

    def _check_meta(self, dtype: str) -> None:
        meta_path = self.folder / "meta.json"
        meta = {"version": _FORMAT_VERSION, "dim": self.dim, "dtype": dtype, **dataclasses.asdict(self.key)}
        if meta_path.exists():
            saved = json.loads(meta_path.read_text())
            if saved.get("dim") != self.dim or saved.get("dtype") != dtype:
                raise ValueError(
                    f"{meta_path}: cache holds dim {saved.get('dim')} {saved.get('dtype')}, asked for "
                    f"{self.dim} {dtype}; delete the folder to rebuild it"
                )
            return
        try:
            atomic_write_bytes(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())
        except OSError as err:
            raise _with_path(err, meta_path) from err

    def _refresh(self) -> None:
        try:
            stat = self._index_path.stat()
        except FileNotFoundError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._index_stamp:
            return
        ids = np.load(self._index_path, allow_pickle=False)
        self._ids = ids
        self._rows = {str(image_id): row for row, image_id in enumerate(ids.tolist())}
        self._index_stamp = stamp

    def __len__(self) -> int:
        self._refresh()
        return len(self._ids)

    def __contains__(self, image_id: object) -> bool:
        self._refresh()
        return image_id in self._rows

    @property
    def ids(self) -> list[str]:
        """The cached image ids, in row order."""
        self._refresh()
        return [str(i) for i in self._ids.tolist()]

    def missing(self, image_ids: Sequence[str]) -> list[str]:
        """The ids of ``image_ids`` not in the cache, in the given order."""
        self._refresh()
        return [i for i in image_ids if i not in self._rows]

    def rows(self, image_ids: Sequence[str]) -> np.ndarray:
        """(N,) int64 row of each id in the store; -1 where the id is not cached."""
        self._refresh()
        return np.fromiter((self._rows.get(i, -1) for i in image_ids), dtype=np.int64, count=len(image_ids))

    def memmap(self) -> np.ndarray:
        """The whole store, (R, D) in the storage dtype, memory-mapped read-only (no copy)."""
        self._refresh()
        count = len(self._ids)
        if count == 0:
            return np.zeros((0, self.dim), dtype=self.dtype)
        return np.memmap(self._data_path, dtype=self.dtype, mode="r", shape=(count, self.dim))

    def read(self, image_ids: Sequence[str], *, dtype: np.dtype | type = np.float32) -> np.ndarray:
        """Vectors of ``image_ids`` in that order, copied out of the memory map.

        Args:
            image_ids: Ids that are all cached.
            dtype: Result dtype (float32 by default).

        Returns:
            (N, D) array.

        Raises:
            KeyError: Some id is not cached (the message names the first few).
        """
        rows = self.rows(image_ids)
        absent = [image_ids[i] for i in np.flatnonzero(rows < 0)[:5]]
        if absent:
            raise KeyError(f"not in the embedding cache: {', '.join(absent)}; compute them with embed_images")
        store = self.memmap()
        if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            return np.asarray(store[rows[0] : rows[0] + len(rows)], dtype=dtype)
        return np.asarray(store[rows], dtype=dtype)

    def append(self, image_ids: Sequence[str], vectors: np.ndarray) -> int:
        """Add vectors for new ids (ids already cached are ignored); safe against concurrent writers.

        Args:
            image_ids: M ids.
            vectors: (M, D) array, any float dtype (stored as the cache's dtype).

        Returns:
            How many rows were added.

        Raises:
            ValueError: ``vectors`` does not have shape (M, D).
        """
        vectors = np.asarray(vectors)
        if vectors.shape != (len(image_ids), self.dim):
            raise ValueError(f"vectors must have shape ({len(image_ids)}, {self.dim}), got {vectors.shape}")
        with self._locked():
            self._refresh()
            keep: list[int] = []
            seen: set[str] = set()
            for j, image_id in enumerate(image_ids):
                if image_id not in self._rows and image_id not in seen:
                    seen.add(image_id)
                    keep.append(j)
            keep_ids = [image_ids[j] for j in keep]
            if not keep:
                return 0
            offset = len(self._ids) * self.dim * self.dtype.itemsize
            mode = "r+b" if self._data_path.exists() else "w+b"
            whole = len(keep) == len(image_ids)  # a memory map (a shard) is read in order, not gathered
            try:
                with open(self._data_path, mode) as handle:
                    handle.seek(offset)
                    for start in range(0, len(keep), _WRITE_ROWS):
                        stop = min(start + _WRITE_ROWS, len(keep))
                        rows = vectors[start:stop] if whole else vectors[keep[start:stop]]
                        handle.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
                    handle.truncate()
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as err:  # e.g. disk full: the rows past the index are never read
                raise _with_path(err, self._data_path) from err
            new_ids = np.asarray([*self._ids.tolist(), *keep_ids], dtype=str)
            try:
                with atomic_open(self._index_path, "wb") as handle:
                    np.save(handle, new_ids, allow_pickle=False)
            except OSError as err:
                raise _with_path(err, self._index_path) from err
            self._index_stamp = None
            self._refresh()
        return len(keep_ids)

    @contextlib.contextmanager
    def writing_shard(self, rank: int) -> Iterator[EmbeddingCache]:
        """Hold rank ``rank``'s shard for writing: a cache of this one's key, D and dtype.

        The shard's folder is ``<folder>/shards/rank-<rank>``. While the block runs, the shard's
        ``.active`` file is flock'ed, so :meth:`merge_shards` leaves it alone; the lock dies with
        the process, so a killed rank's shard is merged by the next merge.

        Args:
            rank: The writing process's global rank (0 ≤ rank); one writer per rank at a time.

        Yields:
            The shard (append to it, read it; merge it into this cache after the block).
        """
        if rank < 0:
            raise ValueError(f"shard rank must be at least 0, got {rank}")
        folder = self.folder / _SHARDS / f"{_SHARD_PREFIX}{rank}"
        with _held(folder):
            yield EmbeddingCache(self.folder, self.key, self.dim, dtype=self._dtype_name, folder=folder)

    def merge_shards(self) -> int:
        """Append the rows of every shard that no process is writing, then delete those shards.

        Shards are merged in rank order (rows keep their order within a shard); ids this cache
        already holds are skipped. Each shard is one :meth:`append` (one index write), streamed from
        its memory map in chunks. Killed midway, the cache stays valid and the shard stays in place
        until its rows are all in; it is then renamed out of the way and deleted.

        Returns:
            How many rows were added.
        """
        root = self.folder / _SHARDS
        if not root.is_dir():
            return 0
        added = 0
        with self._locked(".merge.lock"):
            for left in root.glob(".merged-*"):  # deletions a killed merge did not finish
                shutil.rmtree(left, ignore_errors=True)
            folders = [p for p in root.glob(f"{_SHARD_PREFIX}*") if p.name[len(_SHARD_PREFIX) :].isdigit()]
            for folder in sorted(folders, key=lambda p: int(p.name[len(_SHARD_PREFIX) :])):
                with _held(folder, wait=False) as free:
                    if not free:
                        logger.info("%s: a process is writing it; merged later", folder)
                        continue
                    shard = EmbeddingCache(
                        self.folder, self.key, self.dim, dtype=self._dtype_name, folder=folder
                    )
                    ids = shard.ids
                    if ids:
                        added += self.append(ids, shard.memmap())
                    gone = root / f".merged-{folder.name}-{os.getpid()}"
                    os.replace(folder, gone)
                shutil.rmtree(gone, ignore_errors=True)
        if added:
            logger.info("merged %d embedding row(s) from shards into %s", added, self.folder)
        return added

    @contextlib.contextmanager
    def _locked(self, name: str = ".lock") -> Iterator[None]:
        with open(self.folder / name, "a+b") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _held(folder: Path, *, wait: bool = True) -> Iterator[bool]:
    """flock ``folder/.active`` (created with the folder); yields False if busy and ``wait`` is off.

    A merge may rename the folder away between our open and our lock; then the lock is on a file
    that is no longer there, so we take it again on a fresh folder.
    """
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ".active"
        with open(path, "a+b") as handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
            try:
                current = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                yield True
                return
            if not wait:  # merged and removed by another process meanwhile: nothing to do
                yield False
                return


def _with_path(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path`` (a failed ``write`` on an open file carries no file name)."""
    if err.filename is not None:
        return err
    return type(err)(err.errno, err.strerror, str(path)) if err.errno is not None else err


@dataclass
class EmbeddingSet:
    """Embeddings of the usable images of an ``ImageSource``.

    Attributes:
        embeddings: (M, D) float32 (or the cache's dtype, see ``out_dtype``), row j ↔ image
            ``indices[j]`` of the source.
        indices: (M,) int64 row numbers into the source (images skipped or not computed are absent);
            use ``targets[indices]`` to align labels.
        ids: The M image ids.
        skipped: Image id → reason for images that could not be read.
        computed: How many images were run through the backbone in this call (the rest were cached).
        complete: False when ``should_stop`` ended the call before every image was embedded.
        cache: The cache holding the vectors.
        seconds: Wall time of the call.
    """

    embeddings: np.ndarray
    indices: np.ndarray
    ids: list[str]
    skipped: dict[str, str]
    computed: int
    complete: bool
    cache: EmbeddingCache
    seconds: float


@dataclass
class FillResult:
    """What :func:`fill_cache` did.

    Attributes:
        computed: How many images were run through the backbone (and appended to the cache).
        skipped: The images that could not be read, with the reasons (not cached; retried next time).
        complete: False when ``should_stop`` ended the call before every image was embedded.
    """

    computed: int
    skipped: SkipLog
    complete: bool


def fill_cache(
    model: nn.Module,
    source: ImageSource,
    cache: EmbeddingCache,
    *,
    image_size: int,
    normalize: bool = False,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device,
    amp: bool | None = None,
    max_pixels: int | None = None,
    flush_seconds: float = 30.0,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FillResult:
    """Embed the images of ``source`` whose ids ``cache`` lacks, appending them as they are computed.

    ``cache`` must be keyed for ``model`` at ``image_size`` / ``normalize`` (see :func:`embedding_key`);
    it may be a shard (:meth:`EmbeddingCache.writing_shard`). Arguments as in :func:`embed_images`,
    except ``device``, already resolved.
    """
    row_of = {image_id: row for row, image_id in enumerate(source.ids)}
    todo = [row_of[i] for i in cache.missing(list(source.ids))]
    skipped = SkipLog()
    computed = 0
    complete = True
    if not todo:
        return FillResult(computed=0, skipped=skipped, complete=True)
    logger.info(
        "embedding %d new image(s) at %d px into %s (%d cached)",
        len(todo),
        image_size,
        cache.folder,
        len(source) - len(todo),
    )
    use_amp = device.type == "cuda" if amp is None else amp
    transform = create_transform_for(model, image_size=image_size, is_training=False, normalize=normalize)
    subset = source.subset(todo)
    loader = create_loader(
        ImageDataset(subset, None, transform, max_pixels=max_pixels),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    was_training = model.training
    model.eval().to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    pending_ids: list[str] = []
    pending: list[np.ndarray] = []
    last_flush = time.perf_counter()
    try:
        for b, batch in enumerate(loader):
            skipped.update(batch.skipped)
            if len(batch.indices):
                images = batch.images.to(device, non_blocking=True)
                if device.type == "cuda":
                    images = images.contiguous(memory_format=torch.channels_last)
                with (
                    torch.inference_mode(),
                    torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp),
                ):
                    feats = pooled_features(model, images)
                pending.append(feats.float().cpu().numpy())
                pending_ids.extend(subset.ids[i] for i in batch.indices.tolist())
                computed += len(batch.indices)
            if pending and time.perf_counter() - last_flush >= flush_seconds:
                cache.append(pending_ids, np.concatenate(pending))
                pending, pending_ids = [], []
                last_flush = time.perf_counter()
            if on_progress is not None:
                on_progress((b + 1) / len(loader), f"embedding images: {computed}/{len(todo)}")
            if should_stop is not None and should_stop():
                complete = b + 1 == len(loader)
                break
    finally:
        if pending:
            cache.append(pending_ids, np.concatenate(pending))
        model.train(was_training)
    return FillResult(computed=computed, skipped=skipped, complete=complete)


def embed_images(
    model: nn.Module,
    source: ImageSource,
    cache_dir: str | os.PathLike[str],
    *,
    backbone: str,
    image_size: int,
    normalize: bool = False,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "auto",
    amp: bool | None = None,
    dtype: str = "float16",
    max_pixels: int | None = None,
    flush_seconds: float = 30.0,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    out_dtype: np.dtype | type | None = np.float32,
) -> EmbeddingSet:
    """Pooled embeddings of every image, computing only those not cached yet.

    Shards left by a killed sharded extraction (:mod:`core.embeddings_shard`) are merged first,
    so their rows count as cached.

    Args:
        model: The frozen timm backbone (its classifier is not used).
        source: The images.
        cache_dir: Root cache folder (e.g. ``$LABELMEND_HOME/cache``).
        backbone: The timm name of ``model`` (part of the cache key).
        image_size: Square input size in px.
        normalize: Mean/std normalisation of inputs (see ``core.data.data_config_for``).
        batch_size: Images per forward pass.
        num_workers: DataLoader worker processes.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, … (see ``core.device.select_device``).
        amp: bf16 autocast; ``None`` = on for CUDA, off otherwise.
        dtype: Storage dtype of a new cache, ``"float16"`` or ``"float32"``.
        max_pixels: See ``core.data.load_image``.
        flush_seconds: Append computed rows to the cache at least this often, in seconds (bounds the
            work lost when the process is killed; each append rewrites the id index).
        on_progress: Called with (fraction in [0, 1], message) after each batch.
        should_stop: Polled after each batch; True stops early (computed rows are kept).
        out_dtype: dtype of ``EmbeddingSet.embeddings``: float32 (default) or None for the cache's
            storage dtype (float16 by default: half the memory, no float32 copy at any point).

    Returns:
        An ``EmbeddingSet`` for the source's usable images, in source order.
    """
    started = time.perf_counter()
    dev = select_device(str(device)) if not isinstance(device, torch.device) else device
    key = embedding_key(model, backbone=backbone, image_size=image_size, normalize=normalize)
    cache = EmbeddingCache(cache_dir, key, feature_dim(model), dtype=dtype)
    cache.merge_shards()
    fill = fill_cache(
        model,
        source,
        cache,
        image_size=image_size,
        normalize=normalize,
        batch_size=batch_size,
        num_workers=num_workers,
        device=dev,
        amp=amp,
        max_pixels=max_pixels,
        flush_seconds=flush_seconds,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    rows = cache.rows(list(source.ids))
    indices = np.flatnonzero(rows >= 0).astype(np.int64)
    ids = [source.ids[i] for i in indices.tolist()]
    want = cache.dtype if out_dtype is None else np.dtype(out_dtype)
    embeddings = cache.read(ids, dtype=want) if ids else np.zeros((0, cache.dim), dtype=want)
    if len(fill.skipped):
        logger.warning("embedding: %s", fill.skipped.summary())
    return EmbeddingSet(
        embeddings=embeddings,
        indices=indices,
        ids=ids,
        skipped=fill.skipped.as_dict(),
        computed=fill.computed,
        complete=fill.complete,
        cache=cache,
        seconds=time.perf_counter() - started,
    )
