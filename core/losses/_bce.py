"""A fused, weighted binary cross-entropy over {1, 0, -1} targets, with an analytic gradient.

Every loss in this package except Hill is, cell by cell, ::

    l(i,c) = - w(i,c) * log r(i,c)     r = p                       for a positive (t = 1)
                                       r = q = min(1 - p + m, 1)   for every other cell

with ``p = sigmoid(x)``, a probability margin ``m >= 0`` and a weight ``w >= 0`` that carries no
gradient (``alpha * (1 - r)^gamma``, or 0 for an ignored cell). Autograd through sigmoid, clamp,
log, pow and where made a dozen passes over the ``(B, C)`` batch forward and as many backward,
and dominated the CPU training of a linear head (4096 x 600 cells per step). Here the value and
the gradient are computed together without autograd, and the backward is one multiply::

    dl/dx = w * (p - 1)                  for a positive
            w * p                        otherwise, m = 0
            w * p * (1 - p) / q          otherwise, m > 0, where 1 - p + m < 1 (else 0)

Numerics: with ``m = 0``, ``r = sigmoid(s * x)`` with ``s = +1`` for positives and ``-1``
otherwise, exact in both tails (the plain ``1 - sigmoid(x)`` rounds to 0 above x = 16.6 in
float32); ``1 - p`` is ``sigmoid(-x)``. With a log floor ``f`` (CSL's ``log(max(r, 1e-8))``) the
log is clamped at ``log f`` and the gradient is 0 where ``r <= f``, as the clamp's gradient is;
without one (WAN, LL-R) ``-log r`` is the exact softplus. The floor and the softplus matter only
for ``|x|`` beyond 18 (resp. about 80 in float32): a batch whose logits all lie inside skips them.

Speed on CPU: every intermediate comes from a :class:`~core.losses._common.Workspace` (fresh
large tensors are page-faulted in on every call), masks become float through a free uint8 view
(not a bool -> float copy), weights are summed with ``addcmul_`` rather than chained ``where`` (a
slow scalar kernel), integer exponents are multiplied out (not ``pow``), and the batch is processed
in blocks of rows that stay in cache. ``labelmend bench loss-speed`` times every preset; the
measurements behind these choices are in README.md ("Studies behind the defaults").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from core.losses._common import Workspace, as_float

__all__ = ["BLOCK_CELLS", "Group", "power", "summed_loss", "weighted_bce"]

#: ``(mask, alpha, gamma)``: non-positive cells in ``mask`` (bool ``(B, C)``; None = every
#: non-positive cell) get ``w = alpha * (1 - q)^gamma``. The masks must be disjoint from each other
#: and from the positives. Cells in no group get ``w = 0``.
Group = tuple[torch.Tensor | None, float, float]

#: Cells per block of rows: a dozen float32 blocks of this size (1 MB each) stay in L3; smaller
#: blocks pay more per-op overhead (``labelmend bench loss-speed``; README.md, "Studies behind the
#: defaults").
BLOCK_CELLS: int = 1 << 18

#: Below this ``|x|``, ``sigmoid(-|x|) > 1.5e-8``: a log floor of 1e-8 cannot bind.
_FLOOR_FREE_ABS_LOGIT: float = 18.0


class _SummedLoss(torch.autograd.Function):
    """A scalar loss whose gradient with respect to ``x`` was computed with its value."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, compute: Callable[..., Any]) -> torch.Tensor:
        value, grad = compute(x, ctx.needs_input_grad[0])
        if grad is not None:
            ctx.save_for_backward(grad)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        (grad,) = ctx.saved_tensors
        if grad_out.device.type == "cpu" and float(grad_out) == 1.0:
            return grad, None  # the usual loss.backward(): skip a pass over (B, C)
        return grad * grad_out, None


