"""`labelmend bench folds` on tiny settings: real cycles per K, stored rankings scored against the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from bench.folds_study import FoldsSettings, markdown_report, run_folds_study


def test_study_runs_a_cycle_per_k_and_scores_the_stored_ranking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELMEND_HOME", str(tmp_path / "home"))
    settings = FoldsSettings(n_images=200, seeds=1, folds=(1, 2), protocols=("rps-0.5",), epochs=5,
                             image_size=32, embed_size=64)  # fmt: skip
    steps: list[str] = []
    results = run_folds_study(settings, out_dir=tmp_path / "out", step=steps.append)

    assert len(steps) == 2
    by_k = results["folds"]["rps-0.5"]
    assert set(by_k) == {"1", "2"}
    seed = results["per_seed"][0]["protocols"]["rps-0.5"]
    assert seed["n_unknown"] > 0
    for r in by_k.values():
        assert 0.0 <= r["ap"]["mean"] <= 1.0
        assert all(0.0 <= r["precision"][k]["mean"] <= 1.0 for k in ("1%", "100", "1000"))
        assert r["suggest_seconds"]["mean"] > 0
    # K = 2 trains two more heads while scoring: it must take longer than scoring in-sample.
    assert by_k["2"]["suggest_seconds"]["mean"] > by_k["1"]["suggest_seconds"]["mean"]
    saved = json.loads((tmp_path / "out" / "folds.json").read_text())
    assert saved["folds"].keys() == results["folds"].keys()
    report = (tmp_path / "out" / "report.md").read_text()
    assert report == markdown_report(results) and "## rps-0.5" in report


def test_settings_are_validated_and_the_command_parses() -> None:
    with pytest.raises(ValueError, match="folds must be"):
        FoldsSettings(folds=(0,))
    with pytest.raises(ValueError, match="unknown protocol"):
        FoldsSettings(protocols=("rps-0.3",))
    with pytest.raises(ValueError, match="not 'file'"):
        FoldsSettings(pretrained="file")
    default = FoldsSettings()
    assert (default.backbone, default.pretrained.value, default.image_size, default.embed_size) == (
        "tf_efficientnet_lite0", "packaged", 64, 224)  # fmt: skip
    result = CliRunner().invoke(cli, ["bench", "folds", "--help"])
    assert result.exit_code == 0 and "--quick" in result.output and "--seeds" in result.output
    assert "--pretrained" in result.output and "--embed-size" in result.output
    refused = CliRunner().invoke(cli, ["bench", "folds", "--quick", "--pretrained", "file"])
    assert refused.exit_code == 1 and "not 'file'" in refused.output
