"""Per-class positive / negative / unknown counts after imports and reviews."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.datasets import get_dataset
from db.io import import_openimages, write_class_counts_csv
from db.labels import set_label
from db.models import Image, LabelClass
from db.stats import class_counts, n_images
from tests.db.test_import_openimages import CLASSES, HEADER, make_images, write


def test_counts_follow_imports_and_reviews(sm: sessionmaker[Session], tmp_path: Path) -> None:
    folder = make_images(tmp_path / "img", ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])
    labels = write(
        tmp_path / "l.csv",
        HEADER
        + "a,v,/m/c0,1\nb,v,/m/c0,1\nc,v,/m/c0,0\na,v,/m/c1,0\nb,v,/m/c1,0\nc,v,/m/c1,0\nd,v,/m/c1,1\n",
    )
    with sm.begin() as s:
        import_openimages(
            s, labels=labels, classes=write(tmp_path / "c.csv", CLASSES), images=folder, dataset="st"
        )
    with sm() as s:
        ds = get_dataset(s, "st")
        got = [(c.key, c.display_name, c.positive, c.negative, c.unknown) for c in class_counts(s, ds.id)]
    assert n_images_of(sm, "st") == 5
    assert got == [("/m/c0", "Cat", 2, 1, 2), ("/m/c1", "Dog", 1, 3, 1), ("/m/c2", "Hat, top", 0, 0, 5)]
    with sm.begin() as s:
        e = s.scalar(select(Image.id).where(Image.external_id == "e"))
        c2 = s.scalar(select(LabelClass.id).where(LabelClass.key == "/m/c2"))
        assert e is not None and c2 is not None
        set_label(s, image_id=e, class_id=c2, value=1, author="ann", source="review", reason="accepted")
    with sm() as s:
        counts = class_counts(s, get_dataset(s, "st").id)
    assert (counts[2].positive, counts[2].negative, counts[2].unknown) == (1, 0, 4)
    out = tmp_path / "stats.csv"
    write_class_counts_csv(counts, out)
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["key", "display_name", "position", "positive", "negative", "unknown"],
        ["/m/c0", "Cat", "0", "2", "1", "2"],
        ["/m/c1", "Dog", "1", "1", "3", "1"],
        ["/m/c2", "Hat, top", "2", "1", "0", "4"],
    ]


def n_images_of(sm: sessionmaker[Session], name: str) -> int:
    with sm() as s:
        return n_images(s, get_dataset(s, name).id)
