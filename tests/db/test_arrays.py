"""Datasets in and out as arrays: db.io.arrays.import_arrays (through the importers' merge) and
db.arrays.read_label_arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.arrays import read_label_arrays
from db.datasets import get_dataset
from db.io import import_openimages
from db.io.arrays import import_arrays
from db.models import Image, Label, LabelEvent, LabelSource
from tests.db.factory import make_small

UNKNOWN = -1
TARGETS = np.array([[1, -1, 0], [-1, -1, -1], [0, 1, 1], [-1, 0, -1]], dtype=np.int8)  # (N=4, C=3)


def _import(s: Session, name: str = "arr", targets: np.ndarray = TARGETS, **over: object) -> int:
    n, c = targets.shape
    rows, cols = np.nonzero(targets != UNKNOWN)
    args: dict[str, object] = {
        "image_root": "/data/arr",
        "external_ids": [f"e{i}" for i in range(n)],
        "paths": [f"e{i}.jpg" for i in range(n)],
        "splits": ["train", "train", "val", "test"][:n],
        "class_keys": [f"/m/k{j}" for j in range(c)],
        "class_names": [f"name {j}" for j in range(c)],
        "cell_images": rows,
        "cell_classes": cols,
        "cell_values": targets[rows, cols],
        "author": "gen",
        "source": "synthetic data",
    }
    return import_arrays(s, name, **(args | over))  # type: ignore[arg-type]


def test_arrays_round_trip_with_one_import_event_per_cell(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        make_small(s, name="other")  # ids of the new dataset do not start at 1
        ds_id = _import(s)
    with sm() as s:
        got = read_label_arrays(s, ds_id, unknown=UNKNOWN)
        events = s.execute(
            select(
                LabelEvent.image_id,
                LabelEvent.class_id,
                LabelEvent.before,
                LabelEvent.after,
                LabelEvent.author,
                LabelEvent.source,
                LabelEvent.reason,
                LabelEvent.suggestion_id,
                LabelEvent.dataset_id,
            )
        ).all()
        labels = s.scalars(select(Label)).all()
    assert got.targets.dtype == np.int8
    np.testing.assert_array_equal(got.targets, TARGETS)
    assert got.external_ids == ["e0", "e1", "e2", "e3"] and got.paths[2] == "e2.jpg"
    assert got.splits == ["train", "train", "val", "test"] and all(type(x) is str for x in got.splits)
    assert got.class_keys == ["/m/k0", "/m/k1", "/m/k2"] and got.class_names[1] == "name 1"
    assert np.all(np.diff(got.image_ids) > 0) and got.class_ids.dtype == np.int64
    n_cells = int((TARGETS != UNKNOWN).sum())
    assert len(events) == len(labels) == n_cells
    cell_of = {
        (int(i), int(c)): (r, k) for r, i in enumerate(got.image_ids) for k, c in enumerate(got.class_ids)
    }
    for image_id, class_id, before, after, author, source, reason, sugg, ds in events:
        r, k = cell_of[(image_id, class_id)]
        assert (before, after) == (None, int(TARGETS[r, k]))
        assert (author, source, reason, sugg, ds) == (
            "gen",
            LabelSource.IMPORT,
            "import synthetic data",
            None,
            ds_id,
        )
    assert {(lab.version, lab.source, lab.author) for lab in labels} == {(1, LabelSource.IMPORT, "gen")}


def test_arrays_merge_like_a_file_import_afterwards(sm: sessionmaker[Session], tmp_path: Path) -> None:
    with sm.begin() as s:
        ds_id = _import(s)
    labels = tmp_path / "more.csv"
    labels.write_text("ImageID,Source,LabelName,Confidence\ne0,h,/m/k0,1\ne0,h,/m/k1,1\ne3,h,/m/k1,1\n")
    with sm.begin() as s:
        report = import_openimages(s, labels=labels, dataset="arr", author="ann")
    assert (report.labels_added, report.labels_changed, report.labels_unchanged) == (1, 1, 1)
    with sm() as s:
        got = read_label_arrays(s, ds_id, unknown=UNKNOWN)
        n_events = s.scalar(select(func.count()).select_from(LabelEvent))
    want = TARGETS.copy()
    want[0, 1] = want[3, 1] = 1
    np.testing.assert_array_equal(got.targets, want)
    assert n_events == int((TARGETS != UNKNOWN).sum()) + 2


def test_empty_and_unknown_datasets_read_as_empty_arrays(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        ds_id = _import(s, targets=np.full((2, 3), UNKNOWN, dtype=np.int8), splits=["train", "val"])
    with sm() as s:
        got = read_label_arrays(s, ds_id, unknown=UNKNOWN)
        none = read_label_arrays(s, 10_000, unknown=UNKNOWN)
        assert s.scalar(select(func.count()).select_from(LabelEvent)) == 0
    assert got.targets.shape == (2, 3) and (got.targets == UNKNOWN).all()
    assert none.targets.shape == (0, 0) and none.external_ids == [] and len(none.class_ids) == 0


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"cell_values": np.array([1, 2, 0, 1, 1, 0])}, "cell 1 has value 2"),
        ({"cell_classes": np.array([0, 0, 0, 1, 2, 1])}, r"cell \(image 0, class 0\) is given twice"),
        ({"cell_classes": np.array([0, 2, 0, 1, 3, 1])}, "must index the 3 classes"),
        ({"cell_images": np.array([0, 0, 2, 2, 2, 4])}, "must index the 4 images"),
        ({"cell_values": np.array([1, 0, 0])}, "must have one length, got 6, 6 and 3"),
        ({"paths": ["a.jpg"]}, "external_ids, paths and splits must have one length"),
        ({"class_names": ["x"]}, "class_keys and class_names must have one length"),
    ],
)
def test_bad_arrays_are_refused_before_anything_is_written(
    sm: sessionmaker[Session], over: dict[str, object], message: str
) -> None:
    with sm.begin() as s, pytest.raises(ValueError, match=message):
        _import(s, **over)
    with sm() as s:
        assert s.scalar(select(func.count()).select_from(Image)) == 0


def test_a_dataset_with_images_is_refused(sm: sessionmaker[Session]) -> None:
    with sm.begin() as s:
        _import(s)
    with (
        pytest.raises(ValueError, match="dataset 'arr' already has 4 images; choose another name"),
        sm.begin() as s,
    ):
        _import(s)
    with sm() as s:
        assert get_dataset(s, "arr").image_root == "/data/arr"
        assert s.scalar(select(func.count()).select_from(Label)) == int((TARGETS != UNKNOWN).sum())
