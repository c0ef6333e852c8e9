"""Scanning an image folder: ids, paths relative to the root, and sizes from the file header.

Only the header is read (``PIL.Image.open`` is lazy), never the pixels, so scanning is fast.
Files are taken in sorted order (deterministic ids). Never followed or registered: symbolic
links that lead outside the root, linked folders, hidden files. Files Pillow cannot identify
(zero bytes, not an image, decompression bombs) are skipped with a reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from PIL import Image as PILImage

from common.images import IMAGE_SUFFIXES
from db.io._report import ProgressFn

log = logging.getLogger(__name__)

IdFrom = Literal["stem", "relpath"]


@dataclass(frozen=True)
class FoundImage:
    """One image file: ``path`` is POSIX and relative to the root; sizes in px (None if unread)."""

    external_id: str
    path: str
    width: int | None
    height: int | None

    def record(self) -> tuple[str, str, int | None, int | None]:
        return self.external_id, self.path, self.width, self.height


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) in px from the file header, without decoding pixels.

    Raises:
        OSError: not an image Pillow can identify (including zero-byte files).
        PIL.Image.DecompressionBombError: more than twice ``PIL.Image.MAX_IMAGE_PIXELS``.
    """
    with PILImage.open(path) as im:
        return int(im.size[0]), int(im.size[1])


def resolve_inside(root: Path, relative: str) -> Path:
    """The real path of ``root / relative``, refusing anything that ends up outside ``root``.

    Raises:
        ValueError: ``relative`` is absolute, climbs out with ``..``, or is a link leading outside.
    """
    rel = PurePosixPath(relative.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"image path {relative!r} is outside the image folder")
    base = root.resolve()
    real = (base / rel).resolve()
    if real != base and base not in real.parents:
        raise ValueError(f"image path {relative!r} leads outside the image folder (via a link)")
    return real


class ImageScan:
    """Iterate over the image files under ``root`` (recursively, sorted).

    Args:
        root: the image folder.
        id_from: ``"stem"`` = external id is the file name without extension (OpenImages
            ``<ImageID>.jpg``); ``"relpath"`` = the relative path without extension (``a/b``).
        read_size: read width/height from each header (False leaves them None).

    Attributes:
        skipped: ``(relative path, reason)`` of files not registered, filled while iterating.
        n_seen: number of candidate image files looked at so far.
    """

    def __init__(self, root: Path, *, id_from: IdFrom = "stem", read_size: bool = True) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
        self.root = root
        self.real_root = root.resolve()
        self.id_from = id_from
        self.read_size = read_size
        self.skipped: list[tuple[str, str]] = []
        self.n_seen = 0

    def __iter__(self) -> Iterator[FoundImage]:
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for d in list(dirnames):
                if (base / d).is_symlink():
                    self._skip(base / d, "a linked folder is not followed")
                    dirnames.remove(d)
            for name in sorted(filenames):
                if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                found = self._one(base / name)
                if found is not None:
                    yield found

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _skip(self, path: Path, reason: str) -> None:
        rel = self._rel(path)
        log.warning("skipping image %s: %s", rel, reason)
        self.skipped.append((rel, reason))

    def _one(self, path: Path) -> FoundImage | None:
        self.n_seen += 1
        rel = self._rel(path)
        if path.is_symlink():
            real = path.resolve()
            if self.real_root not in real.parents:
                self._skip(path, "symbolic link points outside the image folder")
                return None
        width = height = None
        if self.read_size:
            try:
                width, height = image_size(path)
            except PILImage.DecompressionBombError as err:
                self._skip(path, f"too many pixels for a safe decode ({err})")
                return None
            except (OSError, SyntaxError, ValueError) as err:
                self._skip(path, f"not a readable image ({type(err).__name__})")
                return None
        pure = PurePosixPath(rel)
        ext_id = pure.stem if self.id_from == "stem" else str(pure.with_suffix(""))
        return FoundImage(ext_id, rel, width, height)


def scan_with_progress(scan: ImageScan, progress: ProgressFn | None) -> Iterator[FoundImage]:
    """Iterate ``scan``, reporting ``("images", files so far, None)`` every 500 files."""
    for n, found in enumerate(scan, 1):
        if progress is not None and n % 500 == 0:
            progress("images", n, None)
        yield found


__all__ = [
    "IMAGE_SUFFIXES",
    "FoundImage",
    "IdFrom",
    "ImageScan",
    "image_size",
    "resolve_inside",
    "scan_with_progress",
]
