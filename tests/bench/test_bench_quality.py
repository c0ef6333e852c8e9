"""`labelmend bench quality` end to end on tiny settings: the report's structure and sanity.

The run uses the ``--quick`` preset scaled down through its parameters (240 images rendered at
32 px and embedded at 64 px by the default backbone with its packaged ImageNet weights, 10-epoch
heads), so it checks that every part runs and reports sane numbers, not which method wins.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import app as cli
from app.pipeline.config import CycleConfig, WeightsSource
from app.pipeline.load import load_dataset
from app.store import open_store
from bench.quality import QualitySettings, run_quality_bench, total_steps
from bench.quality_data import PROTOCOLS, SeedData, prepare_seed, protocol_targets, resolve_bench_weights
from bench.quality_methods import K_LABELS, PRIOR_ESTIMATORS, RANKERS, HeadSettings, ranking_quality
from bench.quality_oracle import ORACLE, run_oracle
from bench.quality_report import markdown_tables
from core.losses import list_losses
from core.synthetic import SceneConfig
from db.datasets import get_dataset
from db.models import Label, LabelEvent, Suggestion

TINY_EMBED = 64


def _tiny(**overrides: Any) -> QualitySettings:
    base: dict[str, Any] = dict(n_images=240, seeds=2, image_size=32, embed_size=TINY_EMBED, fpc_per_class=8,
                                oracle_review=30, oracle_cycles=2, head=HeadSettings(epochs=10))  # fmt: skip
    return QualitySettings.quick(**{**base, **overrides})


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quality-cache")


@pytest.fixture(scope="module")
def run(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, list[str]]:
    out = tmp_path_factory.mktemp("quality-out")
    steps: list[str] = []
    results = run_quality_bench(_tiny(), cache_dir=cache_dir, out_dir=out, step=steps.append)
    return results, out, steps


def test_quick_preset_and_validation() -> None:
    quick = QualitySettings.quick()
    assert (quick.n_images, quick.seeds, quick.fpc_per_class, quick.oracle_review) == (600, 2, 10, 100)
    assert QualitySettings().protocols == ("fpc", "rps-0.5", "rps-0.8", "openimages")
    with pytest.raises(ValueError, match=r"unknown protocol 'rps-0\.3'"):
        QualitySettings(protocols=("rps-0.3",))
    with pytest.raises(ValueError, match="unknown loss 'bce'"):
        QualitySettings(oracle_losses=("bce",))
    default = QualitySettings()
    assert (default.backbone, default.pretrained, default.image_size, default.embed_size) == (
        "tf_efficientnet_lite0", WeightsSource.PACKAGED, 64, 224)  # fmt: skip
    assert QualitySettings(pretrained="none").pretrained is WeightsSource.NONE
    with pytest.raises(ValueError, match="embed with pretrained packaged, hub, none, not 'file'"):
        QualitySettings(pretrained="file")
    with pytest.raises(ValueError, match="unknown weights source 'standin'"):
        QualitySettings(pretrained="standin")
    with pytest.raises(ValueError, match="embed_size must be"):
        QualitySettings(embed_size=8)


def test_command_options_parse() -> None:
    result = CliRunner().invoke(cli, ["bench", "quality", "--help"])
    assert result.exit_code == 0
    for option in ("--quick", "--seeds", "--out", "--backbone", "--pretrained", "--embed-size"):
        assert option in result.output
    assert CliRunner().invoke(cli, ["bench", "quality", "--seeds", "0"]).exit_code == 2
    refused = CliRunner().invoke(cli, ["bench", "quality", "--quick", "--pretrained", "file"])
    assert refused.exit_code == 1 and "not 'file'" in refused.output


def test_results_json_has_the_contract_keys(run: tuple[dict[str, Any], Path, list[str]]) -> None:
    _, out, steps = run
    assert len(steps) == total_steps(_tiny())
    on_disk = json.loads((out / "results.json").read_text())  # strict JSON: no NaN
    assert on_disk["seeds"] == [1000, 1001]
    settings = on_disk["settings"]
    assert (settings["pretrained"], settings["image_size"], settings["embed_size"]) == (
        "packaged",
        32,
        TINY_EMBED,
    )
    for key in ("map", "prior_mae", "precision_at_k", "suggestion_ap", "map_diff_vs_csl"):
        assert list(on_disk[key]) == list(PROTOCOLS), key
    for p in PROTOCOLS:
        assert list(on_disk["map"][p]) == [*list_losses(), "supervised"]
        for value in on_disk["map"][p].values():
            assert 0.0 < value["mean"] <= 100.0 and value["std"] >= 0.0 and value["n"] == 2
        assert list(on_disk["prior_mae"][p]) == list(PRIOR_ESTIMATORS)
        assert all(0.0 <= v["mean"] <= 1.0 for v in on_disk["prior_mae"][p].values())
        assert list(on_disk["precision_at_k"][p]) == list(RANKERS)
        for ranker in RANKERS:
            assert list(on_disk["precision_at_k"][p][ranker]) == list(K_LABELS)
            assert all(0.0 <= v["mean"] <= 1.0 for v in on_disk["precision_at_k"][p][ranker].values())
        assert set(on_disk["ours_over_cleanlab"][p]) == {*K_LABELS, "ap"}
    assert list(on_disk["oracle"]) == ["csl", "negative", "ignore"]
    for loss, per_cycle in on_disk["oracle"].items():
        assert len(per_cycle) == 2 and all(0.0 <= v <= 1.0 for v in per_cycle)
        assert len(on_disk["oracle_map"][loss]) == 3


def test_numbers_are_consistent_with_the_data(run: tuple[dict[str, Any], Path, list[str]]) -> None:
    results, _, _ = run
    for seed in results["per_seed"]:
        for p, r in seed["protocols"].items():
            n_unknown = r["n_unknown"]
            assert r["k_values"] == {"1%": max(1, round(0.01 * n_unknown)), "100": 100, "1000": 1000}
            assert 0 < r["n_hidden"] < n_unknown
            base_rate = r["n_hidden"] / n_unknown
            # A random ranking's AP is about the positive rate among the ranked cells.
            assert abs(r["ap"]["random"] - base_rate) < 0.05 + base_rate, p
        for oracle in seed["oracle"].values():
            assert oracle["reviewed"] == [30, 30]
            assert all(0 <= a <= 30 for a in oracle["accepted"])
    for p in PROTOCOLS:  # the paired differences and ordering verdicts follow the per-seed numbers
        diffs = [
            s["protocols"][p]["map"]["ignore"] - s["protocols"][p]["map"]["csl"] for s in results["per_seed"]
        ]
        assert results["map_diff_vs_csl"][p]["ignore"]["mean"] == pytest.approx(float(np.mean(diffs)))
        checks = results["orderings"][p]["checks"]
        assert len(checks) == 3 and all(c["holds"] == (c["diff"]["mean"] > 0) for c in checks)
    assert results["oracle"]["csl"][0] == pytest.approx(
        np.mean([s["oracle"]["csl"]["accepted"][0] / 30 for s in results["per_seed"]])
    )


def test_report_and_charts_are_written(run: tuple[dict[str, Any], Path, list[str]]) -> None:
    results, out, _ = run
    report = (out / "report.md").read_text()
    for heading in ("### Test mAP", "### Paired difference vs csl", "### Published orderings",
                    "### Class-prior error", "### Simulated review loop"):  # fmt: skip
        assert heading in report
    for p in PROTOCOLS:
        assert f"### Missing-label suggestions, {p}" in report
    assert "| **ours / cleanlab** |" in report
    assert markdown_tables(results) in report
    for chart in ("map.html", "prior_mae.html", "suggestions.html", "oracle.html"):
        html = (out / chart).read_text()
        assert 'src="plotly.min.js"' in html and "Plotly.newPlot" in html
    assert (out / "plotly.min.js").stat().st_size > 1_000_000


def test_ranking_quality_counts_hits_in_rank_order() -> None:
    truth = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.int8)
    unknown = np.array([[True, True, False], [True, True, True]])
    scores = np.array([[0.9, 0.8, 5.0], [0.1, 0.7, 0.6]])  # the annotated cell's 5.0 is not ranked
    precision, ap = ranking_quality(scores, unknown, truth, {"1": 1, "3": 3, "5": 5})
    # Ranked unknown cells: 0.9 (hit), 0.8, 0.7, 0.6 (hit), 0.1.
    assert precision == {"1": 1.0, "3": pytest.approx(1 / 3), "5": pytest.approx(2 / 5)}
    assert ap == pytest.approx((1.0 + 2 / 4) / 2)


@pytest.fixture(scope="module")
def seed_data(cache_dir: Path) -> SeedData:
    settings = _tiny()
    weights = resolve_bench_weights(settings.backbone, settings.pretrained, cache_dir)
    return prepare_seed(7, n_images=120, scene=settings.scene(), split_fractions=(0.7, 0.0, 0.3),
                        backbone=settings.backbone, weights=weights, embed_size=TINY_EMBED, normalize=True,
                        cache_dir=cache_dir)  # fmt: skip


def test_embedding_caches_keep_render_size_and_normalisation_apart(
    cache_dir: Path, seed_data: SeedData
) -> None:
    settings = _tiny()
    weights = resolve_bench_weights(settings.backbone, settings.pretrained, cache_dir)

    def prepare(render: int, normalize: bool) -> SeedData:
        return prepare_seed(7, n_images=120, scene=SceneConfig(image_size=render), split_fractions=(0.7, 0.0, 0.3),
                            backbone=settings.backbone, weights=weights, embed_size=TINY_EMBED,
                            normalize=normalize, cache_dir=cache_dir)  # fmt: skip

    again = prepare(32, True)  # the same settings: read back from the cache
    np.testing.assert_array_equal(again.x_train, seed_data.x_train)
    other_render = prepare(48, True)  # same seed, same ImageIDs, other pixels
    assert other_render.dataset.image_ids == seed_data.dataset.image_ids
    assert not set(other_render.image_ids) & set(seed_data.image_ids)
    assert not np.allclose(other_render.x_train, seed_data.x_train)
    unnormalised = prepare(32, False)
    assert unnormalised.image_ids == seed_data.image_ids
    assert not np.allclose(unnormalised.x_train, seed_data.x_train)


def test_oracle_decides_through_the_review_path(db_url: str, seed_data: SeedData) -> None:
    store = open_store(db_url)
    targets = protocol_targets(seed_data, "openimages", fpc_per_class=8, seed=1)
    result = run_oracle(store, "oracle-test", seed_data, targets, "csl", HeadSettings(epochs=5),
                        cycles=2, review=20, seed=0)  # fmt: skip
    assert result.reviewed == [20, 20]
    assert len(result.test_map) == 3 and all(0 < m <= 100 for m in result.test_map)
    with store.read() as s:
        decided = s.execute(select(Suggestion.status, func.count()).group_by(Suggestion.status)).all()
        by_status = dict(decided)
        assert by_status.get("accepted", 0) == sum(result.accepted)
        assert by_status.get("accepted", 0) + by_status.get("rejected", 0) == 40
        assert set(by_status) <= {"accepted", "rejected"}  # nothing left pending or superseded
        # Each cycle's queue carries the app's audit share of random cells (5 % of 20: one per run).
        per_run = s.execute(
            select(Suggestion.run_id, func.count()).where(Suggestion.audit).group_by(Suggestion.run_id)
        ).all()
        assert sorted(n for _, n in per_run) == [round(CycleConfig.audit_share * 20)] * 2
        events = s.scalar(
            select(func.count())
            .select_from(LabelEvent)
            .where(LabelEvent.source == "review", LabelEvent.author == ORACLE)
        )
        assert events == 40
        # Every reviewed cell now holds its true value.
        rows = s.execute(
            select(Label.image_id, Label.class_id, Label.value).where(Label.author == ORACLE)
        ).all()
    ids = {ext: i for i, ext in enumerate(seed_data.dataset.image_ids[j] for j in seed_data.train)}
    with store.read() as s:
        arrays = load_dataset(s, get_dataset(s, "oracle-test"))
    row_of_db = {
        int(db_id): ids[ext] for db_id, ext in zip(arrays.image_ids, arrays.external_ids, strict=True)
    }
    col_of_db = {int(c): j for j, c in enumerate(arrays.class_ids)}
    assert len(rows) == 40
    assert all(seed_data.y_train[row_of_db[i], col_of_db[c]] == v for i, c, v in rows)
    assert not math.isnan(sum(result.test_map))


def test_review_study_takes_one_round_apart(seed_data: SeedData) -> None:
    from bench.review_study import VARIANTS, study_seed

    targets = protocol_targets(seed_data, "openimages", fpc_per_class=8, seed=1)
    before = targets.copy()
    result = study_seed(seed_data, targets, review=20, seed=0)
    assert list(result) == list(VARIANTS)
    assert all(0 < m <= 100 for m in result.values())
    np.testing.assert_array_equal(targets, before)  # the caller's labels are not changed