def summed_loss(
    x: torch.Tensor, compute: Callable[[torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]
) -> torch.Tensor:
    """Wrap ``compute(x, need_grad) -> (value, grad or None)`` as a differentiable scalar of ``x``.

    Args:
        x: Float tensor ``(B, C)``.
        compute: Returns the scalar loss and, when ``need_grad``, ``d loss / d x`` shaped like ``x``.

    Returns:
        Scalar tensor; its backward is ``grad * grad_output`` (not differentiable twice).
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _SummedLoss.apply(x, compute)
    return compute(x, False)[0]


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def power(base: torch.Tensor, gamma: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """``base ** gamma``: ``base`` itself for 1, else ``out`` (or a new tensor); integer exponents
    up to 16 by multiplication in place, half-integers as that times ``sqrt(base)`` (both faster than
    ``torch.pow`` with a float exponent)."""
    if gamma == 1.0:
        return base
    if gamma == 0.0:
        return torch.ones_like(base) if out is None else out.fill_(1.0)
    whole = math.floor(gamma)
    if whole >= 1 and gamma - whole == 0.5 and gamma <= 16:
        res = torch.sqrt(base, out=out) if out is not None else torch.sqrt(base)
        return res.mul_(power(base, float(whole))) if whole > 1 else res.mul_(base)
    if not (gamma.is_integer() and gamma <= 16):
        return torch.pow(base, gamma, out=out) if out is not None else torch.pow(base, gamma)
    bits = bin(int(gamma))[3:]  # left-to-right binary exponentiation after the leading 1
    res = torch.mul(base, base, out=out) if out is not None else base * base
    if bits[0] == "1":
        res.mul_(base)
    for bit in bits[1:]:
        res.mul_(res)
        if bit == "1":
            res.mul_(base)
    return res


def _weight(
    pos: torch.Tensor,
    pos_alpha: float,
    pos_gamma: float,
    pos_base: torch.Tensor | None,
    groups: Sequence[Group],
    q_base: torch.Tensor,
    ws: Workspace,
) -> torch.Tensor:
    """Per-cell weight ``w`` (0-dim when it is the same everywhere, else ``(B, C)``).

    ``w = sum over groups of alpha * mask * base^gamma`` with float 0/1 masks (the masks are
    disjoint), accumulated in place into one buffer, without ``where`` (a scalar kernel on CPU).
    """
    if pos_gamma == 0 and len(groups) == 1 and groups[0][0] is None and groups[0][1:] == (pos_alpha, 0.0):
        return _scalar(pos_alpha, q_base)
    terms = [(pos, pos_alpha, pos_gamma, pos_base)]
    for i, (m, a, g) in enumerate(groups):
        mask = torch.mul(pos, -1.0, out=ws.get(f"not_pos{i}", pos)).add_(1.0) if m is None else m
        terms.append((mask, a, g, q_base))
    terms.sort(key=lambda term: term[2] == 0)  # start with a power: its product becomes w
    powers: dict[float, torch.Tensor] = {}
    w: torch.Tensor | None = None
    for mask, alpha, gamma, base in terms:
        if alpha == 0:
            continue
        if gamma == 0:
            if w is None:
                w = torch.mul(mask, alpha, out=ws.get("w", mask))
            else:
                w.add_(mask, alpha=alpha)
            continue
        if base is None:
            raise ValueError("internal error: a focusing base is missing")
        if base is q_base:
            if gamma not in powers:
                powers[gamma] = power(base, gamma, ws.get(f"q_pow{gamma:g}", base))
            b = powers[gamma]
        else:
            b = power(base, gamma, ws.get("pos_pow", base))
        if w is None:
            w = torch.mul(mask, b, out=ws.get("w", mask))
            if alpha != 1.0:
                w.mul_(alpha)
        else:
            w.addcmul_(mask, b, value=alpha)
    return _scalar(0.0, q_base) if w is None else w


def weighted_bce(
    x: torch.Tensor,
    pos: torch.Tensor,
    groups: Sequence[Group],
    *,
    pos_alpha: float = 1.0,
    pos_gamma: float = 0.0,
    clip: float = 0.0,
    log_floor: float | None = None,
    drop: torch.Tensor | None = None,
    need_grad: bool = True,
    ws: Workspace | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Summed weighted BCE and its gradient (see the module docstring for the formula).

    The batch is processed in blocks of rows of about :data:`BLOCK_CELLS` cells, so that the
    dozen intermediates of a block stay in cache: on CPU the elementwise passes are otherwise
    bound by memory bandwidth. The blocks' sums are added at the end.

    Args:
        x: Float logits ``(B, C)`` (float32 or float64).
        pos: Bool mask of positives ``(B, C)``.
        groups: Weights of the non-positive cells, see :data:`Group`.
        pos_alpha: ``alpha`` of the positives (weight ``alpha * (1 - p)^gamma``).
        pos_gamma: ``gamma`` of the positives.
        clip: Probability margin ``m`` in [0, 1) added to ``1 - p`` for non-positive cells.
        log_floor: Clamp ``r`` below at this value before the log (gradient 0 where it binds),
            or None for the exact, unbounded ``-log r``.
        drop: Row-major flat indices of cells whose weight is 0 whatever their group (LL-R's
            rejections, CSL's likelihood rule): O(K) instead of a mask pass.
        need_grad: Whether to compute the gradient.
        ws: Where to take scratch buffers from (None: fresh tensors).

    Returns:
        ``(value, grad)``: the summed loss (0-dim, ``x``'s dtype) and ``d value / d x``, a new
        tensor shaped like ``x`` (None unless ``need_grad``).
    """
    if x.numel() == 0:
        return x.sum(), (torch.zeros_like(x) if need_grad else None)
    ws = Workspace() if ws is None else ws
    x, pos = x.contiguous(), pos.contiguous()  # flat indices below address row-major storage
    groups = [(None if m is None else m.contiguous(), a, g) for m, a, g in groups]
    lo, hi = torch.aminmax(x)
    max_abs = max(-float(lo), float(hi))  # NaN -> the exact branches below
    floor_binds = log_floor is not None and not max_abs <= _FLOOR_FREE_ABS_LOGIT
    exact_softplus = log_floor is None and not max_abs <= -math.log(torch.finfo(x.dtype).tiny) - 8.0
    b, c = x.shape
    rows = max(1, BLOCK_CELLS // c)
    starts = list(range(0, b, rows))
    grad = torch.empty_like(x) if need_grad else None
    bounds: list[int] = []
    if drop is not None:
        drop = torch.sort(drop).values
        edges = torch.tensor([r0 * c for r0 in starts] + [b * c], device=drop.device)
        bounds = torch.searchsorted(drop, edges).tolist()
    parts = []
    for i, r0 in enumerate(starts):
        r1 = min(b, r0 + rows)
        block_drop = None
        if drop is not None and bounds[i + 1] > bounds[i]:
            block_drop = drop[bounds[i] : bounds[i + 1]] - r0 * c
        parts.append(
            _block(
                x[r0:r1],
                pos[r0:r1],
                [(None if m is None else m[r0:r1], a, g) for m, a, g in groups],
                pos_alpha=pos_alpha,
                pos_gamma=pos_gamma,
                clip=clip,
                log_floor=log_floor if floor_binds else None,
                exact_softplus=exact_softplus,
                drop=block_drop,
                grad_out=None if grad is None else grad[r0:r1],
                ws=ws,
            )
        )
    value = parts[0] if len(parts) == 1 else torch.stack(parts).sum()
    return value, grad


def _block(
    x: torch.Tensor,
    pos: torch.Tensor,
    groups: Sequence[Group],
    *,
    pos_alpha: float,
    pos_gamma: float,
    clip: float,
    log_floor: float | None,
    exact_softplus: bool,
    drop: torch.Tensor | None,
    grad_out: torch.Tensor | None,
    ws: Workspace,
) -> torch.Tensor:
    """One block of rows of :func:`weighted_bce`: returns its summed loss, writes its gradient.

    ``log_floor`` is given only when it can bind in this batch; ``exact_softplus`` says whether
    ``-log r`` must be the exact softplus (logits too large for ``log(sigmoid)``).
    """
    pos_f = as_float(pos, ws.get("pos_f", x))
    p = torch.sigmoid(x, out=ws.get("p", x))
    one_minus_p: torch.Tensor | None = None
    if pos_gamma != 0 or clip > 0:
        one_minus_p = torch.neg(x, out=ws.get("one_minus_p", x)).sigmoid_()
    q: torch.Tensor | None = None
    if clip > 0 and one_minus_p is not None:
        q = torch.add(one_minus_p, clip, out=ws.get("q", x))
        q_lt_one = torch.lt(q, 1.0, out=ws.get("q_lt_one", x, torch.bool))  # clamp's gradient mask
        q.clamp_(max=1.0)
        q_base = torch.mul(q, -1.0, out=ws.get("q_base", x)).add_(1.0)  # non-positives' base 1 - q
    else:
        q_base = p
    float_groups = [
        (None if m is None else as_float(m, ws.get(f"group{i}", x)), a, g)
        for i, (m, a, g) in enumerate(groups)
    ]
    w = _weight(pos_f, pos_alpha, pos_gamma, one_minus_p, float_groups, q_base, ws)

    # log r: r = p for positives and q otherwise.
    floor_mask: torch.Tensor | None = None
    if q is not None:
        if exact_softplus:  # q >= clip > 0 cannot underflow; p can
            log_r = torch.where(pos, F.logsigmoid(x), q.log())
        else:
            log_r = torch.where(pos, p, q, out=q_base)  # q_base is not needed after the weights
    else:
        # sigmoid(s x) with s = +1 for positives and -1 otherwise: p or 1 - p, exact in both tails.
        sx = torch.mul(pos_f, 2.0, out=ws.get("log_r", x)).sub_(1.0).mul_(x)
        log_r = F.logsigmoid(sx) if exact_softplus else sx.sigmoid_()
    if not exact_softplus:
        if log_floor is not None:
            floor_mask = torch.gt(log_r, log_floor, out=ws.get("floor_mask", x, torch.bool))
            log_r.clamp_(min=log_floor)
        log_r.log_()
    if drop is not None:
        log_r.view(-1).index_fill_(0, drop, 0.0)
    value = log_r.mul_(w).sum().neg_() if w.ndim else log_r.sum().mul_(-w)
    if grad_out is None:
        return value

    if q is not None and one_minus_p is not None:
        # p (1 - p) / q where 1 - p + clip < 1, else 0; p - 1 for positives.
        other = one_minus_p.mul_(p).div_(q)
        if any(gamma == 0 for _, _, gamma in groups):  # else w is 0 where the clamp binds
            other.mul_(as_float(q_lt_one, ws.get("q_lt_one_f", x)))
        grad = torch.where(pos, p.sub_(1.0), other, out=grad_out)
    else:
        grad = torch.sub(p, pos_f, out=grad_out)  # p - 1 for positives, p otherwise
    if floor_mask is not None:
        grad.mul_(as_float(floor_mask, ws.get("floor_mask_f", x)))
    if drop is not None:
        grad.view(-1).index_fill_(0, drop, 0.0)
    if w.ndim or float(w) != 1.0:
        grad.mul_(w)
    return value
