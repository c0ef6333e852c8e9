"""Browser tests: Debian's Chromium driven by pytest-playwright against a real ``labelmend serve``.

Chromium comes from ``LABELMEND_CHROMIUM`` (default ``/usr/bin/chromium``; ``.ci/run`` installs it
with apt-get). ``playwright install`` is never needed. The server runs on a free port on a
temporary SQLite store seeded with generated data and real JPEG files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.store import Store, open_store
from bench.review_latency import CHROMIUM_ARGS, served
from tests.app.web.seed import Seeded, seed_dataset

CHROMIUM = os.environ.get("LABELMEND_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run `apt-get install -y chromium` or set LABELMEND_CHROMIUM"
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": list(CHROMIUM_ARGS),
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


@dataclass
class Served:
    """A running app: its base URL, the store behind it, and the seeded datasets by name."""

    base_url: str
    store: Store
    datasets: dict[str, Seeded]


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``labelmend serve`` on a seeded store: ``alpha`` (20 images, a hostile class name) and
    ``lat`` (40 images, 40 pending suggestions) for the latency measurement."""
    tmp = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{tmp / 'store.db'}"
    store = open_store(url)
    with store.write() as s:
        alpha = seed_dataset(s, tmp / "alpha", name="alpha", n_images=20, n_classes=5, n_suggestions=12)
        lat = seed_dataset(
            s, tmp / "lat", name="lat", n_images=40, n_classes=4, n_suggestions=40, hostile=False
        )
    with served(url, tmp / "home", tmp / "serve.log") as base:
        yield Served(base, store, {"alpha": alpha, "lat": lat})
    store.dispose()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
