"""CSV and Parquet label tables (image, label, value): classes from the file or a class file,
images by id or by path, Parquet dtype checks, and bad files that change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.errors import LabelFileError
from db.io import ImportReport, import_table
from db.models import Image, LabelClass
from tests.db.test_import_openimages import cells, counts, make_images, write


def run(sm: sessionmaker[Session], **kwargs: Any) -> ImportReport:
    with sm.begin() as s:
        return import_table(s, **kwargs)


def test_csv_creates_classes_in_order_and_registers_images_from_rows(
    sm: sessionmaker[Session], tmp_path: Path
) -> None:
    labels = write(
        tmp_path / "t.csv",
        "value,label,image,comment\n1,dog,p1.jpg,x\n0,cat,p1.jpg,y\n1,cat,p2.jpg,\n1,dog,p1.jpg,dup\n",
    )
    report = run(sm, labels=labels, dataset="pets", author="ann")
    assert (report.rows_read, report.labels_added, report.duplicate_rows, report.classes_added) == (
        4,
        3,
        1,
        2,
    )
    with sm() as s:
        assert cells(s, "pets") == {("p1.jpg", "dog", 1), ("p1.jpg", "cat", 0), ("p2.jpg", "cat", 1)}
        got = [
            (c.key, c.display_name, c.position)
            for c in s.scalars(select(LabelClass).order_by(LabelClass.position))
        ]
        assert got == [("dog", "dog", 0), ("cat", "cat", 1)]
        assert sorted(s.scalars(select(Image.path))) == ["p1.jpg", "p2.jpg"]


def test_csv_with_image_folder_matches_ids_and_paths(sm: sessionmaker[Session], tmp_path: Path) -> None:
    folder = make_images(tmp_path / "img", ["a.jpg"])
    make_images(folder / "sub", ["b.png", "c.jpg"])
    labels = write(tmp_path / "t.csv", "image,label,value\na,x,1\nsub/b.png,x,0\nsub/c,y,1\n")
    report = run(sm, labels=labels, images=folder, dataset="f")
    assert (report.images_registered, report.labels_added) == (3, 3)
    with sm() as s:
        assert cells(s, "f") == {("a", "x", 1), ("sub/b", "x", 0), ("sub/c", "y", 1)}
        assert sorted(s.scalars(select(Image.path))) == ["a.jpg", "sub/b.png", "sub/c.jpg"]
    missing = write(tmp_path / "t2.csv", "image,label,value\nsub/zz.png,x,1\n")
    with pytest.raises(
        LabelFileError, match=r'^t2\.csv:2: image "sub/zz\.png" is neither an image id nor a file under'
    ):
        run(sm, labels=missing, images=folder, dataset="f")


def test_class_file_makes_unknown_keys_errors(sm: sessionmaker[Session], tmp_path: Path) -> None:
    classes = write(tmp_path / "classes.csv", 'LabelName,DisplayName\nx,Ex\ny,"Why, not"\n')
    ok = write(tmp_path / "ok.csv", "image,label,value\ni1,y,1\ni2,x,0\n")
    run(sm, labels=ok, classes=classes, dataset="k")
    with sm() as s:
        names = [(c.key, c.display_name) for c in s.scalars(select(LabelClass).order_by(LabelClass.position))]
        assert names == [("x", "Ex"), ("y", "Why, not")]
        before = counts(s)
    bad = write(tmp_path / "bad.csv", "image,label,value\ni1,x,1\ni1,z,1\n")
    with pytest.raises(LabelFileError, match=r'^bad\.csv:3: class "z" is not in the classes file; add it'):
        run(sm, labels=bad, classes=classes, dataset="k")
    with sm() as s:
        assert counts(s) == before


BAD_CSV = [
    (
        "no value column",
        "image,label\na,x\n",
        r'^t\.csv:1: missing column "value" \(the header is "image,label"\)',
    ),
    ("empty", "", r"^t\.csv:1: the file is empty"),
    ("value true", "image,label,value\na,x,true\n", r'^t\.csv:2: value "true" is not 0 or 1'),
    ("negative", "image,label,value\na,x,1\nb,x,-1\n", r'^t\.csv:3: value "-1" is not 0 or 1'),
    (
        "escape",
        "image,label,value\n../../etc/passwd,x,1\n",
        r'^t\.csv:2: image id "\.\./\.\./etc/passwd" would point',
    ),
    (
        "absolute",
        "image,label,value\n/etc/passwd,x,1\n",
        r'^t\.csv:2: image id "/etc/passwd" would point outside',
    ),
    (
        "conflict",
        "image,label,value\na,x,0\na,x,1\n",
        r'^t\.csv:3: image "a" class "x" is 1 here but 0 on line 2',
    ),
    ("line break", 'image,label,value\n"a\nb",x,1\n', r'^t\.csv:2: image id "a\\nb" contains a line break'),
]


@pytest.mark.parametrize(("content", "message"), [pytest.param(c, m, id=i) for i, c, m in BAD_CSV])
def test_bad_csv(sm: sessionmaker[Session], tmp_path: Path, content: str, message: str) -> None:
    run(sm, labels=write(tmp_path / "first.csv", "image,label,value\na,x,1\n"), dataset="d")
    with sm() as s:
        before = counts(s)
    with pytest.raises(LabelFileError, match=message):
        run(sm, labels=write(tmp_path / "t.csv", content), dataset="d")
    with sm() as s:
        assert counts(s) == before


def _parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_parquet_import_streams_batches(sm: sessionmaker[Session], tmp_path: Path) -> None:
    n = 2_500
    frame = pd.DataFrame(
        {
            "image": [f"im{i // 5}" for i in range(n)],
            "label": [f"c{i % 5}" for i in range(n)],
            "value": pd.array([i % 2 for i in range(n)], dtype="int8"),
        }
    )
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, row_group_size=700)
    report = run(sm, labels=path, dataset="pq", chunk_rows=600)
    assert (report.rows_read, report.labels_added, report.images_registered, report.classes_added) == (
        n,
        n,
        500,
        5,
    )
    with sm() as s:
        got = cells(s, "pq")
    assert got == {(f"im{i // 5}", f"c{i % 5}", i % 2) for i in range(n)}
    flags = _parquet(
        tmp_path / "b.parquet",
        pa.table({"image": ["x", "y"], "label": ["c0", "c0"], "value": pa.array([True, False])}),
    )
    assert run(sm, labels=flags, dataset="pq").labels_added == 2


BAD_PARQUET = [
    (
        "value as text",
        pa.table({"image": ["a"], "label": ["x"], "value": ["1"]}),
        r'^t\.parquet: column "value" has type string, not integer; store 1/0 as integers',
    ),
    (
        "value as float",
        pa.table({"image": ["a"], "label": ["x"], "value": [1.0]}),
        r'^t\.parquet: column "value" has type double, not integer',
    ),
    (
        "image as integer",
        pa.table({"image": [7], "label": ["x"], "value": [1]}),
        r'^t\.parquet: column "image" has type int64, not text',
    ),
    (
        "missing label",
        pa.table({"image": ["a"], "value": [1]}),
        r'^t\.parquet: missing column "label" \(columns: "image,value"\)',
    ),
    (
        "null image",
        pa.table({"image": ["a", None], "label": ["x", "x"], "value": [1, 1]}),
        r"^t\.parquet:2: empty image; fill it in or delete the row",
    ),
    (
        "value 2",
        pa.table({"image": ["a", "b", "c"], "label": ["x", "x", "x"], "value": [1, 0, 2]}),
        r'^t\.parquet:3: value "2" is not 0 or 1',
    ),
]


@pytest.mark.parametrize(("table", "message"), [pytest.param(t, m, id=i) for i, t, m in BAD_PARQUET])
def test_bad_parquet(sm: sessionmaker[Session], tmp_path: Path, table: pa.Table, message: str) -> None:
    run(sm, labels=write(tmp_path / "first.csv", "image,label,value\na,x,1\n"), dataset="d")
    with sm() as s:
        before = counts(s)
    with pytest.raises(LabelFileError, match=message):
        run(sm, labels=_parquet(tmp_path / "t.parquet", table), dataset="d")
    with sm() as s:
        assert counts(s) == before


def test_not_a_parquet_file(sm: sessionmaker[Session], tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", "image,label,value\na,x,1\n")
    with pytest.raises(LabelFileError, match=r"^t\.parquet: not a readable Parquet file"):
        run(sm, labels=path)


# ------------------------------------------------------------------------- fuzzing

VALID = b'image,label,value\r\na,x,1\n"b,1",y,0\nc,"q""z",1.0\n'


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(
            st.sampled_from([b",", b'"', b"\n", b"\r", b"\x00", b"\xff", b"1", b"0", b"-", b" ", b"x"])
        )
        if op == "insert":
            data[pos:pos] = byte
        elif pos < len(data):
            data[pos : pos + 1] = b"" if op == "delete" else byte
    return bytes(data)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=200), mutated()))
def test_fuzzed_csv_never_crashes_and_never_half_imports(
    sm: sessionmaker[Session], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    with sm() as s:
        before = counts(s)
    try:
        report = run(sm, labels=path, dataset="fuzz")
    except LabelFileError as err:
        message = str(err)
        assert message.startswith("fuzz.csv") and "\n" not in message and "; " in message
        with sm() as s:
            assert counts(s) == before
        return
    with sm() as s:
        after = counts(s)
    assert after[0] == before[0] + report.labels_added
    assert after[1] == before[1] + report.labels_added + report.labels_changed
