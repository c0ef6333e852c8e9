"""The importers table and :func:`db.io.import_labels`: every :class:`ImportFormat` imports a small
real file, refuses the options it does not take, and leaves the store unchanged on a bad file.

Parametrized over ``list_import_formats()`` (the timm habit): a new format is tested as soon as it
is in the table, and fails here until it has a sample file in :data:`SAMPLES`. Each test runs on
SQLite and PostgreSQL (``db_url`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.errors import LabelFileError
from db.io import ImportFormat, import_labels, importer_for, list_import_formats
from db.io.importers import IMPORTERS
from db.models import Image, Label, LabelClass, Split
from tests.db.test_import_coco import coco, dump
from tests.db.test_import_openimages import HEADER, cells, counts, write

Cells = set[tuple[str, str, int]]


@dataclass(frozen=True)
class Sample:
    """A small label file of one format and the cells ``(image, class key, value)`` it holds."""

    labels: Path
    cells: Cells


def _openimages(folder: Path) -> Sample:
    text = HEADER + "a,verification,/m/c0,1\na,verification,/m/c1,0\nb,crowdsource,/m/c2,1.0\n"
    return Sample(
        write(folder / "labels.csv", text), {("a", "/m/c0", 1), ("a", "/m/c1", 0), ("b", "/m/c2", 1)}
    )


def _coco(folder: Path) -> Sample:
    # The instances of tests/db/test_import_coco.py; absent categories are negatives by default.
    return Sample(
        dump(folder / "instances.json", coco()),
        {
            ("a", "person", 1), ("a", "dog", 0), ("a", "car", 1),
            ("sub/b", "person", 0), ("sub/b", "dog", 1), ("sub/b", "car", 0),
            ("c", "person", 0), ("c", "dog", 0), ("c", "car", 0),
        },
    )  # fmt: skip


TABLE = pd.DataFrame(
    {"image": ["p1", "p1", "p2"], "label": ["dog", "cat", "cat"], "value": pd.array([1, 0, 1], dtype="int8")}
)
TABLE_CELLS = {("p1", "dog", 1), ("p1", "cat", 0), ("p2", "cat", 1)}


def _csv(folder: Path) -> Sample:
    TABLE.to_csv(folder / "t.csv", index=False)
    return Sample(folder / "t.csv", TABLE_CELLS)


def _parquet(folder: Path) -> Sample:
    TABLE.to_parquet(folder / "t.parquet")
    return Sample(folder / "t.parquet", TABLE_CELLS)


def _json(folder: Path) -> Sample:
    doc = {
        "format": "labelmend-labels/1",
        "classes": [{"key": "dog", "display_name": "Dog"}, {"key": "cat", "display_name": "Cat"}],
        "images": [
            {"image": "p1", "file": "p1.jpg", "positives": ["dog"], "negatives": ["cat"]},
            {"image": "p2", "file": "p2.jpg", "positives": ["cat"], "negatives": []},
        ],
    }
    return Sample(dump(folder / "labels.json", doc), TABLE_CELLS)


#: One sample writer per import format; a format missing here fails the tests below.
SAMPLES: dict[str, Callable[[Path], Sample]] = {
    ImportFormat.OPENIMAGES: _openimages,
    ImportFormat.COCO: _coco,
    ImportFormat.CSV: _csv,
    ImportFormat.PARQUET: _parquet,
    ImportFormat.JSON: _json,
}

#: Options a format's table entry says whether it takes, with a value to pass.
OPTIONS = ("classes", "splits", "absent")


def sample(fmt: str, folder: Path) -> Sample:
    if fmt not in SAMPLES:
        pytest.fail(f"import format {fmt!r} has no sample file: add a writer to SAMPLES in {__file__}")
    folder.mkdir(parents=True, exist_ok=True)
    return SAMPLES[fmt](folder)


def classes_file(path: Path, keys: set[str]) -> Path:
    """A ``LabelName,DisplayName`` file naming every key ``Name of <key>``."""
    return write(path, "LabelName,DisplayName\n" + "".join(f"{k},Name of {k}\n" for k in sorted(keys)))


def classes_for(fmt: str, s0: Sample, tmp_path: Path) -> Path | None:
    """A classes file for ``s0``'s keys if ``fmt`` takes one, else None."""
    if not importer_for(fmt).classes:
        return None
    return classes_file(tmp_path / "classes.csv", {k for _, k, _ in s0.cells})


def takes(fmt: str, option: str) -> bool:
    entry = importer_for(fmt)
    return {"classes": entry.classes, "splits": entry.splits, "absent": entry.absent}[option]


def option_value(option: str, tmp_path: Path) -> object:
    if option == "classes":
        return classes_file(tmp_path / "classes.csv", {"x"})
    if option == "splits":
        return write(tmp_path / "splits.csv", "ImageID,Split\na,val\n")
    return "unknown"


