"""Scores of every class for new images, from a stored target run (``labelmend predict``)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np

from app.pipeline.features import feature_backbone
from app.store import Store
from common.atomic import atomic_open
from common.images import IMAGE_SUFFIXES
from core.data import ImageSource
from core.embeddings import embed_images
from core.train import load_finetuned, load_head, predict_head, predict_images
from db.datasets import get_dataset
from db.errors import NotFoundError
from db.models import RunStatus
from db.runs import get_run, latest_run


def _scan(folder: Path) -> ImageSource:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    return ImageSource(folder, tuple(p.stem for p in files), tuple(p.name for p in files))


def predict_folder(
    store: Store, dataset: str, folder: Path, out: Path, *, run_id: int | None = None, device: str = "auto"
) -> tuple[int, int, dict[str, str]]:
    """Write ``ImageID,LabelName,Score`` (every class of every image) for the images in ``folder``.

    Returns:
        (images scored, rows written, unreadable image id → reason).
    """
    with store.read() as s:
        ds = get_dataset(s, dataset)
        run = get_run(s, run_id) if run_id is not None else latest_run(s, ds.id)
        if run is None or run.dataset_id != ds.id or run.status != RunStatus.SUCCEEDED:
            raise NotFoundError(
                f"dataset {dataset!r} has no finished target run; run `labelmend cycle` first"
            )
        artifacts, seed = dict(run.artifacts), int(run.config.get("seed", 0))
    source = _scan(folder)
    keys: list[str] = list(artifacts["class_keys"])
    if "head" in artifacts:
        head, _cfg, meta = load_head(artifacts["head"])
        backbone = feature_backbone(meta["backbone"], len(keys), meta["pretrained"], seed=seed)
        with tempfile.TemporaryDirectory() as tmp:  # new images must not mix with the dataset's cache
            emb = embed_images(backbone, source, tmp, backbone=meta["backbone"], image_size=meta["image_size"],
                               normalize=bool(meta.get("normalize", False)), device=device)  # fmt: skip
            probs = np.full((len(source), len(keys)), np.nan, dtype=np.float32)
            probs[emb.indices] = predict_head(head, emb.embeddings)
        skipped = emb.skipped
    else:
        model, cfg = load_finetuned(artifacts["checkpoint"])
        probs, skipped = predict_images(
            model, source, image_size=cfg.image_size, normalize=cfg.normalize, device=device
        )
    rows = 0
    with atomic_open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ImageID", "LabelName", "Score"])
        for i, image_id in enumerate(source.ids):
            if np.isnan(probs[i]).any():
                continue
            for j, key in enumerate(keys):
                w.writerow([image_id, key, f"{probs[i, j]:.6f}"])
                rows += 1
    return len(source) - len(skipped), rows, dict(skipped)


__all__ = ["predict_folder"]
