"""`labelmend embed` (app/commands/embed.py): alone, and under torchrun with 2 gloo CPU processes, it
fills the cache the cycle's head-mode features stage reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.pipeline.config import CycleConfig, WeightsSource
from app.pipeline.features import prepare_features
from app.pipeline.fit import Scorer
from app.pipeline.load import load_dataset
from app.store import Store, open_store
from db.datasets import get_dataset
from db.errors import NotFoundError
from tests.app.seed import seed_store

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()
SETTINGS = ["--backbone", "resnet10t", "--pretrained", "none", "--image-size", "40", "--batch-size", "16",
            "--workers", "0", "--device", "cpu"]  # fmt: skip
CONFIG = CycleConfig(dataset="toy", backbone="resnet10t", pretrained=WeightsSource.NONE, image_size=40,
                     batch_size=16, workers=0, device="cpu")  # fmt: skip


@pytest.fixture
def store(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    return open_store(db_url)


def _features_stage(store: Store, tmp_path: Path) -> tuple[Scorer, list[str]]:
    """The cycle's features stage on ``CONFIG``, as ``run_cycle`` builds it; returns its messages."""
    with store.read() as s:
        data = load_dataset(s, get_dataset(s, "toy"))
    scorer = Scorer(CONFIG, data, tmp_path / "work", store.home / "cache")
    messages: list[str] = []
    prepare_features(scorer, lambda _f, m: messages.append(m))
    return scorer, messages


def test_one_process_embeds_once_then_finds_everything_cached(store: Store, tmp_path: Path) -> None:
    seed_store(store, tmp_path / "data", n_images=40)
    res = runner.invoke(app, ["embed", "--dataset", "toy", *SETTINGS, "--db", store.url])
    assert res.exit_code == 0, res.output
    assert "40 of 40 images cached in " in res.output and "(40 computed by 1 process(es)" in res.output
    again = runner.invoke(app, ["embed", "-d", "toy", *SETTINGS, "--db", store.url])
    assert again.exit_code == 0 and "(0 computed by 1 process(es)" in again.output
    _, messages = _features_stage(store, tmp_path)
    assert messages[-1] == "40 images embedded (0 new, 0 unreadable)"


def test_unknown_dataset_names_the_known_ones(store: Store, tmp_path: Path) -> None:
    seed_store(store, tmp_path / "data", n_images=10)
    res = runner.invoke(app, ["embed", "-d", "nope", *SETTINGS, "--db", store.url])
    assert res.exit_code != 0 and isinstance(res.exception, NotFoundError)
    assert "dataset 'nope' does not exist (datasets: toy)" in str(res.exception)


@pytest.mark.slow
def test_torchrun_two_processes_fill_the_cache_the_cycle_reads(store: Store, tmp_path: Path) -> None:
    seeded = seed_store(store, tmp_path / "data", n_images=60)
    with store.read() as s:
        root = Path(get_dataset(s, "toy").image_root)
    broken = seeded.image_ids[41]
    (root / f"{broken}.jpg").write_bytes(b"")  # rank 1's: reported once, by rank 0, for both
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "LABELMEND_HOME": str(store.home)}  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "app.cli", "embed", "--dataset", "toy", *SETTINGS, "--db", store.url]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-6000:]
    assert done.stdout.count("images cached in") == 1  # rank 0 reports
    assert "59 of 60 images cached in " in done.stdout and "(59 computed by 2 process(es)" in done.stdout
    assert f"1 unreadable images skipped: {broken} (empty file (0 bytes))" in done.stderr

    scorer, messages = _features_stage(store, tmp_path)
    assert messages[-1] == "59 images embedded (0 new, 1 unreadable)"  # every row a cache hit
    assert scorer.features is not None and scorer.feature_row is not None
    assert scorer.features.shape[0] == 59 and scorer.feature_row[41] == -1
    assert np.isfinite(scorer.features).all()
