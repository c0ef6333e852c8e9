"""core.data: safe decoding, mode conversion, path confinement, transforms and a skipping loader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import (
    AugmentConfig,
    Batch,
    ImageDataset,
    ImageError,
    ImageSource,
    SkipLog,
    Skipped,
    collate_skipping,
    create_loader,
    create_transform_for,
    load_image,
    resolve_in_root,
    validate_images,
)
from core.models import create_model

COLORS = np.array(
    [[230, 30, 30], [30, 200, 30], [30, 30, 230], [230, 230, 30], [200, 30, 200], [30, 200, 200]],
    dtype=np.uint8,
)


def make_color_squares(
    root: Path, n: int, num_classes: int, *, size: int = 32, seed: int = 0, prefix: str = "img"
) -> tuple[ImageSource, np.ndarray]:
    """Write n PNGs where class c present ⇔ a square of colour c is drawn; return (source, truth int8)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    truth = (rng.random((n, num_classes)) < 0.4).astype(np.int8)
    side = max(size // 3, 4)
    for i in range(n):
        pixels = rng.integers(90, 160, (size, size, 3)).astype(np.uint8)
        for c in np.flatnonzero(truth[i]):
            x, y = rng.integers(0, size - side, 2)
            pixels[y : y + side, x : x + side] = COLORS[c % len(COLORS)]
        Image.fromarray(pixels).save(root / f"{prefix}{i}.png")
    ids = [f"{prefix}{i}" for i in range(n)]
    return ImageSource(root, ids, [f"{i}.png" for i in ids]), truth


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return create_model("resnet10t", 3)


def _save(root: Path, name: str, image: Image.Image, **kwargs: object) -> str:
    image.save(root / name, **kwargs)
    return name


def test_cmyk_sixteen_bit_palette_alpha_and_float_become_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[0, 0] = (200, 100, 50)
    names = {
        "cmyk": _save(tmp_path, "cmyk.tif", Image.fromarray(rgb).convert("CMYK")),
        "i16": _save(
            tmp_path, "i16.png", Image.fromarray(np.array([[65535, 32896], [0, 257]], dtype=np.uint16))
        ),
        "pal": _save(tmp_path, "pal.png", Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)),
        "pal_t": _save(tmp_path, "pal_t.png", Image.new("P", (2, 1), 0), transparency=0),
        "rgba": _save(
            tmp_path,
            "rgba.png",
            Image.fromarray(np.array([[[10, 20, 30, 255], [10, 20, 30, 0]]], dtype=np.uint8)),
        ),
        "la": _save(tmp_path, "la.png", Image.fromarray(np.array([[[50, 0]]], dtype=np.uint8), mode="LA")),
        "float": _save(tmp_path, "f.tif", Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))),
        "bits": _save(tmp_path, "bits.png", Image.new("1", (3, 3), 1)),
    }
    loaded = {k: load_image(tmp_path, v) for k, v in names.items()}
    assert {im.mode for im in loaded.values()} == {"RGB"}
    assert Image.open(tmp_path / names["i16"]).mode == "I;16"
    i16 = np.asarray(loaded["i16"])
    assert i16[..., 0].tolist() == [[255, 128], [0, 1]]  # scaled by 257, not clipped to 255
    assert tuple(np.asarray(loaded["cmyk"])[0, 0]) == (200, 100, 50)
    assert tuple(np.asarray(loaded["pal"])[0, 0]) == (200, 100, 50)
    rgba = np.asarray(loaded["rgba"])
    assert tuple(rgba[0, 0]) == (10, 20, 30) and tuple(rgba[0, 1]) == (255, 255, 255)  # transparent → white
    assert tuple(np.asarray(loaded["la"])[0, 0]) == (255, 255, 255)
    assert tuple(np.asarray(loaded["pal_t"])[0, 0]) == (255, 255, 255)
    assert np.asarray(loaded["float"])[0, :, 0].tolist() == [0, 128, 255]
    assert np.asarray(loaded["bits"]).min() == 255


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.new("RGB", (40, 20), (120, 60, 30)).save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path, "rot.jpg").size == (20, 40)


def test_paths_outside_the_root_are_rejected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    Image.new("RGB", (4, 4)).save(root / "inside.png")
    os.symlink(tmp_path / "outside.png", root / "link.png")
    os.symlink(root / "inside.png", root / "ok_link.png")
    for bad in ["../outside.png", "link.png", str(tmp_path / "outside.png"), "sub/../../outside.png"]:
        with pytest.raises(ImageError, match="outside the image root"):
            resolve_in_root(root, bad)
    assert load_image(root, "ok_link.png").size == (4, 4)
    assert resolve_in_root(root, "sub/../inside.png") == (root / "inside.png").resolve()


