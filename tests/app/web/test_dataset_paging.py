"""AppTest: the Dataset page shows one page of classes at a time, with search, on a 120-class store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.store import close_stores, open_store
from app.web import MAIN_SCRIPT
from tests.app.web.seed import seed_dataset

N_CLASSES = 120
PAGE_SIZE = 50  # app/web/views/dataset.py PAGE_SIZE (importing a page module runs the page)


@pytest.fixture
def app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("LABELMEND_DB", db_url)
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    store = open_store(db_url)
    with store.write() as s:
        seed_dataset(s, tmp_path / "images", n_classes=N_CLASSES, n_images=8, n_suggestions=30, hostile=False)
    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=60)
    at.session_state["annotator"] = "ann"
    at.run()
    at.switch_page("views/dataset.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="dataset-sort").set_value("column order").run()
    yield at
    close_stores()


def _keys(at: AppTest) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return list(at.dataframe[0].value["key"])


def _bars(at: AppTest) -> list[str]:
    """The x labels of the first bar trace of the labels-per-class chart."""
    chart = next(e for e in at.get("plotly_chart") if "dataset-labels" in e.proto.id)
    return list(json.loads(chart.proto.spec)["data"][0]["x"])


def test_pages_of_classes(app: AppTest) -> None:
    assert _keys(app) == [f"/m/c{j}" for j in range(PAGE_SIZE)]
    assert len(_bars(app)) == PAGE_SIZE  # one bar per class of the page, not one per class
    app.number_input(key="dataset-page").set_value(3).run()
    assert _keys(app) == [f"/m/c{j}" for j in range(2 * PAGE_SIZE, N_CLASSES)]
    assert len(_bars(app)) == N_CLASSES - 2 * PAGE_SIZE
    assert any(f"Classes 101–{N_CLASSES} of {N_CLASSES:,}" in c.value for c in app.caption)


def test_search_narrows_and_goes_back_to_page_one(app: AppTest) -> None:
    app.number_input(key="dataset-page").set_value(2).run()
    app.text_input(key="dataset-class-search").input("C11").run()  # key substring, any case
    assert _keys(app) == ["/m/c11", *(f"/m/c{j}" for j in range(110, 120))]
    assert app.number_input(key="dataset-page").value == 1
    app.text_input(key="dataset-class-search").input("class 7").run()  # display name substring
    assert _keys(app) == ["/m/c7", *(f"/m/c{j}" for j in range(70, 80))]
    app.text_input(key="dataset-class-search").input("no such class").run()
    assert not app.exception
    assert any("No class matches" in c.value for c in app.caption)
    assert len(app.dataframe) == 0
