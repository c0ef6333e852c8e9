"""Private helpers shared by the loss modules: input checks, target masks, top-k selection."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from core._validation import TARGET_VALUES_MESSAGE, check_loss_inputs
from core.constants import NEGATIVE, POSITIVE, UNKNOWN

#: Probabilities are clamped below at this value before ``log`` (the reference value).
LOG_CLAMP: float = 1e-8

if (POSITIVE, NEGATIVE, UNKNOWN) != (1, 0, -1):  # target_masks's int8 arithmetic relies on it
    raise ImportError("core.losses assumes the label encoding 1 / 0 / -1 (core.constants)")

#: Size of the strided sample :func:`top_unknowns` takes its threshold from on large batches.
_SAMPLE: int = 1 << 15


class Workspace:
    """Scratch tensors a loss reuses from one call to the next.

    On CPU a fresh 10 MB tensor costs about as much as ten arithmetic passes over it: glibc
    returns large freed blocks to the OS, so every new one is page-faulted in again (README.md,
    "Studies behind the defaults"). A loss therefore takes its intermediates
    from here, by name; they never leave the call (the gradient it returns is always a fresh
    tensor). Buffers of at most six shapes are kept (a full batch, the epoch's smaller last one,
    and the row blocks of each): at 600 classes, for a 4096-row batch and a 1000-row last one, about
    21 MiB for CSL, 39 MiB for ASL, 58 MiB for Hill (not blocked). Other devices
    get fresh tensors (their caching allocators already reuse memory). Not shared between threads.
    """

    _MAX_SHAPES = 6

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...], torch.dtype], torch.Tensor] = {}
        self._shapes: list[tuple[int, ...]] = []

    def get(self, name: str, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """An uninitialised tensor shaped like ``like`` (dtype ``dtype`` or ``like``'s), reused by name."""
        dtype = like.dtype if dtype is None else dtype
        if like.device.type != "cpu":
            return torch.empty(like.shape, dtype=dtype, device=like.device)
        shape = tuple(like.shape)
        key = (name, shape, dtype)
        buf = self._buffers.get(key)
        if buf is None:
            if shape not in self._shapes:
                self._shapes.append(shape)
                if len(self._shapes) > self._MAX_SHAPES:
                    old = self._shapes.pop(0)
                    self._buffers = {k: v for k, v in self._buffers.items() if k[1] != old}
            buf = torch.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf

    def clear(self) -> None:
        """Release every buffer."""
        self._buffers.clear()
        self._shapes.clear()

    def __getstate__(self) -> dict[str, Any]:  # copies and pickles start empty
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]


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
    """Check the shapes and dtypes of ``(logits, targets)`` and return them ready for a loss.

    The target values are checked by :func:`target_masks`, which every loss calls next.

    Args:
        logits: Float tensor ``(B, C)``, any floating dtype.
        targets: Tensor ``(B, C)`` with values in {1, 0, -1}, any numeric dtype.
        prior_len: Length of the loss's prior vector, if any.

    Returns:
        ``(x, t)``: ``x`` is ``logits`` upcast to float32 when it is float16/bfloat16 (float32 and
        float64 are kept), ``t`` is ``targets`` on ``logits``' device, contiguous, dtype unchanged.
    """
    check_loss_inputs(logits, targets, prior_len, check_values=False)
    x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    t = targets.to(device=x.device).contiguous()
    return x, t


