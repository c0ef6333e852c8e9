"""Progress reporting and cooperative stopping, shared by the training loops."""

from __future__ import annotations

import logging
from collections.abc import Callable

from common.progress import Progress

logger = logging.getLogger(__name__)

#: ``on_progress(fraction, message)``: fraction of the whole call done, in [0, 1], and a short line;
#: the shared :data:`common.progress.Progress`, under the name the training code has always used.
ProgressFn = Progress
#: ``should_stop()``: polled once per step; True ends the loop cleanly (a checkpoint is written first).
StopFn = Callable[[], bool]


def report(on_progress: ProgressFn | None, fraction: float, message: str) -> None:
    """Call ``on_progress`` (if any) with ``fraction`` clamped to [0, 1]."""
    if on_progress is not None:
        on_progress(min(max(fraction, 0.0), 1.0), message)
