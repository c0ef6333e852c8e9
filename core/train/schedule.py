"""Learning-rate schedules as pure functions of the step (resume needs no scheduler state)."""

from __future__ import annotations

import math

__all__ = ["onecycle_lr"]


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def onecycle_lr(
    step: int,
    total_steps: int,
    max_lr: float,
    *,
    pct_start: float = 0.2,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    """One-cycle learning rate at ``step`` (cosine warm-up then cosine decay).

    Matches ``torch.optim.lr_scheduler.OneCycleLR(anneal_strategy="cos")`` step for step: it starts at
    ``max_lr / div_factor``, reaches ``max_lr`` after ``pct_start * total_steps - 1`` steps and ends at
    ``max_lr / (div_factor * final_div_factor)`` on step ``total_steps - 1``.

    Args:
        step: 0-based optimiser step; values past the end are clamped to the last step.
        total_steps: Steps in the whole run, at least 1.
        max_lr: Peak learning rate.
        pct_start: Fraction of the run spent warming up, in (0, 1).
        div_factor: ``max_lr / initial_lr``.
        final_div_factor: ``initial_lr / final_lr``.

    Returns:
        The learning rate for this step.

    Example:
        >>> [round(onecycle_lr(step, 100, 1.0), 6) for step in (0, 19, 99)]  # start, peak, end
        [0.04, 1.0, 4e-06]
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
    initial = max_lr / div_factor
    final = initial / final_div_factor
    step = min(max(step, 0), total_steps - 1)
    warm_end = pct_start * total_steps - 1.0
    last = total_steps - 1.0
    if step <= warm_end:
        pct = step / warm_end if warm_end > 0 else 1.0
        return _cos_anneal(initial, max_lr, pct)
    span = last - warm_end
    pct = (step - warm_end) / span if span > 0 else 1.0
    return _cos_anneal(max_lr, final, pct)
