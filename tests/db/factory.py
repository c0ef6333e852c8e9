"""Small datasets built directly through db/ for store tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from db.datasets import ensure_classes, get_or_create_dataset
from db.models import Image, ModelRun
from db.runs import create_run, finish_run, write_suggestions


@dataclass
class Small:
    dataset_id: int
    image_ids: list[int]
    class_ids: list[int]


def make_small(session: Session, n_images: int = 6, n_classes: int = 4, name: str = "small") -> Small:
    ds = get_or_create_dataset(session, name, image_root="/nonexistent")
    ids = ensure_classes(session, ds.id, [(f"/m/c{j}", f"class {j}") for j in range(n_classes)])
    imgs = [
        Image(dataset_id=ds.id, external_id=f"img{i:03d}", path=f"img{i:03d}.jpg") for i in range(n_images)
    ]
    session.add_all(imgs)
    session.flush()
    return Small(ds.id, [i.id for i in imgs], [ids[f"/m/c{j}"] for j in range(n_classes)])


def add_run_with_suggestions(session: Session, small: Small, cells: list[tuple[int, int]]) -> ModelRun:
    """A succeeded target run suggesting ``cells`` = [(image index, class index)], best first."""
    run = create_run(session, small.dataset_id, "target", {"loss": "csl"})
    k = len(cells)
    write_suggestions(
        session,
        run.id,
        image_ids=np.array([small.image_ids[i] for i, _ in cells]),
        class_ids=np.array([small.class_ids[j] for _, j in cells]),
        scores=np.linspace(0.99, 0.5, k),
        probs=np.linspace(0.95, 0.4, k),
        priors=np.full(k, 0.1),
    )
    finish_run(session, run.id)
    return run
