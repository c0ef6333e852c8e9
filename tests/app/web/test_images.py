"""Image serving: only files inside the dataset root; odd or hostile files refused with a reason."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.web.images import ImageAccessError, image_jpeg, render_jpeg, resolve_inside, thumbs_dir


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 20), (200, 10, 10)).save(root / "sub" / "ok.jpg")
    (tmp_path / "secret.txt").write_text("not an image")
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    return root


def _decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_inside_root_is_served_and_cached(root: Path) -> None:
    data = image_jpeg(root, "sub/ok.jpg", max_px=16)
    img = _decoded(data)
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (16, 8))  # aspect kept, fits 16 px
    cached = list(thumbs_dir().rglob("*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == data
    assert image_jpeg(root, "sub/ok.jpg", max_px=16) == data


@pytest.mark.parametrize(
    "path", ["../secret.txt", "sub/../../outside.png", "/etc/passwd", "sub/../../../etc/passwd"]
)
def test_paths_leaving_the_root_are_refused(root: Path, path: str) -> None:
    with pytest.raises(ImageAccessError, match="outside the dataset's image root"):
        resolve_inside(root, path)


def test_symlink_pointing_outside_is_refused(root: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside.png", root / "sub" / "link.png")
    os.symlink(root / "sub" / "ok.jpg", root / "inner.jpg")
    with pytest.raises(ImageAccessError, match="outside"):
        image_jpeg(root, "sub/link.png")
    assert resolve_inside(root, "inner.jpg") == (root / "sub" / "ok.jpg").resolve()


def test_missing_file_and_missing_root(root: Path) -> None:
    with pytest.raises(ImageAccessError, match="missing"):
        resolve_inside(root, "sub/nope.jpg")
    with pytest.raises(ImageAccessError, match="no image root"):
        resolve_inside("", "sub/ok.jpg")


def test_broken_files_are_refused_with_a_reason(root: Path) -> None:
    (root / "empty.jpg").write_bytes(b"")
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 255, 0)).save(good, format="JPEG")
    (root / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (root / "text.png").write_text("hello")
    for name in ("empty.jpg", "truncated.jpg", "text.png"):
        with pytest.raises(ImageAccessError, match=f"{name}: cannot be decoded"):
            image_jpeg(root, name)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("limit", "reason"),
    [(60_000, "90000 px is more than 60000 pixels"), (10_000, "could be decompression bomb")],
)
def test_decompression_bomb_is_refused(
    root: Path, monkeypatch: pytest.MonkeyPatch, limit: int, reason: str
) -> None:
    """Between 1x and 2x Pillow's limit Pillow only warns, so the size is checked before decoding."""
    Image.new("L", (300, 300)).save(root / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageAccessError, match=f"big.png.*{reason}"):
        render_jpeg(root / "big.png", 64)


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("CMYK", lambda: Image.new("CMYK", (10, 6), (255, 0, 0, 0))),
        ("I;16", lambda: Image.fromarray(np.full((6, 10), 40000, dtype=np.uint16))),
        ("P", lambda: Image.new("RGB", (10, 6), (0, 0, 255)).convert("P")),
        ("RGBA", lambda: Image.new("RGBA", (10, 6), (255, 0, 0, 0))),
        ("LA", lambda: Image.new("LA", (10, 6), (0, 255))),
    ],
)
def test_any_mode_becomes_rgb(root: Path, mode: str, make: object) -> None:
    img = make()  # type: ignore[operator]
    assert img.mode == mode
    img.save(root / "odd.tiff")
    out = _decoded(render_jpeg(root / "odd.tiff", 32))
    assert (out.mode, out.size) == ("RGB", (10, 6))
    r, g, b = out.getpixel((5, 3))
    if mode == "RGBA":  # fully transparent pixels are shown on white
        assert min(r, g, b) > 240
    if mode == "I;16":  # 16-bit scaled to 8 bits by its maximum
        assert min(r, g, b) > 240
    if mode == "CMYK":  # cyan
        assert r < 40 and g > 200 and b > 200
