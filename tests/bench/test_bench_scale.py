"""`labelmend bench scale` end to end at a small size, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli import bench_app
from bench.scale import ScaleConfig, generate


def test_generated_files_are_openimages_shaped_and_structured(tmp_path: Path) -> None:
    chunks: list[np.ndarray] = []
    files = generate(ScaleConfig(images=3_000, classes=300), tmp_path, lambda _ids, e: chunks.append(e),
                     lambda *_: None)  # fmt: skip
    labels = pd.read_csv(files.labels)
    assert list(labels.columns) == ["ImageID", "Source", "LabelName", "Confidence"]
    assert len(labels) == files.n_labels == 3_000 * 8
    assert not labels.duplicated(["ImageID", "LabelName"]).any()
    assert 0.1 < labels.Confidence.mean() < 0.5  # candidate-style verification: a minority positive
    assert pd.read_csv(files.splits).Split.value_counts().to_dict() == {"train": 2_700, "val": 300}
    emb = np.concatenate(chunks)
    assert emb.shape == (3_000, 512) and emb.dtype == np.float16


def test_bench_scale_writes_every_figure(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    args = [
        "scale",
        "--images",
        "4000",
        "--classes",
        "120",
        "--top",
        "500",
        "--pending",
        "3000",
        "--out",
        str(out),
    ]
    if db_url.startswith("postgresql"):
        args += ["--db", db_url]
    result = CliRunner().invoke(bench_app, args)
    assert result.exit_code == 0, result.output
    r = json.loads((out / "results.json").read_text())
    assert r["backend"] == ("postgresql" if db_url.startswith("postgresql") else "sqlite")
    for key in (
        "import_s",
        "import_ratio_vs_raw",
        "cycle_s",
        "peak_rss_gib",
        "review_next_p95_ms",
        "partial_map",
    ):
        assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, key
    assert set(r["stages"]) == {"load", "features", "prior", "target", "evaluate", "suggest", "store"}
    assert r["n_suggestions"] == 500 and r["review"]["uses_index"] is True and r["review"]["pending"] >= 3_000
    top = pd.read_csv(out / "top_suggestions.csv")
    assert len(top) == 500 and top.score.is_monotonic_decreasing
