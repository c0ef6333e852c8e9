"""A small generated dataset in a store, for pipeline, worker and app tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.pipeline.ingest import ingest_arrays
from app.store import Store
from core.synthetic import SceneConfig, generate_dataset, openimages_like, write_dataset


@dataclass
class Seeded:
    name: str
    dataset_id: int
    truth: np.ndarray
    annotations: np.ndarray
    image_ids: list[str]
    class_keys: list[str]
    splits: list[str]


def seed_store(store: Store, root: Path, *, n_images: int = 240, image_size: int = 40, seed: int = 0,
               name: str = "toy") -> Seeded:  # fmt: skip
    ds = generate_dataset(n_images, seed=seed, config=SceneConfig(image_size=image_size))
    ann = openimages_like(ds.truth, seed=seed)
    written = write_dataset(ds, root, annotations=ann)
    with store.write() as s:
        dataset_id = ingest_arrays(
            s,
            name,
            image_root=str(written.images_dir),
            external_ids=ds.image_ids,
            paths=[f"{i}.jpg" for i in ds.image_ids],
            splits=[str(x) for x in ds.splits],
            class_keys=ds.class_ids,
            class_names=ds.class_names,
            targets=ann,
        )
    return Seeded(
        name, dataset_id, ds.truth, ann, list(ds.image_ids), list(ds.class_ids), [str(x) for x in ds.splits]
    )
