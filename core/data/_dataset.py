"""Images as a torch Dataset whose bad files become ``Skipped`` markers, and a loader that reports them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from core._validation import check_targets
from core.data._images import ImageError, load_image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSource:
    """Which images to read: ids and their file paths relative to one root folder.

    Attributes:
        root: Folder every image must lie under (after resolving symlinks).
        ids: N image ids, unique, in row order of the targets.
        paths: N file paths relative to ``root`` (same order as ``ids``).
    """

    root: Path
    ids: tuple[str, ...]
    paths: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "ids", tuple(str(i) for i in self.ids))
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))
        if len(self.ids) != len(self.paths):
            raise ValueError(
                f"ImageSource: {len(self.ids)} ids but {len(self.paths)} paths; give one path per id"
            )
        if len(set(self.ids)) != len(self.ids):
            seen: set[str] = set()
            dup = next(i for i in self.ids if i in seen or seen.add(i))
            raise ValueError(f"ImageSource: image id {dup!r} appears more than once; ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSource:
        """The images at ``indices`` (row numbers), in that order."""
        idx = [int(i) for i in indices]
        return ImageSource(self.root, tuple(self.ids[i] for i in idx), tuple(self.paths[i] for i in idx))


class Skipped(NamedTuple):
    """Returned by ``ImageDataset`` in place of a sample whose image could not be used."""

    index: int
    image_id: str
    reason: str


class Sample(NamedTuple):
    """One usable item: image (3, H, W) float32, target (C,) float32 in {1, 0, -1} or None, row index."""

    image: torch.Tensor
    target: torch.Tensor | None
    index: int


class Batch(NamedTuple):
    """A collated batch of the usable items of one DataLoader batch.

    Attributes:
        images: (B, 3, H, W) float32; B may be 0 when every item was skipped.
        targets: (B, C) float32 in {1, 0, -1}, or None for an unlabelled dataset.
        indices: (B,) int64 row numbers into the dataset.
        skipped: ``(image_id, reason)`` for each item dropped from this batch.
    """

    images: torch.Tensor
    targets: torch.Tensor | None
    indices: torch.Tensor
    skipped: tuple[tuple[str, str], ...]


class SkipLog:
    """Registry of skipped images: image id → one-line reason (the first reason seen is kept)."""

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}

    def add(self, image_id: str, reason: str) -> None:
        """Record that ``image_id`` was skipped because of ``reason``."""
        if image_id not in self._reasons:
            logger.warning("skipped image %s: %s", image_id, reason)
            self._reasons[image_id] = reason

    def update(self, items: Iterable[tuple[str, str]]) -> None:
        """Record several ``(image_id, reason)`` pairs, e.g. ``Batch.skipped``."""
        for image_id, reason in items:
            self.add(image_id, reason)

    def __len__(self) -> int:
        return len(self._reasons)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._reasons

    def __iter__(self) -> Iterator[str]:
        return iter(self._reasons)

    @property
    def ids(self) -> list[str]:
        """Skipped image ids in the order they were first seen."""
        return list(self._reasons)

    def as_dict(self) -> dict[str, str]:
        """A copy of image id → reason."""
        return dict(self._reasons)

    def summary(self, limit: int = 5) -> str:
        """One line, e.g. ``"3 images skipped: a (missing file), b (…), c (…)"``."""
        if not self._reasons:
            return "no images skipped"
        shown = ", ".join(f"{k} ({v})" for k, v in list(self._reasons.items())[:limit])
        more = f", … (+{len(self._reasons) - limit} more)" if len(self._reasons) > limit else ""
        return f"{len(self._reasons)} image(s) skipped: {shown}{more}"


class ImageDataset(Dataset):
    """Images (and optionally their partial labels) as a map-style torch Dataset.

    ``dataset[i]`` is a ``Sample`` or, when the image is unusable, a ``Skipped`` marker; use
    ``collate_skipping`` (``create_loader`` does) to drop markers and report them.

    Args:
        source: Image ids and paths under a root.
        targets: (N, C) int8 in {1, 0, -1} (``core.constants``), or None for unlabelled images.
        transform: Pillow RGB image → (3, H, W) float32 tensor.
        max_pixels: See ``load_image``.
    """

    def __init__(
        self,
        source: ImageSource,
        targets: np.ndarray | None,
        transform: Callable[[Image.Image], torch.Tensor],
        *,
        max_pixels: int | None = None,
    ) -> None:
        if targets is not None:
            targets = check_targets(targets)
            if targets.shape[0] != len(source):
                raise ValueError(
                    f"targets must have shape (N, C) with N = {len(source)} images, got {targets.shape}"
                )
        self.source = source
        self.targets = targets
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Sample | Skipped:
        image_id = self.source.ids[index]
        try:
            image = load_image(self.source.root, self.source.paths[index], max_pixels=self.max_pixels)
        except ImageError as err:
            return Skipped(index, image_id, str(err))
        tensor = self.transform(image)
        target = None if self.targets is None else torch.from_numpy(self.targets[index].astype(np.float32))
        return Sample(tensor, target, index)


def collate_skipping(items: Sequence[Sample | Skipped]) -> Batch:
    """Stack the usable samples of a batch and list the skipped ones.

    Args:
        items: What ``ImageDataset.__getitem__`` returned for each index of the batch.

    Returns:
        A ``Batch``; ``images`` has shape (0, 0, 0, 0) when every item was skipped.
    """
    samples = [item for item in items if isinstance(item, Sample)]
    skipped = tuple((item.image_id, item.reason) for item in items if isinstance(item, Skipped))
    if not samples:
        return Batch(torch.zeros(0, 0, 0, 0), None, torch.zeros(0, dtype=torch.int64), skipped)
    images = torch.stack([s.image for s in samples])
    targets = None if samples[0].target is None else torch.stack([s.target for s in samples])
    indices = torch.tensor([s.index for s in samples], dtype=torch.int64)
    return Batch(images, targets, indices, skipped)


def create_loader(
    dataset: ImageDataset,
    *,
    batch_size: int,
    shuffle: bool = False,
    num_workers: int = 0,
    sampler: Sampler[int] | Iterable[int] | None = None,
    pin_memory: bool = False,
    drop_last: bool = False,
    seed: int | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset`` that yields ``Batch`` objects and never stops on a bad image.

    Args:
        dataset: The images.
        batch_size: Items per batch before skipping.
        shuffle: Shuffle each epoch (ignored when ``sampler`` is given).
        num_workers: Worker processes for decoding (0 = in the main process).
        sampler: Index order, e.g. a ``DistributedSampler``.
        pin_memory: Pin host memory (set when training on CUDA).
        drop_last: Drop the last, incomplete batch.
        seed: Seed for the shuffling generator (reproducible order when given).

    Returns:
        The DataLoader.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=False,
    )


def validate_images(source: ImageSource, *, max_pixels: int | None = None) -> SkipLog:
    """Decode every image once and report the unusable ones (a pre-flight check for imports).

    Args:
        source: The images to check.
        max_pixels: See ``load_image``.

    Returns:
        A ``SkipLog`` of the images that would be skipped, with reasons.
    """
    log = SkipLog()
    for image_id, relative in zip(source.ids, source.paths, strict=True):
        try:
            load_image(source.root, relative, max_pixels=max_pixels)
        except ImageError as err:
            log.add(image_id, str(err))
    return log
