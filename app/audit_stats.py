"""What a run's audit sample measures: proportions with Wilson 95 % intervals.

The audit cells of a run are drawn uniformly from the training images' unknown cells
(:mod:`app.pipeline.audit`) and interleaved at random positions in its review queue, so the
decided ones are a uniform sample of those cells (as long as reviewers decide what they see rather
than skip by content; skips are not counted). From them:

* per class, the **missing-positive rate** among its unknown cells, ``accepted / decided`` of the
  class's audit cells, and the **estimated missing positives**, that rate times the class's unknown
  training cells when the run was made;
* per run, the **audit rate** (the same over every class: the chance that a random unknown cell
  is a missing positive), the **measured precision** of the ranked suggestions (``accepted /
  decided`` of the run's other suggestions) and their **lift** over random, precision / audit rate.

Intervals are Wilson score intervals at 95 % (:func:`wilson_interval`), good at small counts and
at rates near 0, where audit rates usually are. The lift's interval divides the ends of the two
intervals (lowest precision over highest rate, and the reverse): it holds whenever both of them
do, so it covers at least about 90 %. Pure arithmetic: no torch, safe for pages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from db.queries import AuditClassRow, AuditSummary

#: The normal quantile of a two-sided 95 % interval.
Z95: float = 1.959963984540054
#: Fewer decisions than this make an interval too wide to act on; the page says so.
MIN_DECISIONS: int = 20


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion.

    Args:
        successes: x, with 0 <= x <= trials.
        trials: n >= 0.
        z: the normal quantile (1.96 for 95 %).

    Returns:
        ``(low, high)`` in [0, 1]; ``(0, 1)`` when ``trials`` is 0.

    Raises:
        ValueError: counts that are negative or with ``successes > trials``.

    Example:
        >>> [round(v, 3) for v in wilson_interval(8, 10)]
        [0.49, 0.943]
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    n, z2 = float(trials), z * z
    p = successes / n
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``trials`` with its Wilson 95 % interval (``rate`` None when no trial)."""

    successes: int
    trials: int
    low: float
    high: float

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def enough(self) -> bool:
        """At least :data:`MIN_DECISIONS` trials."""
        return self.trials >= MIN_DECISIONS


def proportion(successes: int, trials: int) -> Proportion:
    """``successes / trials`` with its Wilson 95 % interval."""
    low, high = wilson_interval(successes, trials)
    return Proportion(successes, trials, low, high)


@dataclass(frozen=True)
class ClassAudit:
    """One class's audit: the missing-positive rate among its unknown cells and what it implies.

    ``unknown`` is the class's unknown training cells when the run was made (None if the run did not
    record it); ``missing``, ``missing_low`` and ``missing_high`` are the rate and its interval ends
    times ``unknown`` (None without a rate or ``unknown``).
    """

    class_id: int
    key: str
    display_name: str
    cells: int
    rate: Proportion
    unknown: int | None
    missing: float | None
    missing_low: float | None
    missing_high: float | None


@dataclass(frozen=True)
class RunAudit:
    """What one run's reviews measured.

    Attributes:
        precision: accepted / decided of the ranked (non-audit) suggestions.
        audit_rate: accepted / decided of the audit cells, every class together.
        lift: precision / audit rate (None when either is unknown or the audit rate is 0).
        lift_low, lift_high: its interval (None without decisions on both; ``inf`` above when the
            audit rate's interval reaches 0).
        unknown: unknown training cells of the run, all classes (None if not recorded).
        classes: per class with audit cells, most decided first.
    """

    precision: Proportion
    audit_rate: Proportion
    lift: float | None
    lift_low: float | None
    lift_high: float | None
    unknown: int | None
    classes: list[ClassAudit]


def run_audit(summary: AuditSummary, unknown_cells: Mapping[int, int] | None) -> RunAudit:
    """The run's measures from its :class:`~db.queries.AuditSummary`.

    Args:
        summary: the run's audit and ranked decisions (:func:`db.queries.audit_summary`).
        unknown_cells: class id → the class's unknown training cells when the run was made (the
            run's ``metrics["audit"]["unknown_cells"]``); None when the run did not record them.
    """
    precision = proportion(summary.ranked_accepted, summary.ranked_decided)
    rate = proportion(summary.accepted, summary.decided)
    classes = [_class_audit(c, unknown_cells) for c in summary.classes]
    lift = lift_low = lift_high = None
    if precision.trials and rate.trials:
        if rate.successes:
            lift = precision.successes / precision.trials / (rate.successes / rate.trials)
        lift_low = precision.low / rate.high
        lift_high = precision.high / rate.low if rate.low > 0 else math.inf
    total = sum(unknown_cells.values()) if unknown_cells is not None else None
    return RunAudit(precision, rate, lift, lift_low, lift_high, total, classes)


def _class_audit(row: AuditClassRow, unknown_cells: Mapping[int, int] | None) -> ClassAudit:
    rate = proportion(row.accepted, row.decided)
    unknown = None if unknown_cells is None else int(unknown_cells.get(row.class_id, 0))
    r = rate.rate
    if r is None or unknown is None:
        return ClassAudit(row.class_id, row.key, row.display_name, row.cells, rate, unknown, None, None, None)
    return ClassAudit(row.class_id, row.key, row.display_name, row.cells, rate, unknown,
                      r * unknown, rate.low * unknown, rate.high * unknown)  # fmt: skip


def unknown_cells_of(metrics: Mapping[str, object]) -> dict[int, int] | None:
    """class id → unknown training cells from a run's metrics (``metrics["audit"]["unknown_cells"]``).

    None when the run recorded none (no audit sample, or a run from an earlier version).
    """
    audit = metrics.get("audit")
    if not isinstance(audit, Mapping):
        return None
    cells = audit.get("unknown_cells")
    if not isinstance(cells, Mapping):
        return None
    return {int(k): int(v) for k, v in cells.items()}


__all__ = [
    "MIN_DECISIONS",
    "Z95",
    "ClassAudit",
    "Proportion",
    "RunAudit",
    "proportion",
    "run_audit",
    "unknown_cells_of",
    "wilson_interval",
]
