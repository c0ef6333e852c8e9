"""core.models: timm factory, local checkpoints (safe loading, head mismatch), features, atomic files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.models import (
    CheckpointError,
    create_model,
    feature_dim,
    load_checkpoint,
    pooled_features,
    read_state_dict,
    save_checkpoint,
    weights_fingerprint,
)

BACKBONE = "resnet10t"


class Evil:
    """A pickle payload: loading it with plain pickle would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


class Custom:
    """A harmless custom class; still not a tensor or primitive, so it must be refused."""

    def __init__(self) -> None:
        self.value = 3


def _model(num_classes: int = 5, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(BACKBONE, num_classes)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, skip: str = "\0") -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if not key.startswith(skip):
            assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("name", ["resnet10t", "mobilenetv3_small_050"])
def test_create_model_none_gives_logits_and_pooled_features(name: str) -> None:
    model = create_model(name, 7).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        feats = pooled_features(model, x)
    assert feats.shape == (2, feature_dim(model))


def test_unknown_backbone_names_close_matches() -> None:
    with pytest.raises(ValueError, match=r"not a timm model.*resnet18"):
        create_model("resnet18x", 3)


@pytest.mark.parametrize("bad", [{"num_classes": 0}, {"num_classes": 3, "drop_rate": 1.0}])
def test_bad_sizes_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        create_model(BACKBONE, bad.pop("num_classes"), **bad)


def test_missing_checkpoint_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pretrained checkpoint not found"):
        create_model(BACKBONE, 3, pretrained=str(tmp_path / "nope.pth"))


def test_hub_without_internet_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="--pretrained PATH"):
        create_model(BACKBONE, 3, pretrained="hub")


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {"model": {f"_orig_mod.{k}": v for k, v in sd.items()}, "epoch": 3},
        lambda sd: {"state_dict_ema": sd, "state_dict": {k: torch.zeros_like(v) for k, v in sd.items()}},
    ],
    ids=["flat", "state_dict+module", "model+orig_mod", "ema-preferred"],
)
def test_local_checkpoint_loads_every_tensor(tmp_path: Path, wrap) -> None:
    source = _model(5, seed=1)
    path = tmp_path / "weights.pth"
    torch.save(wrap(source.state_dict()), path)
    loaded = create_model(BACKBONE, 5, pretrained=str(path))
    _assert_same_weights(source, loaded)


def test_safetensors_checkpoint_loads(tmp_path: Path) -> None:
    source = _model(5, seed=2)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    _assert_same_weights(source, create_model(BACKBONE, 5, pretrained=path))


def test_head_with_other_class_count_is_reinitialised_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _model(5, seed=3)
    path = tmp_path / "weights.pth"
    torch.save({"model": source.state_dict()}, path)
    with caplog.at_level(logging.WARNING):
        loaded = create_model(BACKBONE, 3, pretrained=str(path))
    assert loaded.fc.weight.shape == (3, feature_dim(loaded))
    _assert_same_weights(source, loaded, skip="fc.")
    assert "classifier head re-initialised" in caplog.text
    assert "fc.weight" in caplog.text


def test_headless_checkpoint_keeps_fresh_head(tmp_path: Path) -> None:
    source = _model(5, seed=4)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    loaded = create_model(BACKBONE, 5, pretrained=str(path))
    assert torch.equal(loaded.conv1[0].weight, source.conv1[0].weight)


def test_missing_and_unexpected_backbone_keys_are_named(tmp_path: Path) -> None:
    state = _model(5).state_dict()
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        create_model(BACKBONE, 5, pretrained=str(path))
    message = str(info.value)
    assert "missing keys: layer1.0.conv1.weight" in message
    assert "unexpected keys: extra.weight" in message


def test_backbone_shape_mismatch_is_an_error(tmp_path: Path) -> None:
    state = _model(5).state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(8, 3, 3, 3)
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(
        CheckpointError, match=r"shape mismatch: layer1\.0\.conv1\.weight \(8, 3, 3, 3\) vs model"
    ):
        create_model(BACKBONE, 5, pretrained=str(path))
    torch.save(create_model("resnet18", 5).state_dict(), path)  # another architecture altogether
    with pytest.raises(CheckpointError, match="same backbone"):
        create_model(BACKBONE, 5, pretrained=str(path))


def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "tampered.pth"
    torch.save({"model": _model(5).state_dict(), "note": Evil(marker)}, path)
    with pytest.raises(CheckpointError, match=r"refused to load.*\(io\.open\)"):
        create_model(BACKBONE, 5, pretrained=str(path))
    assert not marker.exists()


def test_custom_class_in_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "custom.pth"
    torch.save({"model": _model(5).state_dict(), "config": Custom()}, path)
    with pytest.raises(
        CheckpointError, match=r"pickled Python objects.*\(tests\.core\.test_models\.Custom\)"
    ):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        read_state_dict(path)


def test_garbage_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(path)


def test_save_checkpoint_round_trips_primitives_and_state(tmp_path: Path) -> None:
    model = _model(4)
    payload = {
        "config": {"backbone": BACKBONE, "lr": 1e-3, "aug": None, "size": (32, 32)},
        "model": model.state_dict(),
        "epoch": 2,
        "losses": [1.5, 0.5],
    }
    path = save_checkpoint(tmp_path / "sub" / "ckpt.pt", payload)
    loaded = load_checkpoint(path)
    assert loaded["config"] == payload["config"]
    assert loaded["epoch"] == 2 and loaded["losses"] == [1.5, 0.5]
    assert torch.equal(loaded["model"]["fc.weight"], model.fc.weight)
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]


def test_failed_save_keeps_the_old_checkpoint_and_no_temp_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ckpt.pt", {"epoch": 1})
    with pytest.raises(Exception, match=r"lambda|pickle|local object"):
        save_checkpoint(path, {"epoch": 2, "bad": lambda: None})
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_weights_fingerprint_tracks_weights_not_identity() -> None:
    a, b = _model(5, seed=7), _model(5, seed=7)
    assert weights_fingerprint(a) == weights_fingerprint(b)
    with torch.no_grad():
        b.fc.weight.add_(1.0)
    assert weights_fingerprint(a) != weights_fingerprint(b)
    assert weights_fingerprint(a, exclude_prefixes=["fc"]) == weights_fingerprint(b, exclude_prefixes=["fc"])
    with torch.no_grad():
        b.conv1[0].weight.add_(1.0)
    assert weights_fingerprint(a, exclude_prefixes=["fc"]) != weights_fingerprint(b, exclude_prefixes=["fc"])
