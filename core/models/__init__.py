"""Models: timm backbones with a multi-label head, pooled features and checkpoint files.

Public surface::

    create_model(name, num_classes, *, pretrained="none", drop_rate=0.0, cache_dir=None) -> nn.Module
    list_packaged() -> [timm names with ImageNet weights from a pip package (pretrained="packaged")]
    feature_dim(model) -> int
    pooled_features(model, images) -> Tensor (B, D)
    save_checkpoint(path, payload) / load_checkpoint(path) -> dict
"""

from core.models._checkpoint import (
    CheckpointError,
    clean_state_dict,
    extract_state_dict,
    load_checkpoint,
    load_weights_into,
    read_state_dict,
    save_checkpoint,
    weights_fingerprint,
)
from core.models._packaged import (
    PACKAGED_WEIGHTS,
    convert_state_dict,
    ensure_packaged,
    list_packaged,
    packaged_file,
    packaged_state_dict,
)
from core.models._timm import (
    PretrainedSource,
    classifier_names,
    create_model,
    feature_dim,
    pooled_features,
)

__all__ = [
    "PACKAGED_WEIGHTS",
    "CheckpointError",
    "PretrainedSource",
    "classifier_names",
    "clean_state_dict",
    "convert_state_dict",
    "create_model",
    "ensure_packaged",
    "extract_state_dict",
    "feature_dim",
    "list_packaged",
    "load_checkpoint",
    "load_weights_into",
    "packaged_file",
    "packaged_state_dict",
    "pooled_features",
    "read_state_dict",
    "save_checkpoint",
    "weights_fingerprint",
]
