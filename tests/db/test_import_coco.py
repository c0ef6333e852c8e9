"""COCO instances import: categories → classes, instances → positives, absent → negative or
unknown; files that are not COCO fail with one line naming what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.errors import LabelFileError
from db.io import ImportReport, import_coco
from db.models import Image, LabelClass
from tests.db.test_import_openimages import cells, counts, make_images, write


def coco(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "info": {"description": "tiny"},
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 640, "height": 480},
            {"id": 11, "file_name": "sub/b.jpg", "width": 320, "height": 200},
            {"id": 12, "file_name": "c.jpg"},
        ],
        "categories": [
            {"id": 3, "name": "car", "supercategory": "vehicle"},
            {"id": 1, "name": "person"},
            {"id": 2, "name": "dog"},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1, "bbox": [0, 0, 1, 1]},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [1, 1, 1, 1]},
            {"id": 3, "image_id": 10, "category_id": 3},
            {"id": 4, "image_id": 11, "category_id": 2},
        ],
    }
    doc.update(overrides)
    return doc


def dump(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def run(sm: sessionmaker[Session], **kwargs: Any) -> ImportReport:
    with sm.begin() as s:
        return import_coco(s, **kwargs)


def test_instances_become_positives_and_the_rest_negatives(sm: sessionmaker[Session], tmp_path: Path) -> None:
    folder = make_images(tmp_path / "img", ["a.jpg", "c.jpg"])
    make_images(folder / "sub", ["b.jpg"])
    report = run(sm, annotations=dump(tmp_path / "instances.json", coco()), images=folder, dataset="coco")
    assert (report.rows_read, report.labels_added, report.images_registered, report.classes_added) == (
        9,
        9,
        3,
        3,
    )
    with sm() as s:
        keys = [(c.key, c.position) for c in s.scalars(select(LabelClass).order_by(LabelClass.position))]
        assert keys == [("person", 0), ("dog", 1), ("car", 2)]  # category-id order
        imgs = {i.external_id: (i.path, i.width, i.height) for i in s.scalars(select(Image))}
        assert imgs == {
            "a": ("a.jpg", 640, 480),
            "sub/b": ("sub/b.jpg", 320, 200),
            "c": ("c.jpg", None, None),
        }
        assert cells(s, "coco") == {
            ("a", "person", 1), ("a", "dog", 0), ("a", "car", 1),
            ("sub/b", "person", 0), ("sub/b", "dog", 1), ("sub/b", "car", 0),
            ("c", "person", 0), ("c", "dog", 0), ("c", "car", 0),
        }  # fmt: skip
    again = run(sm, annotations=tmp_path / "instances.json", images=folder, dataset="coco")
    assert (again.labels_added, again.labels_changed, again.labels_unchanged) == (0, 0, 9)


def test_absent_unknown_keeps_only_positives_and_duplicate_names_use_ids(
    sm: sessionmaker[Session], tmp_path: Path
) -> None:
    report = run(sm, annotations=dump(tmp_path / "i.json", coco()), absent="unknown", dataset="u")
    assert report.labels_added == 3
    with sm() as s:
        assert cells(s, "u") == {("a", "person", 1), ("a", "car", 1), ("sub/b", "dog", 1)}
    doc = coco(categories=[{"id": 1, "name": "thing"}, {"id": 2, "name": "thing"}, {"id": 3, "name": "car"}])
    run(sm, annotations=dump(tmp_path / "dup.json", doc), absent="unknown", dataset="dup")
    with sm() as s:
        rows = s.execute(
            select(LabelClass.key, LabelClass.display_name).where(LabelClass.key.in_(["1", "2", "3"]))
        ).all()
        assert sorted(tuple(r) for r in rows) == [("1", "thing"), ("2", "thing"), ("3", "car")]
        assert cells(s, "dup") == {("a", "1", 1), ("a", "3", 1), ("sub/b", "2", 1)}
    with pytest.raises(ValueError, match="--absent must be one of negative, unknown"):
        run(sm, annotations=tmp_path / "i.json", absent="maybe")


BAD_COCO = [
    (
        "missing categories",
        {k: v for k, v in coco().items() if k != "categories"},
        'missing key "categories"',
    ),
    ("top-level list", [coco()], "the top level is not a JSON object"),
    ("annotations not list", coco(annotations={"1": 2}), '"annotations" is not a list'),
    ("image without file", coco(images=[{"id": 10}]), r'images\[0\] has no "file_name"'),
    ("category without name", coco(categories=[{"id": 1}]), r'categories\[0\] has no "name"'),
    (
        "unknown category",
        coco(annotations=[{"image_id": 10, "category_id": 1}, {"image_id": 10, "category_id": 99}]),
        r'annotations\[1\] refers to category_id "99", which is not in "categories"',
    ),
    (
        "unknown image",
        coco(annotations=[{"image_id": 77, "category_id": 1}]),
        r'annotations\[0\] refers to image_id "77", which is not in "images"',
    ),
    (
        "annotation without category",
        coco(annotations=[{"image_id": 10}]),
        r'annotations\[0\] has no "category_id"',
    ),
    (
        "duplicate image id",
        coco(images=[{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}], annotations=[]),
        'image id "1" appears twice',
    ),
    (
        "path escape",
        coco(images=[{"id": 10, "file_name": "../../etc/passwd"}], annotations=[]),
        r'images\[0\] file "\.\./\.\./etc/passwd" is not a path inside the image folder',
    ),
]


@pytest.mark.parametrize(("doc", "message"), [pytest.param(d, m, id=i) for i, d, m in BAD_COCO])
def test_not_coco_is_one_clear_line(
    sm: sessionmaker[Session], tmp_path: Path, doc: Any, message: str
) -> None:
    run(sm, annotations=dump(tmp_path / "ok.json", coco()), dataset="d")
    with sm() as s:
        before = counts(s)
    with pytest.raises(LabelFileError, match=r"^instances\.json: .*" + message) as err:
        run(sm, annotations=dump(tmp_path / "instances.json", doc), dataset="d")
    assert "\n" not in str(err.value)
    if "missing key" in message:
        assert str(err.value).endswith(
            "pass an instances_*.json file (it has images, annotations and categories)"
        )
    with sm() as s:
        assert counts(s) == before


def test_broken_json_and_missing_image_files(sm: sessionmaker[Session], tmp_path: Path) -> None:
    broken = write(tmp_path / "instances.json", '{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(LabelFileError, match=r"^instances\.json:2: not valid JSON \(.* at column 12\)"):
        run(sm, annotations=broken)
    folder = make_images(tmp_path / "img", ["a.jpg"])
    with pytest.raises(LabelFileError, match=r'^i\.json: images\[1\]: no image file "sub/b\.jpg" under '):
        run(sm, annotations=dump(tmp_path / "i.json", coco()), images=folder)
    with sm() as s:
        assert counts(s) == (0, 0, 0, 0, 0)
