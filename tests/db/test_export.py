"""Export with provenance, and import(export(x)) == x for every format on both backends."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.datasets import get_dataset
from db.errors import LabelFileError, NotFoundError
from db.io import (
    ExportFormat,
    classes_file_for,
    export_labels,
    import_label_json,
    import_openimages,
    import_table,
    list_export_formats,
)
from db.labels import set_label
from db.models import Image, Label, LabelClass
from tests.db.test_import_openimages import HEADER, cells, counts, write

HOSTILE = 'O\'Brien "x"; DROP TABLE label;--'


def make_x(sm: sessionmaker[Session], tmp_path: Path) -> None:
    """Dataset "x": hostile ids and names, an imported file, one reviewed change, one bare image."""
    classes = write(tmp_path / "cls.csv", '"/m/a,b","Quote ""q"", comma"\n日本,日本語\nk3,<b>bold</b>\n')
    rows = [
        (HOSTILE, "/m/a,b", 1),
        (HOSTILE, "日本", 0),
        ("日本/画像", "日本", 1),
        ("plain", "k3", 0),
        ("plain", "/m/a,b", 0),
    ]
    lines = "".join(f'"{i.replace(chr(34), chr(34) * 2)}",verification,"{k}",{v}\n' for i, k, v in rows)
    with sm.begin() as s:
        import_openimages(s, labels=write(tmp_path / "x.csv", HEADER + lines), classes=classes, dataset="x")
    with sm.begin() as s:
        ds = get_dataset(s, "x")
        img = s.scalar(select(Image.id).where(Image.external_id == "plain"))
        cls = s.scalar(select(LabelClass.id).where(LabelClass.key == "k3"))
        assert img is not None and cls is not None
        set_label(s, image_id=img, class_id=cls, value=1, author="alice", source="review", reason="accepted")
        s.add(Image(dataset_id=ds.id, external_id="lonely", path="lonely.jpg", split="val"))


def reimport(sm: sessionmaker[Session], fmt: ExportFormat, out: Path, name: str) -> None:
    with sm.begin() as s:
        if fmt is ExportFormat.OPENIMAGES:
            import_openimages(s, labels=out, classes=classes_file_for(out), dataset=name)
        elif fmt is ExportFormat.JSON:
            import_label_json(s, path=out, dataset=name)
        else:
            import_table(s, labels=out, dataset=name)


def _classes(s: Session, name: str) -> list[tuple[str, str, int]]:
    ds = get_dataset(s, name)
    q = select(LabelClass.key, LabelClass.display_name, LabelClass.position).where(
        LabelClass.dataset_id == ds.id
    )
    return sorted((a, b, c) for a, b, c in s.execute(q))


def _images(s: Session, name: str) -> set[tuple[str, str, str]]:
    ds = get_dataset(s, name)
    q = select(Image.external_id, Image.path, Image.split).where(Image.dataset_id == ds.id)
    return {(a, b, c) for a, b, c in s.execute(q)}


@pytest.mark.parametrize("fmt", list_export_formats())
def test_import_of_export_reproduces_every_label(sm: sessionmaker[Session], tmp_path: Path, fmt: str) -> None:
    make_x(sm, tmp_path)
    kind = ExportFormat(fmt)
    out = tmp_path / ("out.csv" if kind is ExportFormat.OPENIMAGES else f"out.{fmt}")
    with sm() as s:
        report = export_labels(s, dataset="x", fmt=fmt, out=out)
        original = cells(s, "x")
    assert (report.labels, report.images, report.classes) == (5, 4, 3)
    assert not list(tmp_path.glob("*.part"))
    reimport(sm, kind, out, "copy")
    with sm() as s:
        assert cells(s, "copy") == original
        assert (HOSTILE, "/m/a,b", 1) in original and ("plain", "k3", 1) in original
        if kind in (ExportFormat.OPENIMAGES, ExportFormat.JSON):  # the class list travels too
            assert _classes(s, "copy") == _classes(s, "x")
        if kind is ExportFormat.JSON:  # and every image with its path and split
            assert _images(s, "copy") == _images(s, "x")
            assert ("lonely", "lonely.jpg", "val") in _images(s, "copy")
    before, after = counts_after_reimport(sm, kind, out)
    assert before == after  # importing the same export again changes nothing


def counts_after_reimport(
    sm: sessionmaker[Session], kind: ExportFormat, out: Path
) -> tuple[tuple[int, ...], ...]:
    with sm() as s:
        before = counts(s)
    reimport(sm, kind, out, "copy")
    with sm() as s:
        return before, counts(s)


def test_csv_and_parquet_carry_provenance(sm: sessionmaker[Session], tmp_path: Path) -> None:
    make_x(sm, tmp_path)
    with sm() as s:
        export_labels(s, dataset="x", fmt="csv", out=tmp_path / "x.csv")
        export_labels(s, dataset="x", fmt=ExportFormat.PARQUET, out=tmp_path / "x.parquet")
        export_labels(s, dataset="x", fmt="openimages", out=tmp_path / "oi.csv")
        stored = {
            (i, k): (src, who)
            for i, k, src, who in s.execute(
                select(Image.external_id, LabelClass.key, Label.source, Label.author)
                .join(Label, Label.image_id == Image.id)
                .join(LabelClass, LabelClass.id == Label.class_id)
            )
        }
    with (tmp_path / "x.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["image", "label", "value", "source", "author", "updated_at"]
    assert {(r["image"], r["label"]): (r["source"], r["author"]) for r in rows} == stored
    reviewed = next(r for r in rows if r["image"] == "plain" and r["label"] == "k3")
    assert (reviewed["value"], reviewed["source"], reviewed["author"]) == ("1", "review", "alice")
    assert dt.datetime.fromisoformat(reviewed["updated_at"]).tzinfo is not None
    table = pq.read_table(tmp_path / "x.parquet")
    assert str(table.schema.field("value").type) == "int8"
    assert str(table.schema.field("updated_at").type) == "timestamp[us, tz=UTC]"
    assert set(zip(table["image"].to_pylist(), table["source"].to_pylist(), strict=True)) >= {
        ("plain", "review")
    }
    with (tmp_path / "oi.csv").open(encoding="utf-8", newline="") as fh:
        oi = list(csv.reader(fh))
    assert oi[0] == ["ImageID", "Source", "LabelName", "Confidence"]
    assert ["plain", "review", "k3", "1"] in oi
    with classes_file_for(tmp_path / "oi.csv").open(encoding="utf-8", newline="") as fh:
        assert list(csv.reader(fh)) == [
            ["LabelName", "DisplayName"],
            ["/m/a,b", 'Quote "q", comma'],
            ["日本", "日本語"],
            ["k3", "<b>bold</b>"],
        ]


def test_json_export_lists_every_image_and_class(sm: sessionmaker[Session], tmp_path: Path) -> None:
    make_x(sm, tmp_path)
    with sm() as s:
        export_labels(s, dataset="x", fmt="json", out=tmp_path / "x.json")
    doc = json.loads((tmp_path / "x.json").read_text(encoding="utf-8"))
    assert doc["format"] == "labelmend-labels/1" and doc["dataset"] == "x" and doc["exported_at"]
    assert [c["key"] for c in doc["classes"]] == ["/m/a,b", "日本", "k3"]
    by_id = {im["image"]: im for im in doc["images"]}
    assert by_id["lonely"] == {
        "image": "lonely", "file": "lonely.jpg", "split": "val", "positives": [], "negatives": [], "provenance": {},
    }  # fmt: skip
    assert (by_id[HOSTILE]["positives"], by_id[HOSTILE]["negatives"]) == (["/m/a,b"], ["日本"])
    assert by_id["plain"]["provenance"]["k3"]["author"] == "alice"


def test_export_errors_and_bad_json_labels(sm: sessionmaker[Session], tmp_path: Path) -> None:
    with sm() as s, pytest.raises(NotFoundError, match="dataset 'nope' does not exist"):
        export_labels(s, dataset="nope", fmt="csv", out=tmp_path / "n.csv")
    with pytest.raises(ValueError, match="export format 'xml' is not one of openimages, csv, parquet, json"):
        ExportFormat.from_str("xml")
    base = {"classes": [{"key": "a", "display_name": "A"}], "images": []}
    cases = [
        ({"images": []}, r'not a labelmend JSON export: missing key "classes"'),
        ({**base, "images": [{"image": "i", "positives": ["zz"]}]}, r'images\[0\]\.positives has class "zz"'),
        (
            {**base, "images": [{"image": "i", "positives": ["a"], "negatives": ["a"]}]},
            r'images\[0\] lists class "a" as both positive and negative',
        ),
        (
            {**base, "images": [{"image": "i", "split": "dev"}]},
            r'images\[0\]\.split "dev" is not train, val or test',
        ),
    ]
    for doc, message in cases:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(LabelFileError, match=r"^bad\.json: " + message), sm.begin() as s:
            import_label_json(s, path=path)
    with sm() as s:
        assert counts(s) == (0, 0, 0, 0, 0)
