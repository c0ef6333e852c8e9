"""The one list of image file suffixes the tool reads (folder scans, imports, prediction)."""

from __future__ import annotations

#: Lower-case suffixes, dot included, of the files taken as images when a folder is scanned
#: (compare with ``Path(name).suffix.lower()``); files with other suffixes are not looked at.
#: Each is a format Pillow opens here: JPEG, PNG, WebP, BMP, TIFF.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

__all__ = ["IMAGE_SUFFIXES"]
