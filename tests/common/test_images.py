"""``IMAGE_SUFFIXES``: one list, and Pillow here opens every format on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from common.images import IMAGE_SUFFIXES


def test_suffixes_are_lower_case_with_the_dot() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"} == IMAGE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)


@pytest.mark.parametrize("suffix", sorted(IMAGE_SUFFIXES))
def test_pillow_writes_and_reads_every_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    Image.new("RGB", (5, 3), (10, 200, 30)).save(path)
    with Image.open(path) as img:
        img.load()
        assert img.size == (5, 3)


def test_the_folder_scan_and_predict_use_the_same_list() -> None:
    from db.io import images as db_images

    assert db_images.IMAGE_SUFFIXES is IMAGE_SUFFIXES
