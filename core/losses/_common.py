"""Private helpers shared by the loss modules: input preparation and the log clamp."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from core._validation import check_loss_inputs

#: Probabilities are clamped below at this value before ``log`` (the reference value).
LOG_CLAMP: float = 1e-8


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Disable autocast on ``device`` so the loss is computed in float32 (or float64)."""
    if device.type in ("cpu", "cuda", "mps", "xpu"):
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    else:
        yield


def prepare(
    logits: torch.Tensor, targets: torch.Tensor, prior_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``(logits, targets)`` and return them ready for a loss computation.

    Args:
        logits: Float tensor ``(B, C)``, any floating dtype.
        targets: Tensor ``(B, C)`` with values in {1, 0, -1}, any numeric dtype.
        prior_len: Length of the loss's prior vector, if any.

    Returns:
        ``(x, t)``: ``x`` is ``logits`` upcast to float32 when it is float16/bfloat16 (float32 and
        float64 are kept), ``t`` is ``targets`` as int8 on ``logits``' device.
    """
    check_loss_inputs(logits, targets, prior_len)
    x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    t = targets.to(device=x.device, dtype=torch.int8)
    return x, t


def set_epoch_noop(epoch: int) -> None:
    """Validate an epoch index for losses that do not depend on the epoch."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")


def lowest_unknowns(q: torch.Tensor, unknown: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` unknown entries of the batch with the lowest value of ``q``.

    Entries are enumerated class-major (column by column) and sorted stably, so exact ties are
    broken by class index and then by row: permuting the rows never changes which classes lose
    a slot, hence never changes the loss.

    Args:
        q: Float tensor ``(B, C)``.
        unknown: Bool tensor ``(B, C)``.
        k: Number of entries to select (>= 1).

    Returns:
        Bool tensor ``(B, C)``.
    """
    b, c = q.shape
    q_cm = q.detach().t().reshape(-1)
    idx = torch.nonzero(unknown.t().reshape(-1)).squeeze(1)
    chosen_cm = torch.zeros(b * c, dtype=torch.bool, device=q.device)
    n = idx.numel()
    if n == 0:
        return chosen_cm.view(c, b).t()
    if k >= n:
        chosen_cm[idx] = True
    else:
        q_unk = q_cm[idx]
        kth = torch.kthvalue(q_unk, k).values
        cand = torch.nonzero(q_unk <= kth).squeeze(1)
        order = torch.sort(q_unk[cand], stable=True).indices[:k]
        chosen_cm[idx[cand[order]]] = True
    return chosen_cm.view(c, b).t()
