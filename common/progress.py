"""The progress callback shape shared by training, the pipeline and the worker."""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(fraction, message)``: ``fraction`` is the share of *this* task done so far, a float
#: in [0, 1] (callers clamp it; it may repeat but should not go back), and ``message`` is a short
#: one-line description of the current stage, for a progress bar or a job's status. Imports and
#: exports report counts (rows, images) instead, with other shapes: ``db.io._report.ProgressFn``
#: and ``db.io.export.ProgressCallback``.
Progress = Callable[[float, str], None]

__all__ = ["Progress"]
