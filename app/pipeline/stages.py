"""The stages of a cycle as values, their share of the progress bar, and the stage timer.

A cycle reports each new stage as a :class:`Stage` (``on_stage(stage)``) before any progress of it,
and every progress message starts with the stage's value (``"store: writing 5000 suggestions"``)
for people reading it; nothing parses that text back. This module is torch-free (the worker
imports it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from common.choice import Choice
from common.progress import Progress

#: ``on_stage(stage)``: called once when a stage starts, before its first progress report.
StageCallback = Callable[["Stage"], None]


class Stage(Choice, kind="cycle stage", plural="stages"):
    """The stages of a cycle, in the order they run."""

    LOAD = "load"  #: read the dataset's labels, check the prior option
    FEATURES = "features"  #: resolve the weights; head mode: embed every image (cached)
    PRIOR = "prior"  #: the temporary ignore-mode model(s) and the class priors
    TARGET = "target"  #: the target model with the chosen loss and prior
    EVALUATE = "evaluate"  #: partial mAP on the validation split
    SUGGEST = "suggest"  #: score and rank the unknown cells of the training images
    STORE = "store"  #: suggestions, class statistics and the finished run, one transaction

    @property
    def share(self) -> float:
        """The part of the whole cycle's progress bar this stage takes, in (0, 1]; all sum to 1."""
        return _SHARES[self]


_SHARES: dict[Stage, float] = {
    Stage.LOAD: 0.03,
    Stage.FEATURES: 0.42,
    Stage.PRIOR: 0.15,
    Stage.TARGET: 0.2,
    Stage.EVALUATE: 0.05,
    Stage.SUGGEST: 0.12,
    Stage.STORE: 0.03,
}


class StageTimer:
    """Maps each stage's own progress (0–1) onto the whole cycle, reports stages, times them.

    Args:
        progress: the whole cycle's progress callback (fraction of the cycle, message), or None.
        on_stage: called with each stage as it starts, or None.

    Attributes:
        timings: stage value → seconds, for the stages that ended.
    """

    def __init__(self, progress: Progress | None, on_stage: StageCallback | None = None) -> None:
        self._progress = progress
        self._on_stage = on_stage
        self._done = 0.0
        self._stage: Stage | None = None
        self._t0 = 0.0
        self.timings: dict[str, float] = {}

    def start(self, stage: Stage, message: str = "starting") -> Progress:
        """Begin ``stage``; returns its own progress callback (fraction of this stage, message)."""
        self._stage, self._t0 = stage, time.perf_counter()
        base, share = self._done, stage.share
        if self._on_stage is not None:
            self._on_stage(stage)

        def report(fraction: float, message: str) -> None:
            if self._progress is not None:
                whole = min(1.0, base + share * max(0.0, min(1.0, fraction)))
                self._progress(whole, f"{stage.value}: {message}")

        report(0.0, message)
        return report

    def end(self) -> None:
        """End the current stage: record its seconds and move the bar's base past its share."""
        if self._stage is None:
            raise RuntimeError("StageTimer.end() called with no stage started")
        self.timings[self._stage.value] = round(time.perf_counter() - self._t0, 3)
        self._done += self._stage.share
        self._stage = None


__all__ = ["Stage", "StageCallback", "StageTimer"]