def target_masks(
    t: torch.Tensor, ws: Workspace | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks of the positive, negative and unknown cells, checking that there is nothing else.

    The values are checked on an int8 copy (a float cell must survive the round trip to int8
    and back unchanged, then the int8 range must be [-1, 1]); the masks are int8 arithmetic
    viewed as bool. On CPU this is several times cheaper than three ``==`` and their counts.

    Args:
        t: Tensor ``(B, C)`` of any numeric (or bool) dtype, meant to hold 1, 0 and -1.
        ws: Where to take scratch buffers from; the masks are then valid until the next call.

    Returns:
        ``(positive, negative, unknown)``: three bool tensors ``(B, C)``. To turn one into a float
        0/1 tensor, use :func:`as_float`: a bool -> float copy is several times slower than
        uint8 -> float.

    Raises:
        ValueError: If a cell holds anything other than 1, 0 or -1 (NaN and inf included).
    """
    ws = Workspace() if ws is None else ws
    if t.numel() == 0:
        empty = torch.zeros(t.shape, dtype=torch.bool, device=t.device)
        return empty, empty.clone(), empty.clone()
    if t.dtype == torch.int8:
        t8 = t
    elif t.is_complex():
        raise ValueError(TARGET_VALUES_MESSAGE)
    elif t.is_floating_point():
        t8 = ws.get("t8", t, torch.int8).copy_(t)
        diff_lo, diff_hi = torch.aminmax(ws.get("t_back", t).copy_(t8).sub_(t))  # NaN/inf: not 0
        if not (float(diff_lo) == 0.0 and float(diff_hi) == 0.0):
            raise ValueError(TARGET_VALUES_MESSAGE)
    else:
        if t.dtype != torch.bool:
            lo, hi = torch.aminmax(t)
            if int(lo) < UNKNOWN or int(hi) > POSITIVE:
                raise ValueError(TARGET_VALUES_MESSAGE)
        t8 = ws.get("t8", t, torch.int8).copy_(t)
    lo8, hi8 = torch.aminmax(t8)
    if int(lo8) < UNKNOWN or int(hi8) > POSITIVE:
        raise ValueError(TARGET_VALUES_MESSAGE)
    pos = torch.clamp(t8, min=0, out=ws.get("pos", t8, torch.int8))  # 1 -> 1; 0, -1 -> 0
    unk = torch.neg(t8, out=ws.get("unk", t8, torch.int8)).clamp_(min=0)  # -1 -> 1; 0, 1 -> 0
    neg = torch.abs(t8, out=ws.get("neg", t8, torch.int8)).neg_().add_(1)  # 0 -> 1; 1, -1 -> 0
    return pos.view(torch.bool), neg.view(torch.bool), unk.view(torch.bool)


def as_float(mask: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Copy a bool mask into the float tensor ``out`` as 0/1 (through a free uint8 view)."""
    return out.copy_(mask.view(torch.uint8))


def set_epoch_noop(epoch: int) -> None:
    """Validate an epoch index for losses that do not depend on the epoch."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")


def top_unknowns(
    score: torch.Tensor,
    unknown: torch.Tensor,
    k: int,
    n_unknown: int | None = None,
    ws: Workspace | None = None,
) -> torch.Tensor:
    """Row-major flat indices of the ``k`` unknown cells of the batch with the highest ``score``.

    Exact ties are broken by class index, then row (as if the cells were enumerated column by
    column and sorted stably), so permuting the rows never changes which classes lose a slot.

    No sort: on a large batch a strided sample of the unknown scores (deterministic, about
    ``_SAMPLE`` values, the stride coprime with C) gives a threshold with about 1.2 k + 48 x stride
    cells above it in expectation; only those are gathered (if fewer than ``k`` pass, all unknowns
    are, so the result never depends on the sample). ``kthvalue`` then finds the k-th largest
    value: every cell above it is chosen, and only exact ties at it are ordered.

    Args:
        score: Float tensor ``(B, C)``; higher = selected first (NaN is never selected before a
            number).
        unknown: Bool tensor ``(B, C)``.
        k: Number of cells to select (>= 0).
        n_unknown: ``unknown.sum()`` if already known.
        ws: Where to take a scratch buffer from.

    Returns:
        Int64 tensor of ``min(k, n_unknown)`` indices into ``score.reshape(-1)``, in no
        particular order.
    """
    b, c = score.shape
    s, u = score.detach().reshape(-1), unknown.reshape(-1)
    n_unk = int(torch.count_nonzero(u)) if n_unknown is None else n_unknown
    if k <= 0 or n_unk == 0:
        return torch.zeros(0, dtype=torch.long, device=score.device)
    if k >= n_unk:
        return torch.nonzero(u).squeeze(1)
    idx: torch.Tensor | None = None
    if s.numel() > 2 * _SAMPLE and k < n_unk // 4:
        stride = s.numel() // _SAMPLE
        while math.gcd(stride, c) != 1:  # a stride sharing a factor with C would skip classes
            stride += 1
        sample = s[::stride][u[::stride]]
        m = sample.numel()
        want = math.ceil(1.2 * k * m / n_unk) + 48  # sample rank of the threshold
        if m > want:
            tau = torch.kthvalue(sample, m - want + 1).values  # the want-th largest of the sample
            above_tau = torch.ge(s, tau, out=(ws or Workspace()).get("above_tau", s, torch.bool))
            cand = torch.nonzero(above_tau.logical_and_(u)).squeeze(1)
            if cand.numel() >= k:
                idx = cand
    if idx is None:
        idx = torch.nonzero(u).squeeze(1)
    vals = s[idx].nan_to_num(nan=-math.inf)  # NaN is never chosen before a number
    if idx.numel() == k:
        return idx
    # Everything above the k-th largest value is chosen; exact ties at it are ordered by class,
    # then row, and the first ones fill the remaining slots.
    kth = torch.kthvalue(vals, idx.numel() - k + 1).values
    above = idx[vals > kth]
    tied = idx[vals == kth]
    if above.numel() + tied.numel() > k:
        tied = tied[torch.argsort((tied % c) * b + tied // c)][: k - above.numel()]
    return torch.cat([above, tied])
