"""The torch-free loss catalog agrees with the torch-based registry and imports without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.losses import LOSS_DESCRIPTIONS, LossName, describe_loss, list_losses, loss_names


def test_catalog_names_equal_the_registry() -> None:
    assert loss_names() == list_losses()
    assert list(LOSS_DESCRIPTIONS) == list(LossName)
    assert all(text and "\n" not in text for text in LOSS_DESCRIPTIONS.values())


def test_describe_loss() -> None:
    assert describe_loss("csl").startswith("csl — class-aware selective loss")
    with pytest.raises(ValueError, match="unknown loss 'focal'; valid losses: ignore, negative"):
        describe_loss("focal")


def test_catalog_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "import core.losses\n"
        "from core.losses.catalog import loss_names\n"
        "assert loss_names()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "core.losses.list_losses()\n"
        "assert 'torch' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
