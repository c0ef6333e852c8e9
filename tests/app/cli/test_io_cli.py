"""`labelmend import …`, `export`, `stats` and `bench import` through the real CLI (CliRunner),
on SQLite and PostgreSQL; bad files exit 1 with one line."""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.store import close_stores, open_store
from db.datasets import get_dataset
from db.errors import LabelFileError
from db.io import importer_for, list_import_formats, recent_exports
from tests.db.test_import_openimages import CLASSES, HEADER, make_images, write

runner = CliRunner()


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    close_stores()


def invoke(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_import_stats_export(db_url: str, tmp_path: Path) -> None:
    folder = make_images(tmp_path / "img", ["a.jpg", "b.jpg", "c.jpg"])
    labels = write(tmp_path / "labels.csv", HEADER + "a,v,/m/c0,1\nb,v,/m/c0,0\nb,v,/m/c2,1\nb,v,/m/c2,1\n")
    classes = write(tmp_path / "classes.csv", CLASSES)
    result = invoke(
        "import", "openimages", "--labels", labels, "--classes", classes, "--images", folder,
        "--dataset", "oi", "--author", "ann", "--db", db_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "labels.csv: 4 rows read; labels 3 added, 0 changed, 0 unchanged; 3 images and 3 classes"
        in result.output
    )
    assert "1 duplicate rows collapsed" in result.output

    result = invoke("stats", "--dataset", "oi", "--out", tmp_path / "stats.csv", "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "oi: 3 images, 3 classes" in result.output
    row = next(line for line in result.output.splitlines() if "Hat, top" in line)
    assert [c for c in row.replace("│", " ").split() if c.isdigit()] == [
        "2",
        "1",
        "0",
        "2",
    ]  # position, positive, negative, unknown
    assert (tmp_path / "stats.csv").read_text(encoding="utf-8").splitlines()[1] == "/m/c0,Cat,0,1,1,1"

    out = tmp_path / "x.json"
    result = invoke("export", "--dataset", "oi", "--format", "json", "--out", out, "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "exported 3 labels of 3 images and 3 classes (json)" in result.output
    store = open_store(db_url)
    with store.read() as s:
        (record,) = recent_exports(s, get_dataset(s, "oi").id)
    assert (record.author, record.format, record.files, record.labels) == (
        getpass.getuser(),
        "json",
        [str(out)],
        3,
    )
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert {im["image"]: im["positives"] for im in doc["images"]} == {"a": ["/m/c0"], "b": ["/m/c2"], "c": []}

    result = invoke("import", "json", "--labels", out, "--dataset", "copy", "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "labels 3 added" in result.output


def test_csv_parquet_and_coco_commands(db_url: str, tmp_path: Path) -> None:
    table = pd.DataFrame(
        {"image": ["p1", "p2"], "label": ["dog", "cat"], "value": pd.array([1, 0], dtype="int8")}
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet")
    for kind in ("csv", "parquet"):
        result = invoke("import", kind, "--labels", tmp_path / f"t.{kind}", "--dataset", kind, "--db", db_url)
        assert result.exit_code == 0, result.output
        assert f"t.{kind}: 2 rows read; labels 2 added" in result.output
    coco = {
        "images": [{"id": 1, "file_name": "x.jpg"}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [{"image_id": 1, "category_id": 2}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(coco), encoding="utf-8")
    result = invoke(
        "import", "coco", "--annotations", tmp_path / "instances.json", "--absent", "unknown",
        "--dataset", "coco", "--db", db_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "instances.json: 1 rows read; labels 1 added" in result.output
    result = invoke(
        "export", "--dataset", "coco", "--format", "csv", "--out", tmp_path / "c.csv", "--db", db_url
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.csv").read_text(encoding="utf-8").splitlines()[1].startswith("x,dog,1,import,")


def test_bad_file_is_one_line_and_exit_1(db_url: str, tmp_path: Path) -> None:
    bad = write(tmp_path / "labels.csv", HEADER + "a,v,/m/c0,1\na,v,/m/zz,1\n")
    classes = write(tmp_path / "classes.csv", CLASSES)
    result = invoke("import", "openimages", "--labels", bad, "--classes", classes, "--db", db_url)
    assert result.exit_code == 1
    assert isinstance(result.exception, LabelFileError)
    assert str(result.exception) == (
        'labels.csv:3: class "/m/zz" is not in the class file; add it to the classes file or remove the row'
    )
    result = invoke("stats", "--dataset", "default", "--db", db_url)  # the failed import left nothing
    assert result.exit_code == 1 and "dataset 'default' does not exist" in str(result.exception)
    # The console entry point prints exactly one line on stderr.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "import",
            "csv",
            "--labels",
            str(bad),
            "--db",
            db_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ['error: labels.csv:1: missing column "image" (the header is '
                                                '"ImageID,Source,LabelName,Confidence"); the first line must name '
                                                "the columns image,label,value"]  # fmt: skip


@pytest.mark.parametrize("fmt", list_import_formats())
def test_each_import_format_has_a_command_with_the_options_it_takes(fmt: str) -> None:
    entry = importer_for(fmt)
    result = runner.invoke(app, ["import", fmt, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert entry.summary in result.output
    options = set(re.findall(r"--[a-z-]+", result.output))
    assert f"--{entry.file_option}" in options
    assert {"--images", "--dataset", "--split", "--author", "--db"} <= options
    assert ("--classes" in options, "--splits" in options, "--absent" in options) == (
        entry.classes,
        entry.splits,
        entry.absent,
    )


def test_bench_import_prints_both_times_and_the_ratio(tmp_path: Path) -> None:
    result = invoke(
        "bench", "import", "--rows", "3000", "--classes", "30", "--images", "300", "--workdir", tmp_path / "b",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "rows 3,000, classes 30, images 300  (seconds: wall, cpu)"
    ours = [float(x) for x in lines[1].split()[2:4]]
    raw = [float(x) for x in lines[2].split()[2:4]]
    ratio = [
        float(x) for x in next(line for line in lines if line.startswith("ratio ours/raw ")).split()[2:4]
    ]
    assert min(ours + raw) > 0
    assert ratio == pytest.approx([ours[0] / raw[0], ours[1] / raw[1]], rel=0.05, abs=0.02)
    assert (tmp_path / "b" / "bench-labels.csv").read_text(encoding="utf-8").count("\n") == 3001
