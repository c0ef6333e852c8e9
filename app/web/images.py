"""Serve dataset images safely: only files inside the dataset's image root, as cached JPEG bytes.

An image path from the store (relative to ``image_root``) is resolved with symlinks followed
(``os.path.realpath``) and must stay inside the real image root; ``../../etc/passwd``, an absolute
path or a symlink pointing outside are refused. Decoding problems (truncated, zero-byte, not an
image, a decompression bomb) are refused with a reason, never a crash. Rendered JPEGs are cached on
disk under ``LABELMEND_HOME/thumbs`` keyed by real path, size, mtime and box size.

:func:`show_image` serves only a tab that may see images (signed in, or single-person mode) and
only from the image root of the dataset selected in that tab, whatever root a page passes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageOps

from app.auth import Permission, PermissionDenied
from app.web import state
from app.web.components.text import md_escape
from common.atomic import atomic_write_bytes
from db.engine import labelmend_home

log = logging.getLogger(__name__)

#: Longest side in px of the large review image and of grid thumbnails.
LARGE_PX = 768
THUMB_PX = 224
JPEG_QUALITY = 85
_ROOT_KEY = "_image_root"  # (dataset name, its image root, time.monotonic() when read)


class ImageAccessError(ValueError):
    """An image that is not served: outside the root, missing, or not decodable. One-line reason."""


def resolve_inside(image_root: str | Path, rel_path: str) -> Path:
    """The real path of ``rel_path`` under ``image_root``, refusing anything that leaves the root.

    Raises:
        ImageAccessError: no image root, a path escaping the root (``..``, absolute, symlink), or
            no such file.
    """
    if not str(image_root).strip():
        raise ImageAccessError("the dataset has no image root; set one when importing")
    root = os.path.realpath(image_root)
    target = os.path.realpath(os.path.join(root, rel_path))
    if os.path.commonpath([root, target]) != root:
        raise ImageAccessError(f"image path {rel_path!r} points outside the dataset's image root; not served")
    if not os.path.isfile(target):
        raise ImageAccessError(f"image file {rel_path!r} is missing under {image_root}")
    return Path(target)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode (CMYK, 16-bit, float, palette, alpha) as 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        hi = float(arr.max()) if arr.size else 0.0
        arr = arr / hi * 255.0 if hi > 0 else arr
        img = Image.fromarray(arr.clip(0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return background
    return img.convert("RGB")


def render_jpeg(path: Path, max_px: int) -> bytes:
    """Decode ``path``, fit it in a ``max_px`` box (aspect kept, EXIF rotation applied) as JPEG bytes.

    Raises:
        ImageAccessError: not an image, truncated, or more pixels than Pillow's ``MAX_IMAGE_PIXELS``.
    """
    try:
        with Image.open(path) as img:
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and img.width * img.height > limit:
                raise ImageAccessError(
                    f"{path.name}: {img.width}×{img.height} = {img.width * img.height} px is more than "
                    f"{limit} pixels (Pillow's MAX_IMAGE_PIXELS); not decoded"
                )
            img.draft("RGB", (max_px, max_px))
            img.load()
            rgb = _to_rgb(ImageOps.exif_transpose(img))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        if isinstance(err, ImageAccessError):
            raise
        raise ImageAccessError(f"{path.name}: cannot be decoded ({err})") from None
    rgb.thumbnail((max_px, max_px))
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def thumbs_dir() -> Path:
    return labelmend_home() / "thumbs"


def image_jpeg(image_root: str | Path, rel_path: str, max_px: int = LARGE_PX) -> bytes:
    """JPEG bytes of a dataset image fitted in ``max_px``, from the disk cache when possible.

    Raises:
        ImageAccessError: see :func:`resolve_inside` and :func:`render_jpeg`.
    """
    path = resolve_inside(image_root, rel_path)
    stat = path.stat()
    digest = hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{max_px}".encode()).hexdigest()
    cached = thumbs_dir() / digest[:2] / f"{digest}.jpg"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    data = render_jpeg(path, max_px)
    try:  # no fsync: a cache entry lost in a crash is only rendered again
        atomic_write_bytes(cached, data, fsync=False)
    except OSError as err:  # a read-only or full LABELMEND_HOME only costs the cache
        log.warning("thumbnail cache not written (%s)", err)
    return data


def _selected_root() -> str | None:
    """The image root of the dataset selected in this tab (re-read every ``state.REFRESH_S`` s)."""
    name = st.session_state.get(state.DATASET_KEY)
    memo = st.session_state.get(_ROOT_KEY)
    now = time.monotonic()
    if memo is not None and memo[0] == name and now - memo[2] < state.REFRESH_S:
        return str(memo[1])
    ds = state.current_dataset(state.get_store())
    if ds is None:
        return None
    st.session_state[_ROOT_KEY] = (ds.name, ds.image_root, now)
    return ds.image_root


def check_may_see(image_root: str | Path) -> None:
    """Refuse unless this tab may see images and ``image_root`` is its selected dataset's root.

    Raises:
        PermissionDenied: not signed in (when sign-in is required), or the role may not see images.
        ImageAccessError: ``image_root`` is not the selected dataset's image root.
    """
    state.require_permission(Permission.VIEW_IMAGES)
    if str(image_root) != _selected_root():
        raise ImageAccessError("the image is not in the dataset selected in this tab; not served")


def show_image(
    image_root: str | Path, rel_path: str, *, max_px: int = LARGE_PX, caption: str | None = None
) -> bool:
    """Render a dataset image with ``st.image``, or a warning naming why it is not shown.

    Only for a tab that may see images, from the selected dataset's root (:func:`check_may_see`).

    Returns:
        True when the image was shown.
    """
    try:
        check_may_see(image_root)
        data = image_jpeg(image_root, rel_path, max_px)
    except PermissionDenied as err:
        st.warning(f"Image not shown: {md_escape(err)}", icon=":material/lock:")
        return False
    except ImageAccessError as err:
        st.warning(f"Image not shown: {md_escape(err)}", icon=":material/broken_image:")
        return False
    st.image(
        data,
        caption=md_escape(caption) if caption else None,
        width="stretch",
    )
    return True


__all__ = [
    "LARGE_PX",
    "THUMB_PX",
    "ImageAccessError",
    "check_may_see",
    "image_jpeg",
    "render_jpeg",
    "resolve_inside",
    "show_image",
    "thumbs_dir",
]
