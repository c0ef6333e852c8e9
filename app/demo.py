"""Demo data: a generated dataset with OpenImages-like partial labels, imported like a user's files.

``labelmend demo`` calls :func:`prepare_demo`, then queues the first retrain cycle (head mode on
``tf_efficientnet_lite0`` with its ImageNet weights from a pip package, offline) and starts a
worker and the app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from app.pipeline.config import CycleConfig, TrainMode, WeightsSource
from app.store import Store
from core.losses.catalog import LossName
from core.synthetic import SceneConfig, generate_dataset, openimages_like, write_dataset
from db import jobs
from db.datasets import get_dataset
from db.errors import NotFoundError
from db.io import import_openimages

log = logging.getLogger(__name__)

DEMO_SEED = 7


@dataclass
class DemoInfo:
    dataset: str
    created: bool
    folder: Path
    job_id: int | None


def demo_cycle_config(dataset: str) -> CycleConfig:
    """The first cycle of the demo: a head on packaged ImageNet features (the cycle's defaults), CPU friendly.

    Embedding the demo's images once at 224 px takes a minute or two on two CPU cores; every later
    cycle reads the cached embeddings.
    """
    return CycleConfig(
        dataset=dataset,
        pretrained=WeightsSource.PACKAGED,
        mode=TrainMode.HEAD,
        loss=LossName.CSL,
        batch_size=64,
        top_suggestions=2000,
        workers=0,
    )


def prepare_demo(
    store: Store,
    *,
    dataset: str = "demo",
    n_images: int = 2000,
    image_size: int = 128,
    queue_cycle: bool = True,
) -> DemoInfo:
    """Generate and import the demo dataset unless it exists; queue its first cycle if none ran.

    ``image_size`` is the side of the generated images in px; the cycle embeds them at 224 px, and
    lite0's features are better on 128 px renders than on 64 px ones (README, Results).

    Files are written under ``$LABELMEND_HOME/demo-data/<dataset>/``: ``images/``,
    ``classes.csv``, ``labels.csv`` (the partial labels imported), ``splits.csv`` and
    ``truth.csv`` (every true label, for checking suggestions).
    """
    folder = store.home / "demo-data" / dataset
    created = False
    with store.read() as s:
        try:
            ds_id = get_dataset(s, dataset).id
        except NotFoundError:
            ds_id = None
    if ds_id is None:
        data = generate_dataset(n_images, seed=DEMO_SEED, config=SceneConfig(image_size=image_size))
        annotations = openimages_like(data.truth, seed=DEMO_SEED)
        written = write_dataset(data, folder, annotations=annotations, workers=2)
        with store.write() as s:
            import_openimages(
                s,
                labels=written.labels_csv,
                classes=written.classes_csv,
                images=written.images_dir,
                splits=written.splits_csv,
                dataset=dataset,
                author="demo",
            )
            ds_id = get_dataset(s, dataset).id
        created = True
    job_id = None
    if queue_cycle:
        with store.write() as s:
            existing = jobs.recent_jobs(s, limit=1, dataset_id=ds_id)
            if not existing:
                job_id = jobs.enqueue(s, "cycle", demo_cycle_config(dataset).to_dict(), dataset_id=ds_id).id
    return DemoInfo(dataset, created, folder, job_id)


__all__ = ["DemoInfo", "demo_cycle_config", "prepare_demo"]
