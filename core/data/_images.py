"""Reading one image safely: path confinement, decompression-bomb and corruption checks, any mode → RGB."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: Background that transparent pixels are composited onto (white).
_BACKGROUND = (255, 255, 255)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class ImageError(ValueError):
    """An image could not be used; the message is the one-line reason recorded in the ``SkipLog``."""


def resolve_in_root(root: Path, relative: str | os.PathLike[str]) -> Path:
    """Resolve ``root / relative`` (following symlinks) and require it to stay under ``root``.

    Args:
        root: The image root folder.
        relative: A path relative to the root.

    Returns:
        The resolved absolute path.

    Raises:
        ImageError: The path resolves outside the root (``..``, an absolute path, or a symlink).
    """
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise ImageError(f"path {str(relative)!r} resolves outside the image root")
    return target


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    16-bit and 32-bit integer greyscale (``I;16*``, ``I``) are scaled to 0-255, not clipped; float
    (``F``) is read as 0-1 when its maximum is at most 1, else as 0-255; transparent pixels (RGBA,
    LA, palette with transparency) are composited onto white; CMYK, palette, 1-bit, L and others use
    Pillow's conversion.

    Args:
        image: A loaded Pillow image of any mode.

    Returns:
        An ``RGB`` image of the same size.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES or mode in {"I", "F"}:
        arr = np.asarray(image).astype(np.float64)
        if mode in _SIXTEEN_BIT_MODES:
            arr = arr / 257.0
        elif mode == "I":
            arr = np.clip(arr, 0, 65535)
            if arr.max(initial=0) > 255:
                arr = arr / 257.0
        elif np.nanmax(arr, initial=0.0) <= 1.0:
            arr = arr * 255.0
        grey = np.clip(np.nan_to_num(np.rint(arr)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(root: Path, relative: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image.Image:
    """Read one image safely and return it as RGB.

    Args:
        root: The image root folder.
        relative: The file's path relative to ``root``.
        max_pixels: Refuse images with more pixels (width × height) than this; ``None`` uses
            Pillow's ``Image.MAX_IMAGE_PIXELS`` (about 89 Mpx). Pillow's decompression-bomb warning is
            treated as an error either way, so this can lower the limit but not raise it.

    Returns:
        The decoded image, EXIF orientation applied, mode ``RGB``.

    Raises:
        ImageError: Outside the root, missing, empty, not an image, corrupt, truncated or too large;
            the message is a one-line reason.
    """
    path = resolve_in_root(root, relative)
    if not path.is_file():
        raise ImageError("missing file")
    if path.stat().st_size == 0:
        raise ImageError("empty file (0 bytes)")
    limit = max_pixels if max_pixels is not None else Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if limit is not None and image.width * image.height > limit:
                    raise ImageError(
                        f"too large ({image.width}x{image.height} px > {limit} px; decompression bomb?)"
                    )
                image.load()
                oriented = ImageOps.exif_transpose(image)
                return to_rgb(oriented if oriented is not None else image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"decompression bomb refused ({err})") from err
    except Exception as err:
        # Pillow signals malformed files with many exception types (OSError, SyntaxError, ValueError,
        # struct.error, EOFError, …); every one of them means "this file is unusable" here.
        message = str(err).splitlines()[0][:160] if str(err) else ""
        raise ImageError(f"unreadable image ({type(err).__name__}: {message})") from err