@pytest.fixture()
def messy_dir(tmp_path: Path) -> tuple[ImageSource, np.ndarray, dict[str, str]]:
    """Six good images and one of each kind of bad file; returns (source, targets, bad id → reason)."""
    root = tmp_path / "images"
    source, _ = make_color_squares(root, 6, 3, size=24)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "full.jpg", quality=95)
    data = (root / "full.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "garbage.png").write_bytes(rng.integers(0, 255, 500, dtype=np.uint8).tobytes())
    Image.new("1", (10000, 10000)).save(root / "bomb.png")  # 100 Mpx > Pillow's 89 Mpx limit, 12 kB
    (tmp_path / "secret.png").write_bytes((root / "img0.png").read_bytes())
    bad = {
        "trunc": ("truncated.jpg", "unreadable image"),
        "zero": ("empty.png", "empty file"),
        "junk": ("garbage.png", "unreadable image"),
        "bomb": ("bomb.png", "decompression bomb"),
        "gone": ("missing.png", "missing file"),
        "escape": ("../secret.png", "outside the image root"),
    }
    ids = list(source.ids)
    paths = list(source.paths)
    for position, (image_id, (name, _)) in zip([1, 2, 4, 6, 7, 8], bad.items(), strict=True):
        ids.insert(position, image_id)
        paths.insert(position, name)
    targets = np.tile(np.array([[1, 0, -1]], dtype=np.int8), (len(ids), 1))
    targets[:, 0] = np.arange(len(ids)) % 2
    return ImageSource(root, ids, paths), targets, {k: v[1] for k, v in bad.items()}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_skips_bad_images_and_reports_them_by_id(
    messy_dir: tuple[ImageSource, np.ndarray, dict[str, str]], model: torch.nn.Module, num_workers: int
) -> None:
    source, targets, bad = messy_dir
    transform = create_transform_for(model, image_size=32, is_training=False)
    loader = create_loader(ImageDataset(source, targets, transform), batch_size=4, num_workers=num_workers)
    log = SkipLog()
    seen: list[int] = []
    for batch in loader:
        assert isinstance(batch, Batch)
        log.update(batch.skipped)
        seen += batch.indices.tolist()
        if len(batch.indices):
            assert batch.images.shape == (len(batch.indices), 3, 32, 32)
            assert torch.equal(batch.targets, torch.from_numpy(targets[batch.indices.numpy()]).float())
    assert sorted(log.ids) == sorted(bad)
    for image_id, fragment in bad.items():
        assert fragment in log.as_dict()[image_id], (image_id, log.as_dict()[image_id])
    good = [i for i, image_id in enumerate(source.ids) if image_id not in bad]
    assert seen == good
    assert log.summary().startswith("6 image(s) skipped")


def test_validate_images_finds_the_same_bad_files(
    messy_dir: tuple[ImageSource, np.ndarray, dict[str, str]],
) -> None:
    source, _, bad = messy_dir
    assert sorted(validate_images(source).ids) == sorted(bad)


def test_max_pixels_refuses_large_images_before_decoding(tmp_path: Path) -> None:
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"too large \(100x100 px > 5000 px"):
        load_image(tmp_path, "big.png", max_pixels=5000)
    assert load_image(tmp_path, "big.png", max_pixels=10_000).size == (100, 100)


def test_collate_of_only_skipped_items_is_an_empty_batch() -> None:
    batch = collate_skipping([Skipped(0, "a", "missing file"), Skipped(1, "b", "empty file (0 bytes)")])
    assert batch.images.shape[0] == 0 and batch.indices.numel() == 0 and batch.targets is None
    assert batch.skipped == (("a", "missing file"), ("b", "empty file (0 bytes)"))


def test_eval_transform_is_unnormalised_by_default_and_train_transform_augments(
    tmp_path: Path, model: torch.nn.Module
) -> None:
    source, _ = make_color_squares(tmp_path, 1, 3, size=48)
    image = load_image(tmp_path, source.paths[0])
    plain = create_transform_for(model, image_size=32, is_training=False)(image)
    assert plain.shape == (3, 32, 32) and plain.dtype == torch.float32
    assert float(plain.min()) >= 0.0 and float(plain.max()) <= 1.0
    normed = create_transform_for(model, image_size=32, is_training=False, normalize=True)(image)
    assert float(normed.min()) < 0.0
    train = create_transform_for(model, image_size=32, is_training=True, augment=AugmentConfig(re_prob=1.0))
    torch.manual_seed(0)
    first, second = train(image), train(image)
    assert first.shape == (3, 32, 32) and not torch.equal(first, second)
    assert not torch.equal(first, plain)


def test_image_source_and_targets_are_validated(tmp_path: Path, model: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="2 ids but 1 paths"):
        ImageSource(tmp_path, ["a", "b"], ["a.png"])
    with pytest.raises(ValueError, match="'a' appears more than once"):
        ImageSource(tmp_path, ["a", "a"], ["a.png", "b.png"])
    source = ImageSource(tmp_path, ["a", "b"], ["a.png", "b.png"])
    transform = create_transform_for(model, image_size=32, is_training=False)
    with pytest.raises(ValueError, match=r"shape \(N, C\) with N = 2"):
        ImageDataset(source, np.zeros((3, 2), dtype=np.int8), transform)
    with pytest.raises(ValueError, match="use 1 positive, 0 negative, -1 unknown"):
        ImageDataset(source, np.full((2, 2), 2, dtype=np.int8), transform)
    assert source.subset([1]).ids == ("b",)