def test_every_format_is_in_the_table_and_has_a_sample() -> None:
    assert list_import_formats() == ["openimages", "coco", "csv", "parquet", "json"]
    assert set(IMPORTERS) == set(ImportFormat) == set(SAMPLES)
    assert importer_for(" CSV ") is IMPORTERS[ImportFormat.CSV]
    labels = [importer_for(f).label for f in list_import_formats()]
    assert len(set(labels)) == len(labels)  # the web page tells them apart by label
    with pytest.raises(
        ValueError, match=r"^import format 'yaml' is not one of openimages, coco, csv, parquet, json$"
    ):
        importer_for("yaml")


@pytest.mark.parametrize("fmt", list_import_formats())
def test_each_format_imports_through_import_labels(
    sm: sessionmaker[Session], tmp_path: Path, fmt: str
) -> None:
    s0 = sample(fmt, tmp_path / "files")
    keys = {k for _, k, _ in s0.cells}
    classes = classes_for(fmt, s0, tmp_path)
    with sm.begin() as s:
        report = import_labels(
            s, fmt, labels=s0.labels, classes=classes, dataset="d", split=Split.VAL, author="ann"
        )
    assert (report.file, report.labels_added, report.labels_changed) == (s0.labels.name, len(s0.cells), 0)
    assert report.classes_added == len(keys)
    with sm() as s:
        assert cells(s, "d") == s0.cells
        assert set(s.scalars(select(Image.split))) == {"val"}
        assert set(s.scalars(select(Label.author))) == {"ann"}
        if classes is not None:
            names = {k: v for k, v in s.execute(select(LabelClass.key, LabelClass.display_name))}
            assert names == {k: f"Name of {k}" for k in keys}
    with sm.begin() as s:  # the same file again changes nothing; the format may be given in any case
        again = import_labels(s, fmt.upper(), labels=s0.labels, classes=classes, dataset="d", split="val")
    assert (again.labels_added, again.labels_changed, again.labels_unchanged) == (0, 0, len(s0.cells))


REFUSED = [
    pytest.param(fmt, option, id=f"{fmt}-{option}")
    for fmt in list_import_formats()
    for option in OPTIONS
    if not takes(fmt, option)
]


@pytest.mark.parametrize(("fmt", "option"), REFUSED)
def test_an_option_the_format_does_not_take_is_refused(
    sm: sessionmaker[Session], tmp_path: Path, fmt: str, option: str
) -> None:
    s0 = sample(fmt, tmp_path / "files")
    with sm() as s:
        before = counts(s)
    what = {"classes": "classes file", "splits": "splits file", "absent": "absent policy"}[option]
    with (
        pytest.raises(ValueError, match=rf"^import format '{fmt}' takes no {what}; leave it out$"),
        sm.begin() as s,
    ):
        import_labels(s, fmt, labels=s0.labels, dataset="d", **{option: option_value(option, tmp_path)})
    with sm() as s:
        assert counts(s) == before


@pytest.mark.parametrize("fmt", list_import_formats())
def test_a_file_of_another_kind_is_one_line_and_changes_nothing(
    sm: sessionmaker[Session], tmp_path: Path, fmt: str
) -> None:
    good = sample(fmt, tmp_path / "files")
    with sm.begin() as s:
        import_labels(s, fmt, labels=good.labels, classes=classes_for(fmt, good, tmp_path), dataset="d")
    with sm() as s:
        before = counts(s)
    bad = write(tmp_path / f"bad{good.labels.suffix}", "this is not a label file\n")
    with pytest.raises(LabelFileError) as err, sm.begin() as s:
        import_labels(s, fmt, labels=bad, dataset="d")
    message = str(err.value)
    assert message.startswith(bad.name) and "\n" not in message
    with sm() as s:
        assert counts(s) == before


def test_format_options_reach_the_importer(sm: sessionmaker[Session], tmp_path: Path) -> None:
    oi = _openimages(tmp_path)
    splits = write(tmp_path / "splits.csv", "ImageID,Split\nb,test\n")
    classes = classes_file(tmp_path / "classes.csv", {"/m/c0", "/m/c1", "/m/c2"})
    with sm.begin() as s:
        import_labels(s, "openimages", labels=oi.labels, classes=classes, splits=splits, dataset="oi")
    with sm() as s:
        assert {i: sp for i, sp in s.execute(select(Image.external_id, Image.split))} == {
            "a": "train",
            "b": "test",
        }
    instances = dump(tmp_path / "instances.json", coco())
    with sm.begin() as s:
        report = import_labels(s, ImportFormat.COCO, labels=instances, absent="unknown", dataset="coco")
    assert report.labels_added == 3
    with sm() as s:
        assert cells(s, "coco") == {("a", "person", 1), ("a", "car", 1), ("sub/b", "dog", 1)}
