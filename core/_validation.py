"""Input checks shared by the public functions of ``core``.

Each public function calls these once at its top; private helpers then trust their inputs.
Every check raises ``ValueError`` with a one-line message naming the argument, the shapes
involved and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from core.constants import NEGATIVE, POSITIVE, UNKNOWN

__all__ = [
    "TARGET_VALUES_MESSAGE",
    "as_sequence_of_str",
    "check_labels_1d",
    "check_loss_inputs",
    "check_positive_int",
    "check_prior",
    "check_probs",
    "check_same_shape",
    "check_scores",
    "check_targets",
]

_LABEL_VALUES = np.array([UNKNOWN, NEGATIVE, POSITIVE])

#: The error raised when a loss's targets hold a value other than 1, 0 or -1.
TARGET_VALUES_MESSAGE = "targets must hold only 1 (positive), 0 (negative) and -1 (unknown)"


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be array-like, got {type(x).__name__}") from err


def check_targets(targets: Any, name: str = "targets") -> np.ndarray:
    """Check a label matrix and return it as ``int8``.

    Args:
        targets: Array-like of shape ``(N, C)`` with values in {1, 0, -1}
            (positive, negative, unknown).
        name: Argument name used in error messages.

    Returns:
        ``np.ndarray`` of shape ``(N, C)``, dtype ``int8``.

    Raises:
        ValueError: If it is not 2-D, not integer-valued, or holds another value.
    """
    arr = _to_numpy(targets, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N images, C classes), got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} holds NaN or inf; use 1 positive, 0 negative, -1 unknown")
        if lo < UNKNOWN or hi > POSITIVE or (arr.dtype.kind == "f" and not np.all(arr == np.round(arr))):
            bad = np.setdiff1d(np.unique(arr), _LABEL_VALUES)
            raise ValueError(
                f"{name} holds values {bad[:5].tolist()}; use 1 positive, 0 negative, -1 unknown"
            )
    out = arr if arr.dtype == np.int8 else arr.astype(np.int8)
    return out


def check_probs(probs: Any, name: str = "probs", ndim: int = 2) -> np.ndarray:
    """Check an array of probabilities.

    Args:
        probs: Array-like of shape ``(N, C)`` (or ``ndim`` dims) with finite values in [0, 1].
        name: Argument name used in error messages.
        ndim: Required number of dimensions.

    Returns:
        Floating ``np.ndarray`` (float32 kept as float32, anything else as float64).

    Raises:
        ValueError: On wrong ndim, non-numeric dtype, NaN/inf or values outside [0, 1].
    """
    arr = _to_numpy(probs, name)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64)
    if arr.size:
        lo, hi = float(arr.min()), float(arr.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} holds NaN or inf; pass probabilities in [0, 1]")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name} must lie in [0, 1] (pass sigmoid probabilities, not logits), "
                f"got min {lo:.4g} max {hi:.4g}"
            )
    return arr


def check_scores(scores: Any, name: str = "scores", ndim: int = 2) -> np.ndarray:
    """Check an array of real-valued scores (higher = more likely positive).

    Args:
        scores: Array-like with ``ndim`` dims and finite values of any range.
        name: Argument name used in error messages.
        ndim: Required number of dimensions.

    Returns:
        ``np.ndarray`` of dtype float64.

    Raises:
        ValueError: On wrong ndim, non-numeric dtype or NaN/inf.
    """
    arr = _to_numpy(scores, name)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf")
    return arr


def check_labels_1d(labels: Any, name: str = "labels") -> np.ndarray:
    """Check a 1-D vector of binary labels.

    Args:
        labels: Array-like of shape ``(N,)`` with values in {0, 1} (or bool).

    Returns:
        ``np.ndarray`` of dtype bool, shape ``(N,)``.

    Raises:
        ValueError: If it is not 1-D or holds values other than 0 and 1.
    """
    arr = _to_numpy(labels, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf" or (arr.size and not np.all((arr == 0) | (arr == 1))):
        raise ValueError(f"{name} must hold only 0 and 1 (bool also accepted)")
    return arr.astype(bool)


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise unless two arrays have the same shape.

    Raises:
        ValueError: ``"probs has shape (4, 6) but targets has shape (4, 5)"``.
    """
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; they must match")


def check_prior(prior: Any, num_classes: int | None = None, name: str = "prior") -> np.ndarray:
    """Check a class-prior vector.

    Args:
        prior: Sequence, array or tensor of shape ``(C,)`` with finite values in [0, 1].
        num_classes: Required length C, or None for any length.
        name: Argument name used in error messages.

    Returns:
        ``np.ndarray`` of shape ``(C,)``, dtype float64.

    Raises:
        ValueError: On wrong shape or length, NaN/inf, or values outside [0, 1].
    """
    arr = _to_numpy(prior, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per class), got shape {arr.shape}")
    if num_classes is not None and arr.shape[0] != num_classes:
        raise ValueError(f"{name} has {arr.shape[0]} values but there are {num_classes} classes")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got min {arr.min():.4g} max {arr.max():.4g}")
    return arr


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Check that ``value`` is an integer >= ``minimum`` and return it as ``int``.

    Raises:
        ValueError: If it is not an integer or is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_loss_inputs(
    logits: Any, targets: Any, prior_len: int | None = None, *, check_values: bool = True
) -> None:
    """Check the ``(logits, targets)`` pair passed to a loss's ``forward``.

    Args:
        logits: Float tensor of shape ``(B, C)``.
        targets: Tensor of shape ``(B, C)`` with values in {1, 0, -1}.
        prior_len: Length of the loss's prior vector, if it has one; must equal C.
        check_values: Also check the target values (a pass over the batch). The losses skip it
            here because their target masks check the values as a by-product.

    Raises:
        ValueError: On non-tensors, wrong shapes, non-float logits, or (with ``check_values``)
            target values other than 1, 0, -1.
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise ValueError(
            f"logits and targets must be torch tensors, got {type(logits).__name__} "
            f"and {type(targets).__name__}"
        )
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (B images, C classes), got shape {tuple(logits.shape)}")
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits has shape {tuple(logits.shape)} but targets has shape {tuple(targets.shape)}; "
            "they must match"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if prior_len is not None and prior_len != logits.shape[1]:
        raise ValueError(f"the loss's prior has {prior_len} classes but logits has {logits.shape[1]}")
    if check_values and targets.numel():
        bad = (targets != POSITIVE) & (targets != NEGATIVE) & (targets != UNKNOWN)
        if bool(bad.any()):
            raise ValueError(TARGET_VALUES_MESSAGE)


def as_sequence_of_str(values: Any, name: str) -> list[str]:
    """Return ``values`` as a list of ``str``, raising if it is not a sequence of strings."""
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a sequence of class identifiers, got {type(values).__name__}")
    out = [str(v) for v in values]
    return out
