"""A small, realistic store for app tests, built through ``db/`` functions, with real image files.

Layout: ``n_images`` noise JPEGs under ``root/img/``, ``n_classes`` classes (one with a hostile
display name), imported labels, a prior run with per-class priors, a first target run whose
suggestions were partly decided (2 accepted, 1 rejected), and a second target run whose
suggestions are pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.datasets import ensure_classes, get_or_create_dataset
from db.labels import set_label
from db.models import Image, Label, LabelSource
from db.review import decide, pending_page
from db.runs import create_run, finish_run, write_class_stats, write_suggestions

#: A class display name and annotator name that would inject markup if rendered unescaped.
HOSTILE = '<img src=x onerror="window.__lm_pwned=1">**bold** [x](javascript:alert(1)) :red[red]'


@dataclass
class Seeded:
    dataset_id: int
    name: str
    image_root: Path
    image_ids: list[int]
    external_ids: list[str]
    class_ids: list[int]
    class_names: list[str]
    run_ids: list[int]
    """prior run, first target run, second target run."""


def write_images(folder: Path, n: int, *, size: int = 48, seed: int = 0) -> list[str]:
    """Write ``n`` RGB noise JPEGs (``size`` px square) under ``folder``; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        pixels[:, : size // 2, i % 3] = 255  # a coloured half so images differ visibly
        name = f"im{i:04d}.jpg"
        PILImage.fromarray(pixels).save(folder / name, quality=80)
        names.append(name)
    return names


def _unknown_cells(session: Session, image_ids: list[int], class_ids: list[int]) -> list[tuple[int, int]]:
    rows = session.execute(select(Label.image_id, Label.class_id).where(Label.image_id.in_(image_ids)))
    known = {(i, c) for i, c in rows}
    return [(i, c) for i in image_ids for c in class_ids if (i, c) not in known]


def _suggest(session: Session, run_id: int, cells: list[tuple[int, int]], rng: np.random.Generator) -> None:
    k = len(cells)
    scores = np.sort(rng.uniform(0.3, 0.99, size=k))[::-1]
    write_suggestions(
        session,
        run_id,
        image_ids=np.array([i for i, _ in cells]),
        class_ids=np.array([c for _, c in cells]),
        scores=scores,
        probs=np.clip(scores + 0.01, 0, 1),
        priors=np.full(k, 0.2),
    )


def seed_dataset(
    session: Session,
    root: Path,
    *,
    name: str = "alpha",
    n_images: int = 12,
    n_classes: int = 5,
    n_suggestions: int = 10,
    hostile: bool = True,
    seed: int = 0,
) -> Seeded:
    """Create the dataset described in the module docstring in ``session`` (the caller commits)."""
    rng = np.random.default_rng(seed)
    files = write_images(root / "img", n_images, seed=seed)
    ds = get_or_create_dataset(session, name, image_root=str(root))
    names = [f"class {j}" for j in range(n_classes)]
    if hostile and n_classes > 1:
        names[1] = HOSTILE
    ids = ensure_classes(session, ds.id, [(f"/m/c{j}", names[j]) for j in range(n_classes)])
    class_ids = [ids[f"/m/c{j}"] for j in range(n_classes)]
    images = [
        Image(dataset_id=ds.id, external_id=f"{name}-{i:04d}", path=f"img/{f}", width=48, height=48)
        for i, f in enumerate(files)
    ]
    session.add_all(images)
    session.flush()
    image_ids = [im.id for im in images]
    for i in image_ids:
        for c in class_ids:
            draw = rng.random()
            if draw < 0.5:
                continue
            set_label(
                session,
                image_id=i,
                class_id=c,
                value=int(draw < 0.7),
                author="importer",
                source=LabelSource.IMPORT.value,
                reason="seed",
            )
    prior = create_run(session, ds.id, "prior", {"backbone": "resnet10t", "loss": "ignore", "epochs": 2})
    write_class_stats(
        session,
        prior.id,
        class_ids,
        prior_naive=rng.uniform(0.05, 0.4, n_classes).tolist(),
        prior_model=rng.uniform(0.05, 0.5, n_classes).tolist(),
    )
    finish_run(session, prior.id, timings={"train": 3.5})
    runs = [prior.id]
    for cycle, partial_map in ((1, 60.0), (2, 66.5)):
        run = create_run(
            session,
            ds.id,
            "target",
            {"backbone": "resnet10t", "loss": "csl", "mode": "head", "epochs": 3},
            parent_id=prior.id,
        )
        cells = _unknown_cells(session, image_ids, class_ids)
        take = rng.permutation(len(cells))[: n_suggestions if cycle == 2 else 3]
        _suggest(session, run.id, [cells[t] for t in take], rng)
        write_class_stats(
            session,
            run.id,
            class_ids,
            prior_naive=rng.uniform(0.05, 0.4, n_classes).tolist(),
            prior_model=rng.uniform(0.05, 0.5, n_classes).tolist(),
            ap=rng.uniform(0.3, 0.9, n_classes).tolist(),
        )
        finish_run(
            session, run.id, metrics={"partial_map": partial_map}, timings={"train": 4.0, "suggest": 0.5}
        )
        if cycle == 1:
            first = pending_page(session, ds.id, limit=3)
            for sugg, decision in zip(first, ("accept", "accept", "reject"), strict=True):
                decide(session, sugg.id, decision, "seed-reviewer")
        runs.append(run.id)
    return Seeded(ds.id, name, root, image_ids, [im.external_id for im in images], class_ids, names, runs)


__all__ = ["HOSTILE", "Seeded", "seed_dataset", "write_images"]
