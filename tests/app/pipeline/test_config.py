"""CycleConfig: enums and paths, JSON round trip, configs stored by the previous version, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.pipeline.config import (
    CycleConfig,
    PriorSource,
    TrainMode,
    WeightsSource,
    parse_prior,
    parse_weights,
)
from core.losses.catalog import LossName

#: A ``cycle`` job payload as the previous version wrote it (every key it had).
OLD_PAYLOAD: dict[str, Any] = {
    "dataset": "toy",
    "backbone": "resnet10t",
    "pretrained": "/models/ckpt.pt",
    "mode": "finetune",
    "loss": "asl",
    "prior": "file:/data/prior.csv",
    "epochs": 3,
    "image_size": 64,
    "batch_size": 16,
    "lr": 0.001,
    "folds": 2,
    "prior_folds": 1,
    "top_suggestions": 10,
    "device": "cpu",
    "seed": 4,
    "workers": 0,
}


def test_defaults_are_enums() -> None:
    config = CycleConfig(dataset="toy")
    assert config.pretrained is WeightsSource.PACKAGED and config.pretrained_file is None
    assert config.mode is TrainMode.HEAD
    assert config.loss is LossName.CSL
    assert config.prior is PriorSource.MODEL and config.prior_file is None


def test_values_as_text_become_enums_and_paths() -> None:
    config = CycleConfig(dataset="toy", pretrained="File", pretrained_file="/w.pt", mode=" finetune ", loss="ll-r",
                         prior="file", prior_file="/p.csv")  # type: ignore[arg-type]  # fmt: skip
    assert config.pretrained is WeightsSource.FILE and config.pretrained_file == Path("/w.pt")
    assert config.mode is TrainMode.FINETUNE and config.loss is LossName.LL_R
    assert config.prior is PriorSource.FILE and config.prior_file == Path("/p.csv")


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"pretrained": WeightsSource.PACKAGED, "mode": TrainMode.FINETUNE, "loss": LossName.NEGATIVE},
        {"pretrained": WeightsSource.FILE, "pretrained_file": Path("/w.pt"), "prior": PriorSource.NAIVE},
        {"prior": PriorSource.FILE, "prior_file": Path("/p.csv"), "lr": 0.01, "folds": 3},
    ],
)
def test_round_trip_through_json(kw: dict[str, Any]) -> None:
    config = CycleConfig(dataset="toy", **kw)
    stored = json.loads(json.dumps(config.to_dict()))
    assert all(isinstance(v, (str, int, float, type(None))) for v in stored.values())
    assert CycleConfig.from_dict(stored) == config


def test_from_dict_reads_the_previous_versions_payload() -> None:
    config = CycleConfig.from_dict(OLD_PAYLOAD)
    assert config.pretrained is WeightsSource.FILE and config.pretrained_file == Path("/models/ckpt.pt")
    assert config.prior is PriorSource.FILE and config.prior_file == Path("/data/prior.csv")
    assert (config.mode, config.loss, config.folds, config.prior_folds) == (
        TrainMode.FINETUNE,
        LossName.ASL,
        2,
        1,
    )
    stored = config.to_dict()
    assert (stored["pretrained"], stored["pretrained_file"]) == ("file", "/models/ckpt.pt")
    assert (stored["prior"], stored["prior_file"]) == ("file", "/data/prior.csv")


@pytest.mark.parametrize(
    ("old", "source"),
    [("hub", WeightsSource.HUB), ("none", WeightsSource.NONE), ("packaged", WeightsSource.PACKAGED)],
)  # fmt: skip
def test_from_dict_reads_old_weights_names(old: str, source: WeightsSource) -> None:
    config = CycleConfig.from_dict({"dataset": "toy", "pretrained": old, "prior": "naive"})
    assert (config.pretrained, config.pretrained_file, config.prior) == (source, None, PriorSource.NAIVE)


@pytest.mark.parametrize("old", ["standin", " StandIn "])
def test_a_stored_standin_config_is_refused_naming_packaged(old: str) -> None:
    """The stand-in backbone was removed: an old payload must not become a checkpoint path "standin"."""
    with pytest.raises(ValueError, match=r"^pretrained 'standin' .* was removed; use 'packaged'") as info:
        CycleConfig.from_dict({"dataset": "toy", "pretrained": old})
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="use 'packaged'"):
        parse_weights(old)


def test_prior_run_config_is_readable() -> None:
    """The prior run stores the cycle's config with the ignore loss."""
    stored = {**CycleConfig(dataset="toy").to_dict(), "loss": "ignore"}
    assert CycleConfig.from_dict(stored).loss is LossName.IGNORE


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"prior_file": "/p.csv"}, "prior_file '/p.csv' is given but prior is 'model', not 'file'"),
        ({"prior": "file"}, "prior is 'file' but no prior_file is given; pass the file's path"),
        ({"pretrained": "file"}, "pretrained is 'file' but no pretrained_file is given"),
        ({"pretrained_file": "/w.pt"}, "pretrained_file '/w.pt' is given but pretrained is 'packaged'"),
        ({"loss": "focal"}, "unknown loss 'focal'; valid losses: ignore, negative"),
        ({"mode": "linear"}, "unknown training mode 'linear'; valid modes: head, finetune"),
        ({"prior": "mean"}, "unknown prior source 'mean'; valid prior sources: model, naive, file"),
        ({"epochs": 0}, "epochs must be a whole number ≥ 1, got 0"),
        ({"folds": 1.5}, "folds must be a whole number ≥ 1, got 1.5"),
        ({"top_suggestions": -1}, "top_suggestions must be a whole number ≥ 0"),
        ({"lr": 0.0}, "lr must be positive"),
    ],
)
def test_invalid_settings_are_one_line_errors(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        CycleConfig(dataset="toy", **kw)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_constructor_reads_the_previous_spellings_too() -> None:
    """Callers that built configs from the old strings keep working (e.g. ``--pretrained PATH``)."""
    config = CycleConfig(dataset="toy", pretrained="ckpt/w.pt", prior="file:/p.csv")  # type: ignore[arg-type]
    assert (config.pretrained, config.pretrained_file) == (WeightsSource.FILE, Path("ckpt/w.pt"))
    assert (config.prior, config.prior_file) == (PriorSource.FILE, Path("/p.csv"))
    assert config == CycleConfig.from_dict(
        {"dataset": "toy", "pretrained": "ckpt/w.pt", "prior": "file:/p.csv"}
    )


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(
        ValueError, match=r"unknown cycle setting\(s\) colour, size; valid: audit_share, backbone"
    ):
        CycleConfig.from_dict({"dataset": "toy", "size": 3, "colour": "red"})


def test_parse_prior_and_weights() -> None:
    assert parse_prior("naive") == (PriorSource.NAIVE, None)
    assert parse_prior("file:/x.csv") == (PriorSource.FILE, Path("/x.csv"))
    assert parse_prior("file") == (PriorSource.FILE, None)
    for bad, message in (
        ("file:", "names no file"),
        ("best", "unknown prior 'best'; valid: model, naive, file"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_prior(bad)
    assert parse_weights("packaged") == (WeightsSource.PACKAGED, None)
    assert parse_weights("ckpt/w.pt") == (WeightsSource.FILE, Path("ckpt/w.pt"))


@pytest.mark.parametrize("bad", [-0.01, 0.51, True, "0.1", float("nan")])
def test_audit_share_must_be_a_share_up_to_half(bad: object) -> None:
    with pytest.raises(ValueError, match=r"audit_share must be a number in \[0, 0.5\]"):
        CycleConfig(dataset="toy", audit_share=bad)  # type: ignore[arg-type]


def test_audit_share_round_trips() -> None:
    cfg = CycleConfig(dataset="toy", audit_share=0.1)
    assert CycleConfig.from_dict(cfg.to_dict()).audit_share == 0.1
    assert CycleConfig(dataset="toy").audit_share == 0.05
