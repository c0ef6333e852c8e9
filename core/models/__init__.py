"""Models: timm backbones with a multi-label head, pooled features and checkpoint files.

Public surface::

    create_model(name, num_classes, *, pretrained="none", drop_rate=0.0) -> nn.Module
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
from core.models._timm import (
    PretrainedSource,
    classifier_names,
    create_model,
    feature_dim,
    pooled_features,
)

__all__ = [
    "CheckpointError",
    "PretrainedSource",
    "classifier_names",
    "clean_state_dict",
    "create_model",
    "extract_state_dict",
    "feature_dim",
    "load_checkpoint",
    "load_weights_into",
    "pooled_features",
    "read_state_dict",
    "save_checkpoint",
    "weights_fingerprint",
]
