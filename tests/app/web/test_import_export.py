"""AppTest: the Import / Export page imports by server path (all or nothing) and exports every format."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from app.store import Store
from app.web.components import md_escape
from db.io import importer_for, list_export_formats, list_import_formats
from db.labels import get_cell
from db.models import Label, LabelEvent
from tests.app.web.conftest import AppFactory
from tests.app.web.seed import Seeded


def _labels(store: Store) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(Label)) or 0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fmt", list_export_formats())
def test_export_each_format(
    make_app: AppFactory, seeded: tuple[Store, Seeded], fmt: str, tmp_path: Path
) -> None:
    store, _ = seeded
    at = make_app(annotator="ann", page="import_export")
    at.selectbox(key="export-format").set_value(fmt)
    at.button(key="export-run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    out = (
        tmp_path
        / "home"
        / "exports"
        / f"alpha-{fmt}{'.parquet' if fmt == 'parquet' else '.json' if fmt == 'json' else '.csv'}"
    )
    assert out.is_file()
    n = _labels(store)
    if fmt == "parquet":
        assert len(pd.read_parquet(out)) == n
    elif fmt == "json":
        doc = json.loads(out.read_text())
        assert sum(len(i["positives"]) + len(i["negatives"]) for i in doc["images"]) == n
    else:
        assert len(pd.read_csv(out)) == n
    assert any(m.value.startswith(md_escape(f"exported {n:,} labels")) for m in at.caption)
    downloads = [b for b in at.get("download_button") if (b.proto.label or "").startswith("Download ")]
    assert len(downloads) == (2 if fmt == "openimages" else 1)
    at.run()  # the next run lists it among the recent exports, under the annotator name typed
    (recent,) = [e for e in at.expander if e.label.startswith("Recent exports")]
    table = recent.dataframe[0].value
    assert (table["by"].tolist(), table["format"].tolist(), table["labels"].tolist()) == (
        ["ann"],
        [fmt],
        [n],
    )


def test_import_table_by_server_path(
    make_app: AppFactory, seeded: tuple[Store, Seeded], tmp_path: Path
) -> None:
    store, sd = seeded
    with store.read() as s:
        known = {(i, c) for i, c in s.execute(select(Label.image_id, Label.class_id))}
    cells = [(i, c) for i in sd.image_ids for c in sd.class_ids if (i, c) not in known][:3]
    table = tmp_path / "more.csv"
    rows = [
        (sd.external_ids[sd.image_ids.index(i)], f"/m/c{sd.class_ids.index(c)}", v)
        for (i, c), v in zip(cells, (1, 0, 1), strict=True)
    ]
    pd.DataFrame(rows, columns=["image", "label", "value"]).to_csv(table, index=False)
    at = make_app(annotator="ann", page="import_export")
    at.radio(key="import-kind").set_value("csv")
    at.text_input(key="import-path").input(str(table))
    at.button(key="import-run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("3 rows read" in m.value for m in at.success), [m.value for m in at.error]
    with store.read() as s:
        got = [get_cell(s, i, c) for i, c in cells]
    assert [(g.value, g.author, g.source) for g in got] == [
        (1, "ann", "import"),
        (0, "ann", "import"),
        (1, "ann", "import"),
    ]


def test_bad_import_changes_nothing(
    make_app: AppFactory, seeded: tuple[Store, Seeded], tmp_path: Path
) -> None:
    store, sd = seeded
    bad = tmp_path / "bad.csv"
    bad.write_text(f"image,label,value\n{sd.external_ids[0]},/m/c0,1\n{sd.external_ids[1]},/m/c1,yes\n")
    before = _labels(store)
    with store.read() as s:
        events = s.scalar(select(func.count()).select_from(LabelEvent))
    at = make_app(annotator="ann", page="import_export")
    at.radio(key="import-kind").set_value("csv")
    at.text_input(key="import-path").input(str(bad))
    at.button(key="import-run").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith(md_escape("Nothing imported: bad.csv:3")), errors
    assert _labels(store) == before
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(LabelEvent)) == events


def test_import_into_a_new_dataset_selects_it(
    make_app: AppFactory, seeded: tuple[Store, Seeded], tmp_path: Path
) -> None:
    table = tmp_path / "new.csv"
    table.write_text("image,label,value\nn1.jpg,/m/n1,1\nn2.jpg,/m/n1,0\n")
    at = make_app(annotator="ann", page="import_export")
    at.radio(key="import-kind").set_value("csv")
    at.text_input(key="import-dataset").input("fresh")
    at.text_input(key="import-path").input(str(table))
    at.button(key="import-run").click().run()
    assert not at.exception
    assert at.session_state["dataset"] == "fresh"
    assert at.selectbox(key="dataset_picker").value == "fresh"
    assert "fresh" in at.selectbox(key="dataset_picker").options


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_import_formats_and_labels_come_from_the_table(make_app: AppFactory) -> None:
    at = make_app(annotator="ann", page="import_export")
    radio = at.radio(key="import-kind")
    assert radio.options == [importer_for(f).label for f in list_import_formats()]
    assert radio.value == list_import_formats()[0]
    for fmt in list_import_formats():  # the classes field shows only for formats that take one
        at.radio(key="import-kind").set_value(fmt).run()
        assert not at.exception
        shown = any(t.key == "import-classes" for t in at.text_input)
        assert shown == importer_for(fmt).classes, fmt


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_import_parquet_by_server_path(
    make_app: AppFactory, seeded: tuple[Store, Seeded], tmp_path: Path
) -> None:
    table = tmp_path / "new.parquet"
    pd.DataFrame({"image": ["n1", "n2"], "label": ["/m/n1", "/m/n1"], "value": [1, 0]}).to_parquet(table)
    at = make_app(annotator="ann", page="import_export")
    at.radio(key="import-kind").set_value("parquet")
    at.text_input(key="import-dataset").input("pq")
    at.text_input(key="import-path").input(str(table))
    at.button(key="import-run").click().run()
    assert not at.exception
    assert any(m.value.startswith(md_escape("new.parquet: 2 rows read")) for m in at.success), [
        m.value for m in at.error
    ]
