"""`labelmend bench csl-gamma` on tiny settings: it measures the preset and reports paired differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.csl_gamma import csl_gamma_study, main, markdown
from bench.quality import QualitySettings, seed_data
from bench.quality_data import protocol_targets, resolve_bench_weights
from bench.quality_methods import HeadSettings, cross_fit, fit_head
from core.losses.registry import CSL_GAMMA_UNANN
from core.metrics import full_map
from core.priors import model_prior
from core.train import predict_head


def _tiny() -> QualitySettings:
    return QualitySettings.quick(n_images=240, seeds=1, image_size=32, embed_size=64, fpc_per_class=8,
                                 protocols=("rps-0.5", "openimages"), head=HeadSettings(epochs=5))  # fmt: skip


def test_study_measures_the_preset_and_the_paper_value(tmp_path: Path) -> None:
    settings = _tiny()
    lines: list[str] = []
    other = 1.5 if CSL_GAMMA_UNANN != 1.5 else 4.0
    result = csl_gamma_study([CSL_GAMMA_UNANN, other], settings, cache_dir=tmp_path, say=lines.append)
    runs = result["runs"]
    assert list(runs) == ["rps-0.5", "openimages"] and len(lines) == 2
    preset = f"csl-g{CSL_GAMMA_UNANN:g}"
    for arms in runs.values():
        assert set(arms) == {"negative", "ignore", preset, f"csl-g{other:g}"}
        assert all(len(v) == 1 and 0.0 < v[0] <= 100.0 for v in arms.values())

    # The preset arm is the `csl` preset that bench quality trains: same data, masks, prior, seed.
    seed = settings.first_seed
    weights = resolve_bench_weights(settings.backbone, settings.pretrained, tmp_path)
    data = seed_data(settings, seed, tmp_path, weights)
    targets = protocol_targets(data, "openimages", fpc_per_class=settings.fpc_per_class, seed=seed * 100 + 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the study: float sums, hence the heads, depend on the thread count
    try:
        prior = model_prior(cross_fit(data.x_train, targets, "ignore", settings.head, seed=seed), targets)
        head = fit_head(data.x_train, targets, "csl", settings.head, seed=seed, prior=prior)
    finally:
        torch.set_num_threads(threads)
    expected = full_map(predict_head(head, data.x_test), data.y_test).map
    assert runs["openimages"][preset][0] == pytest.approx(expected, abs=1e-6)
    assert runs["openimages"][f"csl-g{other:g}"][0] != pytest.approx(expected, abs=1e-6)

    table = markdown(result)
    assert f"| {preset} (preset) |" in table
    diff = np.subtract(runs["openimages"][preset], runs["openimages"]["negative"])[0]
    assert f"| {preset} − negative | " in table and f"{diff:.2f} ± 0.00" in table


def test_bad_gammas_get_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"gammas must be one or more numbers ≥ 0"):
        csl_gamma_study([-1.0], _tiny(), cache_dir=Path("/nonexistent"))
    with pytest.raises(SystemExit):
        main(["--gammas", "1,x"])
    assert "--gammas must be comma-separated numbers, got '1,x'" in capsys.readouterr().err
