"""Images on disk → tensors: safe decoding, timm transforms, and a loader that skips bad files.

Every image is read with Pillow from under one image root. A file that is missing, empty, corrupt,
truncated, a decompression bomb, or whose path resolves outside the root (``../`` or a symlink) is
*skipped*: the dataset returns a ``Skipped`` marker instead of raising, ``collate_skipping`` drops it
from the batch and passes ``(image_id, reason)`` on in ``Batch.skipped``, and the training loop
records it in a ``SkipLog``. This works inside DataLoader worker processes because the report travels
with the batch, not through shared state.

Targets use the one label encoding (``core.constants``): ``int8`` (N, C), 1 / 0 / -1.
"""

from core.data._dataset import (
    Batch,
    ImageDataset,
    ImageSource,
    Sample,
    SkipLog,
    Skipped,
    collate_skipping,
    create_loader,
    validate_images,
)
from core.data._images import ImageError, load_image, resolve_in_root, to_rgb
from core.data._transforms import AugmentConfig, create_transform_for, data_config_for

__all__ = [
    "AugmentConfig",
    "Batch",
    "ImageDataset",
    "ImageError",
    "ImageSource",
    "Sample",
    "SkipLog",
    "Skipped",
    "collate_skipping",
    "create_loader",
    "create_transform_for",
    "data_config_for",
    "load_image",
    "resolve_in_root",
    "to_rgb",
    "validate_images",
]
