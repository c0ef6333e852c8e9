"""The app's pages never import torch: they list loss presets from the torch-free catalog."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.store import Store
from tests.app.web.seed import Seeded

#: Renders every page once in a fresh interpreter (AppTest), then reports any torch module loaded.
_RENDER_ALL = """
import sys
from streamlit.testing.v1 import AppTest
from app.web import MAIN_SCRIPT

at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=60)
at.session_state["annotator"] = "ann"
at.run()
for page in ("train", "class_grid", "image", "dataset", "models", "import_export"):
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, (page, [e.value for e in at.exception])
    if page == "train":
        assert at.selectbox(key="train-loss").value == "csl"
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pages_render_without_importing_torch(seeded: tuple[Store, Seeded]) -> None:
    done = subprocess.run([sys.executable, "-c", _RENDER_ALL], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
