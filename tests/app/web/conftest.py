"""Fixtures for AppTest page tests: a seeded store on each backend and an app factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.store import Store, close_stores, open_store
from app.web import MAIN_SCRIPT
from tests.app.web.seed import Seeded, seed_dataset

AppFactory = Callable[..., AppTest]


@pytest.fixture
def seeded(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, Seeded]]:
    """A store with the small seeded dataset ``alpha``; the app reads it through ``LABELMEND_DB``."""
    monkeypatch.setenv("LABELMEND_DB", db_url)
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    store = open_store(db_url)
    with store.write() as s:
        seeded = seed_dataset(s, tmp_path / "images")
    yield store, seeded
    close_stores()


@pytest.fixture
def make_app(seeded: tuple[Store, Seeded]) -> AppFactory:
    """``make_app(annotator=None, page=None, **state)``: an AppTest run once, then on ``page``."""

    def make(annotator: str | None = None, page: str | None = None, **session: object) -> AppTest:
        at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=60)
        if annotator is not None:
            at.session_state["annotator"] = annotator
        for key, value in session.items():
            at.session_state[key] = value
        at.run()
        if page is not None:
            at.switch_page(f"views/{page}.py").run()
        return at

    return make
